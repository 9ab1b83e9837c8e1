//! `crest flow test`: runs a flow against scripted calls in virtual time and checks the path
//! taken, the variables set, what was said and how the call ended.
//!
//! ```yaml
//! cases:
//!   - name: order status by voice
//!     vars: {caller: "+8613800000001", tier: standard, surge: "1"}
//!     at: "2026-11-30T10:00:00+08:00"          # wall clock of the call (business hours)
//!     lookups: {"/orders/12345": {status: 200, body: {status: shipped, eta: tomorrow}}}
//!     turns:
//!       - say: "where is my order"             # an utterance (text)
//!       - wav: audio/where-is-my-order.wav     # or audio, through the real recogniser
//!       - keys: "12345#"
//!       - silence: 6                           # seconds of nothing
//!     expect:
//!       path: [hours, welcome, main_menu, order_number]
//!       vars: {order.id: "12345"}
//!       said: ["arrives tomorrow"]
//!       outcome: "queue:order-status"          # queue:Q | transfer:URI | callback:Q | hangup:REASON
//! ```
//!
//! Every prompt is taken to play to its end before the next turn (a turn with `barge_in: true`
//! interrupts it instead); a lookup is answered from `lookups` by its path (no entry: it fails).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::asr::Recognizer;
use crate::engine::{Command, Grammar, Input, Library, Outcome, Session};
use crate::interp::Vars;
use crate::load::Flow;

/// A script file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// The scripted calls.
    pub cases: Vec<Case>,
}

/// One scripted call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What it checks.
    pub name: String,
    /// Variables the call brings.
    #[serde(default)]
    pub vars: Vars,
    /// The call's wall clock, `YYYY-MM-DDTHH:MM:SS±HH:MM` (default 2026-11-30 10:00 +08:00).
    #[serde(default)]
    pub at: Option<String>,
    /// Lookup path → answer.
    #[serde(default)]
    pub lookups: BTreeMap<String, LookupAnswer>,
    /// What the caller does, in order.
    #[serde(default)]
    pub turns: Vec<Turn>,
    /// What must have happened.
    #[serde(default)]
    pub expect: Expect,
}

/// A stubbed lookup answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupAnswer {
    /// HTTP status.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// The JSON body.
    #[serde(default)]
    pub body: serde_json::Value,
}

fn ok_status() -> u16 {
    200
}

/// One thing the caller does.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// Keys, one after the other.
    #[serde(default)]
    pub keys: Option<String>,
    /// Words (as the recogniser would return them).
    #[serde(default)]
    pub say: Option<String>,
    /// Audio through the real recogniser (relative to the script).
    #[serde(default)]
    pub wav: Option<PathBuf>,
    /// Seconds of silence.
    #[serde(default)]
    pub silence: Option<u32>,
    /// The caller does not wait for the prompt to end.
    #[serde(default)]
    pub barge_in: bool,
}

/// What a case checks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The exact path.
    #[serde(default)]
    pub path: Option<Vec<String>>,
    /// Variables that must have these values.
    #[serde(default)]
    pub vars: Vars,
    /// Text each of which some prompt must contain.
    #[serde(default)]
    pub said: Vec<String>,
    /// How the call ends.
    #[serde(default)]
    pub outcome: Option<String>,
}

/// Turns audio into words for `wav:` turns.
pub trait Hear {
    /// What the recogniser makes of `file` with `grammar`: words and confidence.
    fn hear(&mut self, file: &Path, grammar: &Grammar) -> Result<(String, f32), String>;
}

/// `wav:` turns through a real recogniser: the file (16-bit mono WAV, 8 or 16 kHz) in 20 ms
/// frames, then a second of silence for the end of the utterance.
#[derive(Debug)]
pub struct Transcribe<R>(pub R);

impl<R: Recognizer> Hear for Transcribe<R> {
    fn hear(&mut self, file: &Path, grammar: &Grammar) -> Result<(String, f32), String> {
        let bytes = std::fs::read(file).map_err(|e| e.to_string())?;
        let (rate, pcm) = crest_media::wav::read_pcm(&bytes).map_err(|e| e.to_string())?;
        let r = &mut self.0;
        r.start(grammar).map_err(|e| e.to_string())?;
        let frame = (rate / 50).max(1) as usize;
        let silence = vec![0i16; rate as usize];
        for f in pcm.chunks(frame).chain(silence.chunks(frame)) {
            if let Some(h) = r.feed(f, rate).map_err(|e| e.to_string())? {
                return Ok((h.text, h.confidence));
            }
        }
        let h = r.finish().map_err(|e| e.to_string())?;
        Ok((h.text, h.confidence))
    }
}

