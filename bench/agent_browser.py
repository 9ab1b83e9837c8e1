#!/usr/bin/env python3
"""Browser agents' call set-up, live: a G.711 caller -> `crest run` -> an agent's page in
headless Chromium (Debian's, over chromedriver) answering at once (?autoanswer=1).

    python3 bench/agent_browser.py [--calls 30] [--agents 1] [--crest target/release/crest] [--shipped]

--agents N logs N agents in, each in a Chromium of its own, and N callers call at once (a
soak under load: a warm-up round of N calls, then --calls more).

--shipped runs crest on config/crest.yaml as it is (SIP 127.0.0.1:5060, the page on
https://127.0.0.1:8443/agent with its self-signed certificate, route 4001, alice / secret): a
shift on the shipped configuration rather than a measurement of its own.

For each call, from crest's own log (by the caller's Call-ID):
  INVITE -> 200    Crest's SDP-less INVITE to the page until the page's 200 with its offer
                   (JsSIP: the microphone, the offer, ICE gathering)
  200 -> DTLS      Crest's answer (in the ACK) until ICE and DTLS-SRTP are up
  INVITE -> media  until the first audio from the browser reaches the bridge ("RTP latched")
Prints p50/p95/max of each and a markdown row for docs/benchmarks.md, and what the calls left
behind: crest's threads and RSS after the first call and after the last, and the browser legs,
the shared WebRTC socket's routes and learnt addresses, and the anchored calls (all must be 0).
Bounded: every call and wait has a deadline; crest, chromedriver and Chromium are stopped on
exit. Loopback only.
"""
import argparse, hashlib, json, os, random, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time
import http.client
from datetime import datetime

ACD = """ring_secs: 20
wrap_up_secs: 1
max_misses: 3
pools:
  - {name: office, neighbours: []}
queues:
  - {name: refund, skill: refund, pool: office}
agents:
"""


def agent_names(n):
    return ["alice"] + [f"agent{i}" for i in range(2, n + 1)]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def webdriver(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, json.dumps(body) if body is not None else None,
              {"Content-Type": "application/json"})
    return json.loads(c.getresponse().read() or b"{}")


class Caller:
    """A UDP SIP caller: INVITE with PCMU, ACK the 200, BYE after `talk` seconds."""

    def __init__(self, crest):
        self.crest = crest
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]

    def request(self, method, uri, call_id, cseq, to, body=""):
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        return (f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{random.getrandbits(48):x};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:caller@127.0.0.1>;tag=c{cseq}{call_id[:6]}\r\nTo: {to}\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:caller@127.0.0.1:{self.port}>\r\n"
                f"{ctype}Content-Length: {len(body)}\r\n\r\n{body}").encode()

    def call(self, number, talk):
        call_id = f"bench-{random.getrandbits(64):x}@127.0.0.1"
        sdp = (f"v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {self.port + 2} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n")
        uri = f"sip:{number}@{self.crest[0]}:{self.crest[1]}"
        to = f"<{uri}>"
        invite = self.request("INVITE", uri, call_id, 1, to, sdp)
        # Keep the From tag stable across the dialog.
        tag = re.search(rb"From: [^\r]*;tag=([^\r;]+)", invite).group(1).decode()
        self.sock.sendto(invite, self.crest)
        deadline = time.time() + 30
        ok = None
        while time.time() < deadline and ok is None:
            try:
                m = self.sock.recv(65535).decode(errors="replace")
            except socket.timeout:
                continue
            cseq = re.search(r"(?im)^(?:CSeq):\s*(\d+ \w+)", m)
            if cseq and cseq.group(1) != "1 INVITE":
                continue
            if m.startswith("SIP/2.0 200"):
                ok = m
            elif m.startswith("SIP/2.0 ") and not m.startswith("SIP/2.0 1"):
                raise RuntimeError("call refused: " + m.split("\r\n")[0])
        if ok is None:
            raise RuntimeError("no 200 within 30 s")
        to = re.search(r"\r\nTo: ([^\r]+)", ok).group(1)
        target = re.search(r"\r\nContact: <([^>]+)>", ok).group(1)
        def dialog(method, cseq):
            r = self.request(method, target, call_id, cseq, to)
            return r.replace(f";tag=c{cseq}{call_id[:6]}".encode(), f";tag={tag}".encode())
        self.sock.sendto(dialog("ACK", 1), self.crest)
        end = time.time() + talk
        while time.time() < end:
            try:
                self.sock.recv(65535)
            except socket.timeout:
                pass
        self.sock.sendto(dialog("BYE", 2), self.crest)
        return call_id


