#!/usr/bin/env bash
# RTP relay benchmark of Crest side by side with rtpengine (userspace) in the same run.
#
#   bench/rtp_anchor.sh [--calls "250 500 1000 1500 2000"] [--dur 15] [--only crest|rtpengine]
#                       [--wait-quiet SECS]  (before each step, wait for an idle box)
#                       [--nice N]  (crest, rtpengine and the generator at nice N: a busy
#                       neighbour on the shared box then disturbs the tail delay less)
#                       [--max-p99-ms MS]  (PASS threshold on p99 one-way delay; default 10)
#
# Crest: starts `crest` (release) with bench/crest-media-bench.yaml, sets up max(--calls)
# anchored G.711 calls through SIP (crates/server/examples/anchor_calls.rs: the caller's SDP
# points at the blaster's A socket, the callee's at its B socket), records crest's resident
# memory before and after, then runs the shared ../shared/bench/run_rtp_baseline.sh with the
# port map (--relay map) and the same steps against rtpengine (its NG protocol sets up calls).
# PASS per step: loss < 0.1 %, p99 one-way delay < 10 ms (the script's rule; the issue asks
# for < 5 ms added, read from the p99 column), >= 95 % of the packet rate offered.
# Loopback only; every step bounded by the shared script's timeouts.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED:-$ROOT/../shared/bench}"
CALLS="250 500 1000 1500 2000"; DUR=15; ONLY=""; QUIET=0; NICE=0; P99=10
while (($#)); do
  case "$1" in
    --calls) CALLS=$2; shift 2;;
    --dur) DUR=$2; shift 2;;
    --only) ONLY=$2; shift 2;;
    --wait-quiet) QUIET=$2; shift 2;;
    --nice) NICE=$2; shift 2;;
    --max-p99-ms) P99=$2; shift 2;;
    -h|--help) awk 'NR>1 && /^#/{sub(/^# ?/,"");print;next} NR>1{exit}' "$0"; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
OUT=/tmp/crest_bench/rtp_$(date +%Y%m%d_%H%M%S); mkdir -p "$OUT"
bash "$SHARED/install.sh" >/dev/null
(cd "$ROOT" && cargo build --release -q -p crest-server --bin crest --example anchor_calls)
CREST="$ROOT/target/release/crest"; SETUP="$ROOT/target/release/examples/anchor_calls"
MAX=0; for n in $CALLS; do ((n > MAX)) && MAX=$n; done
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
CPID=""
cleanup() { [[ -n $CPID ]] && kill "$CPID" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [[ $ONLY != rtpengine ]]; then
  ulimit -n "$(ulimit -Hn)"
  nice -n "$NICE" "$CREST" run --config "$HERE/crest-media-bench.yaml" >"$OUT/crest.log" 2>&1 &
  CPID=$!
  for _ in $(seq 100); do curl -sf 127.0.0.1:18080/healthz >/dev/null 2>&1 && break; sleep 0.1; done
  sleep 1
  R0=$(rss_kb "$CPID")
  timeout 300 "$SETUP" 127.0.0.1:5060 service "$MAX" 127.0.0.1:5070 127.0.0.1:62000 127.0.0.1:62002 "$OUT/ports.txt" | tee "$OUT/setup.txt"
  sleep 2
  R1=$(rss_kb "$CPID"); N=$(wc -l <"$OUT/ports.txt")
  echo "# crest idle memory: ${R0} kB -> ${R1} kB with $N anchored calls: $(( (R1 - R0) / (N > 0 ? N : 1) )) kB per call" | tee "$OUT/memory.txt"
  bash "$SHARED/run_rtp_baseline.sh" --relay map --map "$OUT/ports.txt" --relay-pid "$CPID" \
    --calls "$CALLS" --dur "$DUR" --wait-quiet "$QUIET" --nice "$NICE" --max-p99-ms "$P99" --out "$OUT/crest" --no-stop | tee "$OUT/crest.txt"
  R2=$(rss_kb "$CPID")
  echo "# crest memory after the load: ${R2} kB: $(( (R2 - R0) / (N > 0 ? N : 1) )) kB per call" | tee -a "$OUT/memory.txt"
  curl -s 127.0.0.1:18080/metrics | grep -E '^crest_(media|rtp)' >"$OUT/crest-metrics.txt" || true
  kill "$CPID"; wait "$CPID" 2>/dev/null || true; CPID=""
fi
if [[ $ONLY != crest ]]; then
  bash "$SHARED/run_rtp_baseline.sh" --calls "$CALLS" --dur "$DUR" --wait-quiet "$QUIET" --nice "$NICE" --max-p99-ms "$P99" --out "$OUT/rtpengine" --no-stop | tee "$OUT/rtpengine.txt"
fi
echo "# results in $OUT"
