-- The recording index (crates/recording/src/index.rs), for SQLite as written and for PostgreSQL
-- with BLOB read as BYTEA. Statements are idempotent, and no comment may hold a semicolon.
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    legs TEXT NOT NULL,
    agent TEXT,
    queue TEXT,
    started_ms BIGINT NOT NULL,
    duration_ms BIGINT,
    format TEXT NOT NULL,
    layout TEXT NOT NULL,
    state TEXT NOT NULL,
    tier TEXT NOT NULL,
    key_id TEXT,
    wrapped_key BLOB,
    sha256 TEXT,
    size BIGINT
);
CREATE INDEX IF NOT EXISTS recordings_by_call ON recordings (call_id);
CREATE INDEX IF NOT EXISTS recordings_by_start ON recordings (started_ms);
CREATE TABLE IF NOT EXISTS recording_marks (
    recording_id TEXT NOT NULL,
    offset_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS recording_marks_by_id ON recording_marks (recording_id);
CREATE TABLE IF NOT EXISTS recording_events (
    recording_id TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS recording_events_by_id ON recording_events (recording_id)
;
-- Call detail records: one row per leg of every anchored call, with its media quality.
CREATE TABLE IF NOT EXISTS call_legs (
    call_id TEXT NOT NULL,
    number TEXT NOT NULL,
    leg TEXT NOT NULL,
    ended_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    codec TEXT NOT NULL,
    packets BIGINT NOT NULL,
    lost BIGINT NOT NULL,
    jitter_us BIGINT NOT NULL,
    rtt_us BIGINT,
    mos_milli BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS call_legs_by_call ON call_legs (call_id)
;
-- The journey of every call Crest answered itself (crest-call's record): one row per call.
CREATE TABLE IF NOT EXISTS call_journeys (
    call_id TEXT NOT NULL,
    number TEXT NOT NULL,
    ended_ms BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    flow TEXT,
    flow_version TEXT,
    path TEXT NOT NULL,
    intent TEXT,
    queue TEXT,
    agent TEXT,
    wait_ms BIGINT,
    outcome TEXT NOT NULL,
    ended_in TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS call_journeys_by_call ON call_journeys (call_id);
CREATE INDEX IF NOT EXISTS call_journeys_by_end ON call_journeys (ended_ms)
;
-- API tokens of the admin API: only a SHA-256 of each token is kept.
CREATE TABLE IF NOT EXISTS api_tokens (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
-- Every change made through the admin API, and every refused attempt: who, what, when, from where.
CREATE TABLE IF NOT EXISTS audit_log (
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    remote TEXT NOT NULL,
    status BIGINT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log (at_ms);
-- Agents added, edited or removed through the admin API, put in force over acd.yaml at start.
CREATE TABLE IF NOT EXISTS agent_edits (
    name TEXT PRIMARY KEY,
    -- The agent's entry as JSON (acd.yaml's fields), NULL once removed.
    spec TEXT,
    updated_ms BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
-- Satisfaction scores (1 to 5) callers gave in a flow's survey after an agent's call.
CREATE TABLE IF NOT EXISTS csat_responses (
    call_id TEXT NOT NULL,
    ended_ms BIGINT NOT NULL,
    queue TEXT,
    agent TEXT,
    score BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS csat_responses_by_end ON csat_responses (ended_ms);
