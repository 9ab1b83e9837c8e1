#!/usr/bin/env bash
# IVR callers against Crest: a bounded soak and load benchmark (loopback only).
#
#   bench/ivr_load.sh                     # soak: 800 + 10,000 callers at 20/s (about 12 minutes)
#   QUICK=1 bench/ivr_load.sh             # quick: 300 + 300 callers (about 4 minutes)
#   bench/ivr_load.sh --make-pcaps DIR    # only write the callers' pcaps (and the audio) into DIR
#
# Settings (environment):
#   CREST=target/release/crest  the binary; nothing is built unless BUILD=1 (then
#                               `cargo build --release -p crest-server --locked --bin crest`)
#   CONFIG=bench/crest-ivr-bench.yaml  checked with `crest check` first; listen.udp and
#                               admin.listen must be on 127.0.0.0/8
#   RATE=20 calls/s, CALLS=10000 (QUICK=1: 300), WARMUP_CALLS=max(200, RATE*HOLD_MAX) = 800
#   (its arrivals span the longest hold, so its concurrency reaches the soak's plateau and the
#   pools and caches that grow with concurrency are grown before the "after warm-up" reading;
#   QUICK=1: = CALLS, the same load twice: what the second run adds is what stays per call),
#   CONCURRENT=2000 (sipp -l, shared out like the rate), HOLD_MIN=2 HOLD_MAX=40 (s, uniform),
#   MIX=1:1:1 (silent:keys:speech shares; each kind is its own sipp process with its share of
#   RATE, CALLS and CONCURRENT), SETTLE=35 (s after the last call before an idle reading:
#   Timer J, 64*T1 = 32 s, lets the last BYE transactions go), IDLE=5 (s of idle samples),
#   CAPTURE=1 CAPTURE_SECS=20 CAPTURE_DELAY=auto (s into the soak: mid-run), ORDERS_STUB=1 (the
#   flow's order backend on 127.0.0.1:8099), SILENT_RTP=1 (0: silent callers send one packet
#   only, then nothing), OPEN_HOURS=1 (a copy of the flows in OUT with business hours all day:
#   after hours the shipped flow books a callback and hangs up), OUT=/tmp/ivr_load/<date>
#
# Phases: idle (cold) -> warm-up (WARMUP_CALLS callers, all ended, SETTLE s) -> idle reading ->
# soak (CALLS callers; tcpdump of Crest's prompt RTP for CAPTURE_SECS) -> all ended, SETTLE s ->
# idle reading. A sampler reads crest's /proc (VmRSS, Threads, utime+stime, fds) and /metrics
# (crest_calls_*, crest_ivr_*) every second into OUT/samples.csv; marks.tsv has exact /proc
# readings at the phase boundaries. The end prints a markdown table for docs/benchmarks.md
# (OUT/summary.md): peak concurrent calls, RSS after warm-up vs after the soak (target within
# 5 %), threads back to the cold idle count, CPU ms per IVR caller-second (crest's CPU over the
# soak / the answered calls' durations summed from sipp's per-call log lines), RSS per
# concurrent caller, failed calls, and the gaps between the prompt RTP packets the callers
# receive: p50/p99/max within talkspurts (bench/ivr_load.py gaps), pauses between prompts apart.
#
# Callers (bench/scenarios/ivr_caller_{silent,keys,speech}.xml) dial 4000 with PCMU + RFC 4733
# telephone-event (payload type 101) and play a 45 s pcap (bench/ivr_pcaps.py): digital
# silence; keys 1 (t=3 s), 1234# (t=9 s), 9 (t=20 s); espeak-ng speech "where is my order"
# (2.5 s), "one two three four" (9 s), "yes" (16 s). They hang up after a uniform random hold;
# a BYE from Crest first ends the call too (not a failure).
# Bounds: every sipp run has -m, -timeout and a coreutils timeout; every wait loop has a count;
# tcpdump, the sampler and the order stub run under timeout; all processes are started here and
# stopped by PID on exit. Needs root (sipp plays pcaps through a raw socket; tcpdump).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