def proc_status(pid):
    """(threads, RSS kB) of process `pid`."""
    fields = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status").read().splitlines() if ":" in l)
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0])


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def stamp(line):
    return datetime.fromisoformat(line[:26].rstrip("Z")).timestamp()


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--talk", type=float, default=2.0)
    ap.add_argument("--crest", default="target/release/crest")
    ap.add_argument("--shipped", action="store_true")
    ap.add_argument("--agents", type=int, default=1)
    a = ap.parse_args()
    a.calls = max(1, min(a.calls, 500))
    a.agents = 1 if a.shipped else max(1, min(a.agents, 8))
    names = agent_names(a.agents)
    work = tempfile.mkdtemp(prefix="agent-browser-bench-")
    sip, admin = free_port(), free_port()
    with open(f"{work}/acd.yaml", "w") as f:
        f.write(ACD + "".join(f"  - {{name: {n}, pool: office, skills: {{refund: 0.9}}, rating: 0.9}}\n" for n in names))
    ha1 = lambda n: hashlib.md5(f"{n}:crest:secret".encode()).hexdigest()
    users = "".join(f"    - {{name: {n}, ha1_md5: {ha1(n)}}}\n" for n in names)
    with open(f"{work}/crest.yaml", "w") as f:
        f.write(f"""listen:
  udp: "127.0.0.1:{sip}"
admin:
  listen: "127.0.0.1:{admin}"
log:
  level: debug
recording:
  index: "sqlite:{work}/index.db"
acd:
  file: "{work}/acd.yaml"
sip:
  auth:
    algorithms: [MD5]
  users:  # password "secret" (realm crest)
""" + users + f"""  routes:
    - {{number: "4001", queue: refund, public: true}}
""")
    config, page = f"{work}/crest.yaml", f"http://127.0.0.1:{admin}/agent"
    if a.shipped:
        config, sip, admin, page = "config/crest.yaml", 5060, 8080, "https://127.0.0.1:8443/agent"
    procs = []
    try:
        log = open(f"{work}/crest.log", "w")
        env = dict(os.environ, RUST_LOG="info,crest::media=debug") if a.shipped else None
        procs.append(subprocess.Popen([a.crest, "run", "--config", config], stdout=log, stderr=log, env=env))
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", admin, timeout=1)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        wd = free_port()
        procs.append(subprocess.Popen(["chromedriver", f"--port={wd}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(100):
            try:
                webdriver(wd, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        sessions = []
        for name in names:
            sess = webdriver(wd, "POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
                "binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
                "--ignore-certificate-errors"]}}}})["value"]["sessionId"]
            sessions.append(sess)
            script = lambda js, sess=sess: webdriver(wd, "POST", f"/session/{sess}/execute/sync", {"script": js, "args": []})["value"]
            webdriver(wd, "POST", f"/session/{sess}/url", {"url": page + "?autoanswer=1"})
            script(f"document.getElementById('user').value='{name}';document.getElementById('password').value='secret';"
                   "document.getElementById('login-form').requestSubmit();return true;")
            for _ in range(150):
                if script("return document.getElementById('agent-state').textContent;") == "available":
                    break
                time.sleep(0.1)
            else:
                sys.exit(f"{name}'s page did not log in")
        ids = []
        lock = threading.Lock()

        def calls(n):
            caller = Caller(("127.0.0.1", sip))
            for _ in range(n):
                cid = caller.call("4001", a.talk)
                with lock:
                    ids.append(cid)
                time.sleep(2)  # the agent's wrap-up (1 s), then the next call

        def round_of(total):
            per = [total // a.agents + (1 if i < total % a.agents else 0) for i in range(a.agents)]
            threads = [threading.Thread(target=calls, args=(n,)) for n in per if n]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=600)

        round_of(a.agents)  # warm-up: one call per agent
        time.sleep(2)
        first = proc_status(procs[0].pid)
        round_of(a.calls)
        time.sleep(3)
        last = proc_status(procs[0].pid)
        left = {m: metric(admin, m) for m in ("crest_media_browser_legs", "crest_media_browser_routes",
                                               "crest_media_browser_addresses", "crest_media_calls_active")}
        print(f"{a.agents} agents; after the warm-up ({a.agents} calls): {first[0]} threads, RSS {first[1]} kB; "
              f"after {a.calls} more: {last[0]} threads, RSS {last[1]} kB ({(last[1] - first[1]) / a.calls:+.1f} kB per call)")
        print("left behind: " + ", ".join(f"{k} {v:g}" for k, v in left.items()))
        leaked = any(v != 0 for v in left.values())
        for sess in sessions:
            webdriver(wd, "DELETE", f"/session/{sess}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    lines = open(f"{work}/crest.log").read().splitlines()
    rows = {"INVITE -> 200": [], "200 -> DTLS": [], "INVITE -> media": []}
    for cid in ids:
        mine = [l for l in lines if cid in l]
        def at(text):
            l = next((l for l in mine if text in l), None)
            return stamp(l) if l else None
        inv, ans, dtls, media = (at("connecting the caller"), at("browser leg answered"),
                                 at("browser media connected"), at("RTP latched leg=B"))
        if None in (inv, ans, dtls, media):
            print(f"call {cid}: incomplete", file=sys.stderr)
            continue
        rows["INVITE -> 200"].append((ans - inv) * 1e3)
        rows["200 -> DTLS"].append((dtls - ans) * 1e3)
        rows["INVITE -> media"].append((media - inv) * 1e3)
    n = len(rows["INVITE -> media"])
    print(f"{n} of {len(ids)} calls measured ({work}/crest.log)")
    for k, v in rows.items():
        if v:
            print(f"| {k} | {pct(v, 50):.0f} ms | {pct(v, 95):.0f} ms | {max(v):.0f} ms |")
    ok = n == len(ids) == a.calls + a.agents and not leaked
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
