#!/usr/bin/env python3
"""Helpers of bench/ivr_load.sh (standard library only).

  ivr_load.py sample --pid PID --metrics URL --out samples.csv --phase-file F --stop-file F --max-secs N
      once a second: crest's VmRSS, VmHWM, threads, open fds, CPU (utime+stime, and its reaped
      children's: espeak-ng) from /proc, the phase the script is in, and from /metrics
      crest_calls_*, crest_media_calls_active, crest_dtmf_keys_total and every crest_ivr_* series
      (labels kept as name{k=v,...}). Rows are appended as they are taken; at the end the file is
      rewritten with the columns of every series that appeared.
  ivr_load.py orders --port 8099 --max-secs N
      the IVR flow's order backend (GET /orders/ID -> {"status", "eta"}) on 127.0.0.1
  ivr_load.py gaps --pcap prompts.pcap --ports 16000,16100,16200 --out gaps.json
      Crest's prompt RTP as the callers received it (tcpdump on lo): per stream (Crest's port,
      the caller's port, SSRC) the gaps between consecutive packets
  ivr_load.py report --out DIR
      reads DIR/{samples.csv,marks.tsv,params.env,*_logs.log,*_stat.csv,gaps.json} and prints
      the summary (markdown) and DIR/summary.tsv
"""
import argparse
import csv
import http.server
import json
import math
import os
import re
import statistics
import struct
import sys
import threading
import time
import urllib.request

HZ = os.sysconf("SC_CLK_TCK")
CORE = ["crest_calls_active", "crest_calls_started_total", "crest_calls_ended_total",
        "crest_calls_answered_total", "crest_media_calls_active"]
KEEP = re.compile(r"^(crest_ivr_|crest_calls_|crest_media_calls_active|crest_dtmf_keys_total|crest_media_timeouts_total|crest_acd_admissions_total|crest_acd_waiting)")


# ---------------------------------------------------------------- sample
def proc(pid):
    st = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            st[k] = v.strip()
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # fields after the name: state is rest[0] = field 3; utime 14, stime 15, cutime 16, cstime 17
    ut, stt, cut, cst = (int(rest[i]) for i in (11, 12, 13, 14))
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = -1
    return {
        "rss_kb": int(st["VmRSS"].split()[0]),
        "hwm_kb": int(st["VmHWM"].split()[0]),
        "threads": int(st["Threads"]),
        "fds": fds,
        "cpu_ms": (ut + stt) * 1000 // HZ,
        "cpu_children_ms": (cut + cst) * 1000 // HZ,
    }


def metrics(url):
    out = {}
    try:
        with urllib.request.urlopen(url, timeout=0.8) as r:
            text = r.read().decode("utf-8", "replace")
    except Exception:
        return None
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name, _, val = line.rpartition(" ")
        base = name.split("{", 1)[0]
        if not KEEP.match(base):
            continue
        name = name.replace('"', "")
        try:
            out[name] = float(val)
        except ValueError:
            pass
    return out


def cmd_sample(a):
    fixed = ["epoch", "elapsed_s", "phase", "rss_kb", "hwm_kb", "threads", "fds", "cpu_ms", "cpu_children_ms"]
    rows, cols, t0 = [], None, time.time()
    f = open(a.out, "w", newline="")
    w = None
    n = 0
    while n < a.max_secs and not os.path.exists(a.stop_file):
        tick = time.time()
        try:
            p = proc(a.pid)
        except (OSError, KeyError, IndexError):
            break  # crest is gone
        m = metrics(a.metrics) or {}
        try:
            phase = open(a.phase_file).read().strip()
        except OSError:
            phase = ""
        row = {"epoch": f"{tick:.3f}", "elapsed_s": f"{tick - t0:.1f}", "phase": phase, **p}
        row.update({k: int(v) if v.is_integer() else v for k, v in m.items()})
        rows.append(row)
        if cols is None:
            cols = fixed + [c for c in CORE if c in m] + sorted(k for k in m if k not in CORE)
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
        w.writerow(row)
        f.flush()
        n += 1
        time.sleep(max(0.0, a.interval - (time.time() - tick)))
    f.close()
    if rows:
        allk = list(cols or fixed)
        for r in rows:
            for k in r:
                if k not in allk:
                    allk.append(k)
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=allk, restval="")
            w.writeheader()
            w.writerows(rows)