make_pcaps() { # DIR: espeak-ng -> sox (8 kHz mu-law, telephone band) -> ivr_pcaps.py
  local dir=$1 t f
  mkdir -p "$dir"
  for t in "where is my order" "one two three four" "yes"; do
    f="$dir/${t// /-}"
    timeout 30 espeak-ng -v en-us -s 150 -w "$f.wav" "$t"
    timeout 30 sox "$f.wav" -t raw -e mu-law -r 8000 -c 1 "$f.ul" highpass 300 lowpass 3400
  done
  local silent_secs=45; [[ ${SILENT_RTP:-1} == 0 ]] && silent_secs=0.02
  python3 "$HERE/ivr_pcaps.py" --out "$dir/ivr_silent.pcap" --secs "$silent_secs"
  python3 "$HERE/ivr_pcaps.py" --out "$dir/ivr_keys.pcap" --keys 3:1 --keys 9:1234# --keys 20:9
  python3 "$HERE/ivr_pcaps.py" --out "$dir/ivr_speech.pcap" --speech "2.5:$dir/where-is-my-order.ul" \
    --speech "9:$dir/one-two-three-four.ul" --speech "16:$dir/yes.ul"
}

case "${1:-}" in
  -h|--help) awk 'NR>1 && /^#/{sub(/^# ?/,"");print;next} NR>1{exit}' "$0"; exit 0;;
  --make-pcaps) make_pcaps "${2:?directory}"; exit 0;;
  "") ;;
  *) echo "unknown option $1 (settings are environment variables: see --help)" >&2; exit 2;;
esac

# the command as given (the settings the caller set), for the report
SETTINGS=(CREST CONFIG QUICK RATE CALLS WARMUP_CALLS CONCURRENT HOLD_MIN HOLD_MAX MIX SETTLE IDLE
          CAPTURE CAPTURE_SECS CAPTURE_DELAY ORDERS_STUB SILENT_RTP OUT BUILD OPEN_HOURS)
COMMAND=""
for v in "${SETTINGS[@]}"; do [[ -n ${!v+x} ]] && COMMAND+="$v=${!v} "; done
COMMAND+="bench/ivr_load.sh"

QUICK=${QUICK:-0}
CREST=${CREST:-$ROOT/target/release/crest}
CONFIG=${CONFIG:-$HERE/crest-ivr-bench.yaml}
RATE=${RATE:-20}
HOLD_MIN=${HOLD_MIN:-2}; HOLD_MAX=${HOLD_MAX:-40}
if [[ $QUICK == 1 ]]; then CALLS=${CALLS:-300}; WARMUP_CALLS=${WARMUP_CALLS:-$CALLS}; MODE=quick
else
  CALLS=${CALLS:-10000}; MODE=soak
  w=$(echo "$RATE * $HOLD_MAX / 1" | bc); WARMUP_CALLS=${WARMUP_CALLS:-$((w > 200 ? w : 200))}