/// What one case did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The case.
    pub name: String,
    /// The path taken.
    pub path: Vec<String>,
    /// The prompts played.
    pub said: Vec<String>,
    /// How it ended.
    pub outcome: Option<String>,
    /// What did not match the expectations.
    pub failures: Vec<String>,
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Queued(q) => format!("queue:{q}"),
        Outcome::Transferred(u) => format!("transfer:{u}"),
        Outcome::Callback(q) => format!("callback:{q}"),
        Outcome::HungUp(r) => format!("hangup:{r}"),
    }
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS±HH:MM` (or `Z`).
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let offset = match &s[19..] {
        "Z" => 0,
        o if o.len() == 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (num(20..22)? * 3600 + num(23..25)? * 60)
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}

/// Runs one case of a script (whose directory is `dir`) through `flow`.
pub fn run_case(
    lib: &Arc<Library>,
    flow: &Arc<Flow>,
    case: &Case,
    dir: &Path,
    hear: &mut dyn Hear,
) -> Report {
    let t0 = Instant::now();
    let mut now = t0;
    let mut s = Session::new(lib.clone(), flow.clone(), case.vars.clone());
    let mut failures = Vec::new();
    let mut said = Vec::new();
    let at = case
        .at
        .as_deref()
        .map_or(Some(1_796_004_000), parse_time)
        .unwrap_or_else(|| {
            failures.push(format!(
                "at: {:?} is not YYYY-MM-DDTHH:MM:SS+HH:MM",
                case.at
            ));
            0
        });
    s.handle(now, Input::Start { unix_secs: at });
    let mut turns = case.turns.iter();
    let mut grammar = None;
    let mut pending: Vec<Turn> = Vec::new();
    for _ in 0..10_000 {
        let mut prompt = false;
        let mut lookup = None;
        while let Some(c) = s.poll_command() {
            match c {
                Command::Play { text, file, .. } => {
                    said.push(text.unwrap_or_else(|| {
                        file.map(|f| f.display().to_string()).unwrap_or_default()
                    }));
                    prompt = true;
                }
                Command::Listen { grammar: g, .. } => grammar = Some(g),
                Command::Lookup { url, .. } => lookup = Some(url),
                _ => {}
            }
        }
        if s.outcome().is_some() && !prompt {
            break;
        }
        if let Some(url) = lookup {
            let path = url
                .find("://")
                .and_then(|i| url[i + 3..].find('/').map(|j| &url[i + 3 + j..]))
                .unwrap_or(&url);
            match case.lookups.get(path) {
                Some(a) => {
                    let body = a.body.to_string();
                    s.handle(
                        now,
                        Input::LookupDone {
                            status: a.status,
                            body: &body,
                        },
                    );
                }
                None => s.handle(now, Input::LookupFailed),
            }
            continue;
        }
        if pending.is_empty()
            && let Some(t) = turns.next()
        {
            pending.push(t.clone());
        }
        let barge = pending.first().is_some_and(|t| t.barge_in);
        if prompt {
            now += Duration::from_secs(2);
            s.handle(
                now,
                if barge {
                    Input::BargeIn
                } else {
                    Input::PromptDone
                },
            );
            continue;
        }
        let Some(turn) = pending.pop() else {
            // Nothing more from the caller: time passes.
            match s.poll_timeout() {
                Some(d) => {
                    now = d;
                    s.handle_timeout(now);
                    continue;
                }
                None => {
                    if s.outcome().is_none() {
                        failures
                            .push("the flow waits for something the script does not give".into());
                    }
                    break;
                }
            }
        };
        if let Some(keys) = &turn.keys {
            for k in keys.chars() {
                now += Duration::from_millis(300);
                s.handle(now, Input::Key(k));
            }
        }
        if let Some(text) = &turn.say {
            now += Duration::from_secs(1);
            s.handle(
                now,
                Input::Speech {
                    text,
                    confidence: 1.0,
                },
            );
        }
        if let Some(w) = &turn.wav {
            let g = grammar.clone().unwrap_or(Grammar::Digits);
            match hear.hear(&dir.join(w), &g) {
                Ok((text, conf)) => {
                    now += Duration::from_secs(1);
                    s.handle(
                        now,
                        Input::Speech {
                            text: &text,
                            confidence: conf,
                        },
                    );
                }
                Err(e) => failures.push(format!("wav {}: {e}", w.display())),
            }
        }
        if let Some(secs) = turn.silence {
            let end = now + Duration::from_secs(u64::from(secs));
            while let Some(d) = s.poll_timeout().filter(|d| *d <= end) {
                now = d;
                s.handle_timeout(now);
                if s.poll_timeout() == Some(d) {
                    break;
                }
            }
            now = end;
        }
    }
    let outcome = s.outcome().map(outcome_text);
    let path = s.path().to_vec();
    let e = &case.expect;
    if let Some(p) = &e.path
        && p != &path
    {
        failures.push(format!("path {path:?}, expected {p:?}"));
    }
    for (k, v) in &e.vars {
        let got = s.vars().get(k);
        if got != Some(v) {
            failures.push(format!("{k} = {got:?}, expected {v:?}"));
        }
    }
    for want in &e.said {
        if !said.iter().any(|p| p.contains(want.as_str())) {
            failures.push(format!("no prompt said {want:?}"));
        }
    }
    if let Some(o) = &e.outcome
        && outcome.as_ref() != Some(o)
    {
        failures.push(format!("outcome {outcome:?}, expected {o:?}"));
    }
    Report {
        name: case.name.clone(),
        path,
        said,
        outcome,
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2026-11-30T10:00:00+08:00"), Some(1_796_004_000));
        assert_eq!(parse_time("2026-11-30T02:00:00Z"), Some(1_796_004_000));
        assert_eq!(parse_time("2026-11-30 10:00"), None);
    }
}