# ---------------------------------------------------------------- orders
def cmd_orders(a):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            m = re.match(r"^/orders/(\w+)$", self.path)
            body = json.dumps({"id": m.group(1), "status": "on its way", "eta": "tomorrow"} if m else {}).encode()
            self.send_response(200 if m else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H)
    srv.daemon_threads = True
    threading.Timer(a.max_secs, srv.shutdown).start()
    srv.serve_forever()


# ---------------------------------------------------------------- gaps
def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        e = "<"
    else:
        e = ">"
        magic = struct.unpack(">I", data[:4])[0]
    nano = magic == 0xA1B23C4D
    link = struct.unpack(e + "I", data[20:24])[0]
    off = 24
    l2 = {1: 14, 113: 16, 276: 20, 0: 4, 101: 0}.get(link)
    if l2 is None:
        raise SystemExit(f"unsupported pcap link type {link}")
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        pkt = data[off:off + incl]
        off += incl
        t = sec + frac / (1e9 if nano else 1e6)
        ip = pkt[l2:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        udp = ip[ihl:]
        if len(udp) < 8 + 12:
            continue
        sport, dport = struct.unpack("!HH", udp[:4])
        r = udp[8:]
        if r[0] >> 6 != 2:
            continue
        pt = r[1] & 0x7F
        mark = r[1] >> 7
        seq, ts, ssrc = struct.unpack("!HII", r[2:12])
        yield t, sport, dport, ssrc, pt, mark, seq, ts


def cmd_gaps(a):
    """Pacing: gaps between consecutive packets of a talkspurt (next sequence number, +160
    timestamp units, no marker bit) up to --pause-ms. Longer gaps are pauses: Crest sends
    nothing between prompts (e.g. while the no-input timer of an `ask` runs); a pause is
    signalled in RTP when the packet after it has the marker bit or a timestamp that jumped
    by at least half the pause (RFC 3550 5.1)."""
    ports = {int(p) for p in a.ports.split(",") if p}
    streams = {}
    for t, sport, dport, ssrc, pt, mark, seq, ts in read_pcap(a.pcap):
        if ports and dport not in ports:
            continue
        streams.setdefault((sport, dport, ssrc), []).append((t, pt, mark, seq, ts))
    pacing, pauses = [], []
    per = []
    dup = lost = signalled = other = 0
    for key, pk in streams.items():
        pk.sort()
        if len(pk) < 2:
            continue
        g_run, g_pause = [], []
        for (t0, _, _, s0, ts0), (t1, pt1, m1, s1, ts1) in zip(pk, pk[1:]):
            ds = (s1 - s0) & 0xFFFF
            if ds == 0:
                dup += 1
                continue
            if 1 < ds < 1000:
                lost += ds - 1
            gap = (t1 - t0) * 1000.0
            dts = (ts1 - ts0) & 0xFFFFFFFF
            if gap > a.pause_ms:
                g_pause.append(gap)
                if m1 or dts >= gap * 8 / 2:
                    signalled += 1
            elif ds == 1 and dts == 160 and not m1:
                g_run.append(gap)
            else:
                other += 1  # a new talkspurt (marker, timestamp jump) shortly after the last
        pacing += g_run
        pauses += g_pause
        per.append({"crest_port": key[0], "caller_port": key[1], "ssrc": f"{key[2]:#010x}", "packets": len(pk),
                    "secs": round(pk[-1][0] - pk[0][0], 3),
                    "p50_ms": round(pct(g_run, 50), 3), "p99_ms": round(pct(g_run, 99), 3),
                    "max_ms": round(max(g_run), 3) if g_run else None,
                    "pauses": len(g_pause), "pause_max_ms": round(max(g_pause), 1) if g_pause else None})
    per99 = [s["p99_ms"] for s in per if s["p99_ms"] == s["p99_ms"]]
    perMax = [s["max_ms"] for s in per if s["max_ms"] is not None]
    res = {
        "streams": len(per),
        "packets": sum(s["packets"] for s in per),
        "pause_ms": a.pause_ms,
        "pacing_gaps": len(pacing),
        "p50_ms": round(pct(pacing, 50), 3), "p99_ms": round(pct(pacing, 99), 3),
        "p999_ms": round(pct(pacing, 99.9), 3),
        "max_ms": round(max(pacing), 3) if pacing else None,
        "gt_30ms": sum(1 for g in pacing if g > 30), "gt_40ms": sum(1 for g in pacing if g > 40),
        "gt_60ms": sum(1 for g in pacing if g > 60),
        "stream_p99_median_ms": round(pct(per99, 50), 3), "stream_p99_worst_ms": round(max(per99), 3) if per99 else None,
        "stream_max_median_ms": round(pct(perMax, 50), 3),
        "pauses": len(pauses), "pauses_signalled": signalled,
        "pause_p50_ms": round(pct(pauses, 50), 1), "pause_max_ms": round(max(pauses), 1) if pauses else None,
        "new_talkspurts": other, "seq_lost": lost, "duplicates": dup,
    }
    with open(a.out, "w") as f:
        json.dump({"summary": res, "streams": per}, f, indent=1)
    print(json.dumps(res))


# ---------------------------------------------------------------- report
def fnum(x, nd=1):
    if x is None or (isinstance(x, float) and x != x):
        return "n/a"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:,.{nd}f}"