fi
CONCURRENT=${CONCURRENT:-2000}
MIX=${MIX:-1:1:1}
SETTLE=${SETTLE:-35}; IDLE=${IDLE:-5}
CAPTURE=${CAPTURE:-1}; CAPTURE_SECS=${CAPTURE_SECS:-20}
ORDERS_STUB=${ORDERS_STUB:-1}; SILENT_RTP=${SILENT_RTP:-1}
OUT=${OUT:-/tmp/ivr_load/$(date +%Y%m%d_%H%M%S)}
BUILD=${BUILD:-0}
OPEN_HOURS=${OPEN_HOURS:-1}
[[ $CREST == /* ]] || CREST="$PWD/$CREST"
[[ $CONFIG == /* ]] || CONFIG="$PWD/$CONFIG"

# ---- sanity -----------------------------------------------------------------------------------
int() { [[ $2 =~ ^[0-9]+$ ]] || { echo "$1 must be a whole number (got '$2')" >&2; exit 2; }; }
int CALLS "$CALLS"; int WARMUP_CALLS "$WARMUP_CALLS"; int CONCURRENT "$CONCURRENT"; int HOLD_MIN "$HOLD_MIN"
int HOLD_MAX "$HOLD_MAX"; int SETTLE "$SETTLE"; int IDLE "$IDLE"; int CAPTURE_SECS "$CAPTURE_SECS"
[[ $RATE =~ ^[0-9]+(\.[0-9]+)?$ ]] && (( $(echo "$RATE > 0 && $RATE <= 500" | bc -l) )) || { echo "RATE must be in (0, 500]" >&2; exit 2; }
((CALLS >= 1 && CALLS <= 200000 && WARMUP_CALLS >= 1)) || { echo "CALLS must be 1..200000, WARMUP_CALLS >= 1" >&2; exit 2; }
((HOLD_MIN >= 1 && HOLD_MAX >= HOLD_MIN && HOLD_MAX <= 600)) || { echo "need 1 <= HOLD_MIN <= HOLD_MAX <= 600" >&2; exit 2; }
IFS=: read -r W_SILENT W_KEYS W_SPEECH <<<"$MIX"
for w in "$W_SILENT" "$W_KEYS" "$W_SPEECH"; do int MIX "$w"; done
W_SUM=$((W_SILENT + W_KEYS + W_SPEECH)); ((W_SUM > 0)) || { echo "MIX needs a non-zero share" >&2; exit 2; }
for t in sipp python3 espeak-ng sox curl ss bc timeout; do
  command -v "$t" >/dev/null || { echo "$t missing (./scripts/setup.sh installs sipp, espeak-ng, sox)" >&2; exit 1; }
done
((EUID == 0)) || { echo "run as root: sipp plays pcaps through a raw socket, tcpdump captures lo" >&2; exit 1; }

if [[ ! -x $CREST ]]; then
  if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && timeout 3600 cargo build --release -p crest-server --locked --bin crest)
    CREST="$ROOT/target/release/crest"
  else
    echo "no crest binary at $CREST: build it (cargo build --release -p crest-server --locked), set CREST=, or BUILD=1" >&2
    exit 1
  fi
fi

yaml_val() { # section key -> value of "  key: value" under "section:" (the config's simple layout)
  awk -v s="$1:" -v k="$2:" '$0 ~ "^[^ #]" {in_s = ($1 == s)} in_s && $1 == k {v=$2; gsub(/["'\'']/, "", v); print v; exit}' "$CONFIG"
}
SIP=$(yaml_val listen udp); ADMIN=$(yaml_val admin listen)
PMIN=$(yaml_val media port_min); PMAX=$(yaml_val media port_max)
PMIN=${PMIN:-20000}; PMAX=${PMAX:-59999}
for a in "$SIP" "$ADMIN"; do
  [[ $a =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+$ ]] || { echo "$CONFIG: listen.udp and admin.listen must be 127.x.x.x:port (got '$a')" >&2; exit 1; }
done
SIP_PORT=${SIP##*:}; ADMIN_PORT=${ADMIN##*:}
METRICS="http://$ADMIN/metrics"

mkdir -p "$OUT/media"
echo "# results in $OUT"
# The shipped flow asks after hours (08-22 at UTC+8) for a callback and hangs up: a run's
# callers would leave at once in the evening. OPEN_HOURS=1 runs a copy of the flows open all day.
if [[ $OPEN_HOURS == 1 ]]; then
  FLOWS=$(yaml_val ivr flows_dir); [[ $FLOWS == /* ]] || FLOWS="$ROOT/$FLOWS"
  rm -rf "$OUT/flows"; cp -r "$FLOWS" "$OUT/flows"
  sed -i -E 's/(business_hours: \{days: \[[0-9, ]*\]), open: [0-9]+, close: [0-9]+/\1, open: 0, close: 24/' "$OUT"/flows/*.yaml
  sed -E "s#^(  flows_dir: ).*#\1$OUT/flows#" "$CONFIG" > "$OUT/crest.yaml"
  grep -q "open: 0, close: 24" "$OUT"/flows/main.yaml || { echo "could not open the flows' hours" >&2; exit 1; }
  SHOWN_CONFIG=$CONFIG; CONFIG="$OUT/crest.yaml"
fi
(cd "$ROOT" && timeout 60 "$CREST" check --config "$CONFIG") | tee "$OUT/check.txt"

# ---- ports: the callers' SIP/control/media ports, crest's, the stub's ----------------------------
KINDS=(silent keys speech)
declare -A WEIGHT=([silent]=$W_SILENT [keys]=$W_KEYS [speech]=$W_SPEECH)
declare -A SIPP_PORT=([silent]=5091 [keys]=5092 [speech]=5093)
declare -A CTRL_PORT=([silent]=8901 [keys]=8902 [speech]=8903)
declare -A MEDIA_PORT=([silent]=16000 [keys]=16100 [speech]=16200)
udp_busy() { [[ -n $(ss -Hlun "sport = :$1" 2>/dev/null) ]]; }
tcp_busy() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }
busy=()
udp_busy "$SIP_PORT" && busy+=("udp $SIP_PORT")
tcp_busy "$ADMIN_PORT" && busy+=("tcp $ADMIN_PORT")
for k in "${KINDS[@]}"; do
  for p in "${SIPP_PORT[$k]}" "${CTRL_PORT[$k]}" "${MEDIA_PORT[$k]}" $((MEDIA_PORT[$k] + 2)); do udp_busy "$p" && busy+=("udp $p"); done
done
((ORDERS_STUB)) && tcp_busy 8099 && { echo "# 127.0.0.1:8099 taken: no order stub (the flow's lookups go to whatever listens there)"; ORDERS_STUB=0; }
((${#busy[@]} == 0)) || { echo "ports in use: ${busy[*]} (another crest or sipp?)" >&2; exit 1; }
if ((CAPTURE)) && ! command -v tcpdump >/dev/null; then
  echo "# installing tcpdump"
  DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends tcpdump >/dev/null 2>&1 ||
    { timeout 300 apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends tcpdump >/dev/null 2>&1; } ||
    { echo "# tcpdump could not be installed: no RTP capture"; CAPTURE=0; }
fi

# ---- media and scenarios -----------------------------------------------------------------------
make_pcaps "$OUT/media" | tee "$OUT/media/pcaps.txt"
for k in "${KINDS[@]}"; do
  sed -e "s/min=\"2000\" max=\"40000\"/min=\"$((HOLD_MIN * 1000))\" max=\"$((HOLD_MAX * 1000))\"/" \
    "$HERE/scenarios/ivr_caller_$k.xml" >"$OUT/media/ivr_caller_$k.xml"
  grep -q "max=\"$((HOLD_MAX * 1000))\"" "$OUT/media/ivr_caller_$k.xml" || { echo "hold not set in ivr_caller_$k.xml" >&2; exit 1; }
done

# ---- processes ---------------------------------------------------------------------------------
PIDS=(); CPID=""; SAMPLER=""
cleanup() {
  set +e
  touch "$OUT/stop"
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  if [[ -n $SAMPLER ]]; then
    for _ in $(seq 30); do kill -0 "$SAMPLER" 2>/dev/null || break; sleep 0.1; done
    kill "$SAMPLER" 2>/dev/null
  fi
  if [[ -n $CPID ]] && kill -0 "$CPID" 2>/dev/null; then
    kill -TERM "$CPID"
    for _ in $(seq 100); do kill -0 "$CPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$CPID" 2>/dev/null
  fi
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'echo "ivr_load.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

ulimit -n "$(ulimit -Hn)"
(cd "$ROOT" && exec "$CREST" run --config "$CONFIG") >"$OUT/crest.log" 2>&1 &
CPID=$!
for _ in $(seq 300); do curl -sf "http://$ADMIN/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://$ADMIN/healthz" >/dev/null || { echo "crest did not come up in 30 s; see $OUT/crest.log" >&2; exit 1; }
if ((ORDERS_STUB)); then
  timeout 7200 python3 "$HERE/ivr_load.py" orders --port 8099 --max-secs 7000 >"$OUT/orders.log" 2>&1 &
  PIDS+=($!)
fi

HZ=$(getconf CLK_TCK)
printf "epoch\tmark\tcpu_ms\tcpu_children_ms\trss_kb\tthreads\tfds\n" >"$OUT/marks.tsv"
mark() { # NAME: exact /proc readings now
  local s r t
  s=$(awk '{sub(/^.*\) /,""); print ($12+$13)*1000/'"$HZ"', ($14+$15)*1000/'"$HZ"'}' "/proc/$CPID/stat")
  r=$(awk '/^VmRSS/{print $2}' "/proc/$CPID/status"); t=$(awk '/^Threads/{print $2}' "/proc/$CPID/status")
  printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$(date +%s.%N)" "$1" "${s% *}" "${s#* }" "$r" "$t" "$(ls "/proc/$CPID/fd" | wc -l)" >>"$OUT/marks.tsv"
}
phase() { echo "$1" >"$OUT/phase.tmp" && mv -f "$OUT/phase.tmp" "$OUT/phase"; }
active() { { curl -s --max-time 2 "$METRICS" || true; } | awk '$1=="crest_calls_active" && !n++ {print $2}'; }

# total time budget for the sampler: both phases' arrivals + holds + settles + slack
BUDGET=$(echo "($CALLS + $WARMUP_CALLS) / $RATE + 2 * ($HOLD_MAX + $SETTLE + $IDLE + 200) + 60" | bc)
phase idle
timeout "$((BUDGET + 120))" python3 "$HERE/ivr_load.py" sample --pid "$CPID" --metrics "$METRICS" \
  --out "$OUT/samples.csv" --phase-file "$OUT/phase" --stop-file "$OUT/stop" --max-secs "$BUDGET" &
SAMPLER=$!

run_load() { # PHASE CALLS: the three kinds of callers in parallel, each with its share; waits
  local ph=$1 total=$2 k n r l b left=$2 i=0 pids=() last=""
  for k in "${KINDS[@]}"; do ((WEIGHT[$k] > 0)) && last=$k; done
  for k in "${KINDS[@]}"; do
    ((WEIGHT[$k] > 0)) || continue
    if [[ $k == "$last" ]]; then n=$left; else n=$((total * WEIGHT[$k] / W_SUM)); fi
    left=$((left - n)); ((n > 0)) || continue
    r=$(printf "%.3f" "$(echo "scale=6; $RATE * ${WEIGHT[$k]} / $W_SUM" | bc)")
    l=$((CONCURRENT * WEIGHT[$k] / W_SUM)); ((l >= 1)) || l=1
    b=$(echo "$n / $r + $HOLD_MAX + 60" | bc)
    echo "# $ph $k: $n callers at $r/s, at most $l at once (bounded by ${b}s)"
    (cd "$OUT/media" && exec timeout -k 5 "$((b + 15))" sipp "$SIP" -sf "ivr_caller_$k.xml" -s 4000 \
        -i 127.0.0.1 -mi 127.0.0.1 -p "${SIPP_PORT[$k]}" -mp "${MEDIA_PORT[$k]}" -cp "${CTRL_PORT[$k]}" \
        -m "$n" -r "$r" -rp 1000 -l "$l" -nostdin -timeout "${b}s" -buff_size 4194304 \
        -trace_logs -log_file "$OUT/${ph}_${k}_logs.log" \
        -trace_stat -stf "$OUT/${ph}_${k}_stat.csv" -fd 1 \
        -trace_err -error_file "$OUT/${ph}_${k}_err.log" -max_log_size 20000000 \
        >"$OUT/${ph}_${k}.out" 2>&1) &
    pids+=($!); PIDS+=($!)
    sleep 1.1  # sipp seeds its uniform distribution with time(NULL): one second apart, each
  done         # kind draws its own holds
  for p in "${pids[@]}"; do wait "$p" || echo "# sipp ($p) exited with $? (see $OUT/${ph}_*.out, *_err.log)"; done
}
drain() { # wait (bounded) until crest has no call left
  local a
  for _ in $(seq 120); do a=$(active); [[ ${a:-1} == 0 ]] && return 0; sleep 0.5; done
  echo "# crest still reports ${a:-?} active calls 60 s after the callers finished"
}
settle_then_idle() { # NAME: SETTLE s, then IDLE s of samples in phase NAME
  phase "${1}_settle"; sleep "$SETTLE"; phase "$1"; sleep "$IDLE"; mark "$1"
}

# ---- run -------------------------------------------------------------------------------------------
sleep "$IDLE"; mark idle
echo "# warm-up: $WARMUP_CALLS callers"
phase warmup; mark warmup_start
run_load warmup "$WARMUP_CALLS"
phase warmup_drain; drain; mark warmup_end
settle_then_idle warm_idle

ARRIVE=$(echo "$CALLS / $RATE" | bc)
CAPTURE_DELAY=${CAPTURE_DELAY:-$(( ARRIVE / 2 - CAPTURE_SECS / 2 > 5 ? ARRIVE / 2 - CAPTURE_SECS / 2 : 5 ))}
int CAPTURE_DELAY "$CAPTURE_DELAY"
if ((CAPTURE)); then
  filter="udp and src portrange $PMIN-$PMAX and (dst port ${MEDIA_PORT[silent]} or dst port ${MEDIA_PORT[keys]} or dst port ${MEDIA_PORT[speech]})"
  (sleep "$CAPTURE_DELAY"; exec timeout -k 2 "$CAPTURE_SECS" tcpdump -i lo -nn -s 96 -B 16384 -w "$OUT/prompts.pcap" "$filter") \
    >"$OUT/tcpdump.log" 2>&1 &
  PIDS+=($!)
fi
echo "# soak: $CALLS callers at $RATE/s (RTP capture: ${CAPTURE_SECS}s from ${CAPTURE_DELAY}s)"
phase soak; mark soak_start
run_load soak "$CALLS"
phase soak_drain; drain; mark soak_end
settle_then_idle after

touch "$OUT/stop"; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=""
kill -TERM "$CPID"; for _ in $(seq 400); do kill -0 "$CPID" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$CPID" 2>/dev/null || true; wait "$CPID" 2>/dev/null || true; CPID=""

# ---- report -----------------------------------------------------------------------------------
if ((CAPTURE)) && [[ -s $OUT/prompts.pcap ]]; then
  timeout 300 python3 "$HERE/ivr_load.py" gaps --pcap "$OUT/prompts.pcap" \
    --ports "${MEDIA_PORT[silent]},${MEDIA_PORT[keys]},${MEDIA_PORT[speech]}" --out "$OUT/gaps.json" >/dev/null
fi
build=release; [[ $CREST == */debug/* ]] && build=debug
dirty=""; [[ -n $(git -C "$ROOT" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null) ]] && dirty="+uncommitted changes"
cat >"$OUT/params.env" <<EOF
MODE=$MODE
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
NPROC=$(nproc)
CPU=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
KERNEL=Linux $(uname -r)
MEM=$(awk '/^MemTotal/{printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo)
CREST=${CREST#"$ROOT"/}
CREST_BUILD=$build, built $(date -u -r "$CREST" '+%Y-%m-%d %H:%M UTC')
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$dirty
CONFIG=${SHOWN_CONFIG:-$CONFIG}; CONFIG=${CONFIG#"$ROOT"/}
COMMAND=$COMMAND
RATE=$RATE
SOAK_CALLS=$CALLS
WARMUP_CALLS=$WARMUP_CALLS
CONCURRENT=$CONCURRENT
HOLD_MIN=$HOLD_MIN
HOLD_MAX=$HOLD_MAX
MIX=$MIX
SETTLE=$SETTLE
CAPTURE_SECS=$CAPTURE_SECS
CAPTURE_DELAY=$CAPTURE_DELAY
EOF
echo
python3 "$HERE/ivr_load.py" report --out "$OUT"