def fint(x):
    return "n/a" if x is None else fnum(int(x))


def cmd_report(a):
    d = a.out
    params = {}
    for line in open(os.path.join(d, "params.env")):
        k, _, v = line.rstrip("\n").partition("=")
        params[k] = v
    marks = {}
    for line in open(os.path.join(d, "marks.tsv")):
        p = line.rstrip("\n").split("\t")
        if len(p) >= 7 and p[0] != "epoch":
            marks[p[1]] = {"t": float(p[0]), "cpu_ms": int(p[2]), "cpu_children_ms": int(p[3]),
                           "rss_kb": int(p[4]), "threads": int(p[5]), "fds": int(p[6])}
    rows = list(csv.DictReader(open(os.path.join(d, "samples.csv"))))

    def num(r, k):
        v = r.get(k, "")
        try:
            return float(v)
        except ValueError:
            return None

    def phase_rows(name):
        return [r for r in rows if r["phase"] == name]

    def median_of(name, k):
        xs = [num(r, k) for r in phase_rows(name)]
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else None

    # calls per phase from sipp: logs (answered calls and their durations) and stats (failures)
    def phase_calls(phase):
        durs, who = [], {"caller": 0, "crest": 0}
        created = succ = failed = 0
        fails = {}
        per_kind = {}
        for kind in ("silent", "keys", "speech"):
            lf = os.path.join(d, f"{phase}_{kind}_logs.log")
            n_kind = []
            if os.path.exists(lf):
                for line in open(lf, errors="replace"):
                    p = line.strip().split(";")
                    if len(p) >= 4 and p[1].isdigit() and p[2].isdigit():
                        n_kind.append((int(p[2]) - int(p[1])) / 1000.0)
                        who[p[3]] = who.get(p[3], 0) + 1
            durs += n_kind
            sf = os.path.join(d, f"{phase}_{kind}_stat.csv")
            if os.path.exists(sf):
                lines = [l.rstrip("\n").split(";") for l in open(sf, errors="replace") if l.strip()]
                if len(lines) >= 2:
                    h, last = lines[0], lines[-1]
                    ix = {k: i for i, k in enumerate(h)}
                    c = int(last[ix["TotalCallCreated"]])
                    s = int(last[ix["SuccessfulCall(C)"]])
                    fl = int(last[ix["FailedCall(C)"]])
                    created += c
                    succ += s
                    failed += fl
                    per_kind[kind] = (c, s, fl, len(n_kind), sum(n_kind))
                    for k, i in ix.items():
                        if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)":
                            v = int(last[i] or 0)
                            if v:
                                fails[k[6:-3]] = fails.get(k[6:-3], 0) + v
        return {"durs": durs, "who": who, "created": created, "succ": succ, "failed": failed,
                "fails": fails, "per_kind": per_kind}

    warm = phase_calls("warmup")
    soak = phase_calls("soak")
    m = marks
    cold_rss, cold_thr = median_of("idle", "rss_kb"), median_of("idle", "threads")
    warm_rss, warm_thr = median_of("warm_idle", "rss_kb"), median_of("warm_idle", "threads")
    end_rss, end_thr = median_of("after", "rss_kb"), median_of("after", "threads")
    cold_fds, warm_fds, end_fds = median_of("idle", "fds"), median_of("warm_idle", "fds"), median_of("after", "fds")
    soak_rows = [r for r in rows if r["phase"] in ("soak", "soak_drain")]
    peak_calls = max((num(r, "crest_calls_active") or 0 for r in soak_rows), default=0)
    warm_peak = max((num(r, "crest_calls_active") or 0 for r in rows if r["phase"] in ("warmup", "warmup_drain")), default=0)
    cache = [median_of(ph, "crest_ivr_prompts_cached") for ph in ("idle", "warm_idle", "after")]
    recog = max((num(r, "crest_ivr_recognizers_active") or 0 for r in soak_rows), default=None)
    peak_ivr = max((num(r, "crest_ivr_sessions_active") or 0 for r in soak_rows), default=None)
    peak_rss = max((num(r, "rss_kb") or 0 for r in soak_rows), default=0)
    peak_thr = max((num(r, "threads") or 0 for r in soak_rows), default=0)
    out = {}

    # CPU per IVR caller-second (soak): crest's CPU from the soak's start to the moment its last
    # call had ended (marks read from /proc by the script), over the sum of the answered calls'
    # durations (sipp log: ACK sent -> BYE sent or Crest's BYE answered)
    cs = sum(soak["durs"])
    nominal = int(params.get("SOAK_CALLS", 0)) * (float(params["HOLD_MIN"]) + float(params["HOLD_MAX"])) / 2
    cpu = m["soak_end"]["cpu_ms"] - m["soak_start"]["cpu_ms"]
    cpu_ch = m["soak_end"]["cpu_children_ms"] - m["soak_start"]["cpu_children_ms"]
    wall = m["soak_end"]["t"] - m["soak_start"]["t"]
    wcs = sum(warm["durs"])
    wcpu = m["warmup_end"]["cpu_ms"] - m["warmup_start"]["cpu_ms"]

    def pctdiff(a_, b_):
        return None if not a_ or b_ is None else 100.0 * (b_ - a_) / a_

    rss_diff = pctdiff(warm_rss, end_rss)
    gaps = None
    gp = os.path.join(d, "gaps.json")
    if os.path.exists(gp):
        gaps = json.load(open(gp))["summary"]

    lines = []
    P = lines.append
    P(f"### IVR callers: {params['MODE']} run, {params['DATE']}")
    P("")
    P(f"Machine: {params['NPROC']} × {params['CPU']} ({params['KERNEL']}), {params['MEM']}. "
      f"crest: `{params['CREST']}` ({params['CREST_BUILD']}), repository at {params['COMMIT']} when run; config `{params['CONFIG']}`.")
    P("")
    P(f"Command: `{params['COMMAND']}`")
    P("")
    P(f"Load: {params['SOAK_CALLS']} callers at {params['RATE']}/s (sipp `-m`, `-r`, `-l {params['CONCURRENT']}`), "
      f"hold uniform {params['HOLD_MIN']}–{params['HOLD_MAX']} s, mix silent:keys:speech = {params['MIX']}; "
      f"before it a warm-up of {params['WARMUP_CALLS']} callers, the same way. "
      f"Idle readings are medians of 1 s samples: before any call (cold), {params['SETTLE']} s after the warm-up's "
      f"last call ended, and {params['SETTLE']} s after the soak's.")
    P("")
    P("| measure | value | note |")
    P("| --- | --- | --- |")
    P(f"| soak calls created / successful / failed (sipp) | {fnum(soak['created'])} / {fnum(soak['succ'])} / {fnum(soak['failed'])} | "
      + (", ".join(f"{k} {v}" for k, v in sorted(soak['fails'].items())) or "no failures")
      + f"; warm-up {warm['created']}/{warm['succ']}/{warm['failed']} |")
    P(f"| who hung up (soak, answered calls) | caller {fnum(soak['who'].get('caller', 0))}, Crest {fnum(soak['who'].get('crest', 0))} | Crest: the flow ended the call (goodbye, refusal) before the caller's hold ran out |")
    P(f"| peak concurrent calls | {fint(peak_calls)} | max of crest_calls_active (1 s samples)"
      + (f"; crest_ivr_sessions_active max {fint(peak_ivr)}" if peak_ivr is not None else "")
      + (f"; crest_ivr_recognizers_active max {fint(recog)}" if recog is not None else "")
      + f"; warm-up peak {fint(warm_peak)} |")
    P(f"| RSS idle: cold → after warm-up → after soak | {fnum(cold_rss / 1024)} → {fnum(warm_rss / 1024)} → {fnum(end_rss / 1024)} MiB | |")
    verdict = "n/a" if rss_diff is None else ("PASS" if abs(rss_diff) <= 5 else "FAIL")
    P(f"| RSS after soak vs after warm-up | {fnum(rss_diff, 1)} % | target within ±5 %: **{verdict}** |")
    if warm_peak < 0.9 * peak_calls:
        P(f"| caveat | warm-up peak {fint(warm_peak)} < soak peak {fint(peak_calls)} | whatever grows with concurrency (allocator pages, pools) can still grow in the soak: the RSS difference is an upper bound on what is left per call |")
    if cache[1] is not None:
        P(f"| prompts cached: cold → after warm-up → after soak | {fint(cache[0])} → {fint(cache[1])} → {fint(cache[2])} | crest_ivr_prompts_cached (rendered prompt texts kept) |")
    per_leak = (end_rss - warm_rss) / max(1, soak["created"]) if end_rss and warm_rss else None
    P(f"| RSS growth per soak call | {fnum(per_leak, 2)} kB | (after soak − after warm-up) / calls created |")
    thr_dw = int(end_thr - warm_thr) if end_thr is not None and warm_thr is not None else 0
    tverdict = "PASS" if end_thr is not None and cold_thr is not None and end_thr <= cold_thr else "FAIL"
    P(f"| threads idle: cold → after warm-up → after soak (peak) | {fint(cold_thr)} → {fint(warm_thr)} → {fint(end_thr)} ({fint(peak_thr)}) | back to the cold idle count: **{tverdict}**; after soak vs after warm-up: {thr_dw:+d} |")
    P(f"| open fds idle: cold → after warm-up → after soak | {fint(cold_fds)} → {fint(warm_fds)} → {fint(end_fds)} | |")
    P(f"| peak RSS during the soak | {fnum(peak_rss / 1024)} MiB | |")
    rpc_w = (peak_rss - warm_rss) / peak_calls if peak_calls else None
    rpc_c = (peak_rss - cold_rss) / peak_calls if peak_calls else None
    P(f"| RSS per concurrent caller at peak | {fnum(rpc_w)} kB | (peak RSS − RSS after warm-up) / peak calls; against the cold idle: {fnum(rpc_c)} kB (includes prompt cache, models, leaks) |")
    P(f"| CPU per IVR caller-second | {fnum(cpu / cs if cs else None, 2)} ms | crest's utime+stime over the soak ({fnum(cpu)} ms in {fnum(wall)} s: {fnum(cpu / 10 / wall if wall else None)} % of one core) / {fnum(cs)} caller-seconds summed from sipp's per-call log (ACK sent → BYE); nominal calls × mean hold = {fnum(nominal)} s |")
    P(f"| … with espeak-ng children | {fnum((cpu + cpu_ch) / cs if cs else None, 2)} ms | reaped children's CPU {fnum(cpu_ch)} ms |")
    P(f"| CPU per caller-second, warm-up | {fnum(wcpu / wcs if wcs else None, 2)} ms | first prompt renderings, model loads |")
    if gaps:
        P(f"| prompt RTP pacing at the callers: gap p50 / p99 / p99.9 / max | {fnum(gaps['p50_ms'], 2)} / {fnum(gaps['p99_ms'], 2)} / {fnum(gaps['p999_ms'], 2)} / {fnum(gaps['max_ms'], 2)} ms | "
          f"{params['CAPTURE_SECS']} s tcpdump on lo from s{params['CAPTURE_DELAY']} of the soak: {fnum(gaps['streams'])} streams, {fnum(gaps['pacing_gaps'])} gaps between consecutive 20 ms packets (seq +1, ts +160, gap ≤ {gaps['pause_ms']:g} ms); >30 ms: {gaps['gt_30ms']}, >40 ms: {gaps['gt_40ms']}, >60 ms: {gaps['gt_60ms']} |")
        P(f"| … per stream: median p99 / worst p99 / median max | {fnum(gaps['stream_p99_median_ms'], 2)} / {fnum(gaps['stream_p99_worst_ms'], 2)} / {fnum(gaps['stream_max_median_ms'], 2)} ms | sequence gaps (lost): {gaps['seq_lost']}, duplicates: {gaps['duplicates']} |")
        P(f"| pauses > {gaps['pause_ms']:g} ms (no RTP between prompts) | {fnum(gaps['pauses'])}, p50 {fnum(gaps['pause_p50_ms'])} ms, max {fnum(gaps['pause_max_ms'])} ms | "
          f"signalled in RTP (marker bit or timestamp jump) in {gaps['pauses_signalled']} of {gaps['pauses']} |")
    else:
        P("| prompt RTP gaps | n/a | no capture (CAPTURE=0, or tcpdump missing) |")
    ivr_tot = {k: v for k, v in rows[-1].items() if k.startswith(("crest_ivr_calls_total", "crest_ivr_sessions_total", "crest_ivr_utterances_total", "crest_ivr_listens", "crest_dtmf_keys_total{source=rfc4733}", "crest_media_timeouts_total", "crest_ivr_audio_frames_dropped_total")) and v not in ("", "0")}
    P(f"| crest counters at the end | " + ", ".join(f"{k.replace('crest_', '')} {v}" for k, v in ivr_tot.items()) + " | warm-up + soak |")
    P("")
    kinds = ", ".join(f"{k}: {c} created, {s} ok, {fl} failed, {n} answered, {t:,.0f} caller-s" for k, (c, s, fl, n, t) in soak["per_kind"].items())
    P(f"Per kind (soak): {kinds}.")
    P("")
    P(f"Raw data: `{d}` (samples.csv every second, marks.tsv, sipp *_stat.csv / *_logs.log / *_err.log, prompts.pcap, gaps.json, crest.log).")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(d, "summary.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(d, "summary.tsv"), "w") as f:
        vals = {
            "soak_created": soak["created"], "soak_failed": soak["failed"], "peak_calls": int(peak_calls),
            "rss_cold_kb": cold_rss, "rss_warm_kb": warm_rss, "rss_after_kb": end_rss, "rss_diff_pct": rss_diff,
            "threads_cold": cold_thr, "threads_warm": warm_thr, "threads_after": end_thr, "peak_rss_kb": peak_rss,
            "rss_per_caller_kb": rpc_w, "cpu_ms": cpu, "caller_seconds": cs, "cpu_ms_per_caller_s": cpu / cs if cs else None,
            **({f"gap_{k}": v for k, v in gaps.items()} if gaps else {}),
        }
        f.write("\t".join(vals) + "\n" + "\t".join(str(v) for v in vals.values()) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--metrics", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--phase-file", required=True)
    s.add_argument("--stop-file", required=True)
    s.add_argument("--interval", type=float, default=1.0)
    s.add_argument("--max-secs", type=int, default=7200)
    o = sub.add_parser("orders")
    o.add_argument("--port", type=int, default=8099)
    o.add_argument("--max-secs", type=float, default=3600)
    g = sub.add_parser("gaps")
    g.add_argument("--pcap", required=True)
    g.add_argument("--ports", default="")
    g.add_argument("--out", required=True)
    g.add_argument("--pause-ms", type=float, default=200.0)
    r = sub.add_parser("report")
    r.add_argument("--out", required=True)
    a = ap.parse_args()
    {"sample": cmd_sample, "orders": cmd_orders, "gaps": cmd_gaps, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
