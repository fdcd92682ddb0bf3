#!/usr/bin/env bash
# Instructions per page and per `Recommend` call, counted by callgrind (docs/benchmarks.md,
# "Profiling notes"). One command:
#
#   bench/callgrind.sh                         ours and the frameworks' floor: 3,000 pages, 20,000 calls
#   bench/callgrind.sh --pages N --calls M     N pages and M calls each
#   bench/callgrind.sh --traces 100|10|off     ours with traces on, 100% or 10% sampled (default off)
#   bench/callgrind.sh --rust-log FILTER       ours with RUST_LOG=FILTER (default warn; with
#                                              --traces on, the services' default info,notify=warn)
#
# Builds release binaries with symbols (in $CARGO_TARGET_DIR/callgrind, default target/callgrind)
# and runs the servers under `valgrind --tool=callgrind` with one Tokio worker thread and
# RUST_LOG=warn. Per page: ours (marketplace + recommendations) and the floor (salvo-floor --grpc
# + tonic-floor), both processes profiled, 300 pages to warm up, counters zeroed, N pages
# (`h2load --h1 -c 4`). Per call: recommendations alone and tonic-floor alone, 2,000 calls to warm
# up, counters zeroed, M calls (`h2load -c 4 -m 8`, the request of `bench-tool request-body`).
# The counts do not depend on how busy the machine is, so they compare commits where req/s cannot.
# This file needs nothing but the binaries, `bench-tool wait` and `request-body` and
# tests/lib/free-port.py, so it can be copied into an older checkout to measure it the same way.
# The profiles stay in $CARGO_TARGET_DIR/callgrind/profiles for `callgrind_annotate`.
# With --traces 100 or 10, `bench-tool otlp-sink` (not profiled) is a local OTLP/gRPC receiver,
# and ours (both services, for pages and for calls) export their spans to it with the standard
# variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL=grpc,
# OTEL_TRACES_SAMPLER=parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG=1.0 or 0.1); the floors
# run as without. The run fails unless the sink received spans from both services. Spans are
# exported every OTEL_BSP_SCHEDULE_DELAY=200 ms instead of the default 5 s: N requests take a few
# seconds under callgrind, and the counters are dumped before the services stop, so with 5 s the
# window would hold no export at all and count only the spans' making. With 200 ms it holds the
# exports of nearly all its spans (one batch more or less), at a little more fixed cost per export.
# Spans are recorded at `info` (docs/configuration.md, Traces), so RUST_LOG=warn would leave every
# span out: with traces on, ours run with the services' default filter instead, and the cost of the
# traces alone is against `--traces off --rust-log info,notify=warn`.
set -euo pipefail

PAGES=3000 CALLS=20000 TRACES=off RUST_LOG_OURS=
while [ $# -gt 0 ]; do
  case $1 in
    --pages) PAGES=$2; shift ;;
    --calls) CALLS=$2; shift ;;
    --traces) TRACES=$2; shift ;;
    --rust-log) RUST_LOG_OURS=$2; shift ;;
    -h | --help) sed -n '2,34p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
case $TRACES in
  off) : "${RUST_LOG_OURS:=warn}" ;;
  100) RATIO=1.0 ;;
  10) RATIO=0.1 ;;
  *) echo "--traces takes off, 100 or 10, not $TRACES" >&2; exit 2 ;;
esac
: "${RUST_LOG_OURS:=info,notify=warn}"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
export CARGO_TARGET_DIR=$TARGET/callgrind
BIN=$CARGO_TARGET_DIR/release
OUT=$CARGO_TARGET_DIR/profiles

die() { echo "callgrind: $*" >&2; exit 1; }

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v h2load >/dev/null || need+=(nghttp2-client)
if [ ${#need[@]} -gt 0 ]; then
  sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null \
    || die "cannot install ${need[*]}"
fi

(cd "$ROOT" && CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  cargo build --release --locked -p recommendations -p marketplace -p bookshop-bench) \
  || die "cargo build failed"

rm -rf "$OUT" && mkdir -p "$OUT"
"$BIN/bench-tool" request-body "$OUT/request.bin"
# Loopback only, and no Prometheus listener on the fixed port 9464 (the floors ignore these). Set
# here, not through `env` in front of a command, which valgrind would profile instead.
export RECOMMENDATIONS__SERVER__HOST=127.0.0.1 RECOMMENDATIONS__METRICS__PORT=0
export MARKETPLACE__SERVER__HOST=127.0.0.1 RUST_LOG=warn
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
port() { python3 "$ROOT/tests/lib/free-port.py" "$OUT/ports"; }

# callgrind NAME COMMAND...: COMMAND under callgrind in the background, with one worker thread
# (output in NAME.log, profiles NAME.PID*); its pid in VG_PID.
callgrind() {
  local name=$1; shift
  TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$OUT/$name.%p" \
    "$@" >"$OUT/$name.log" 2>&1 &
  VG_PID=$!
  PIDS+=("$VG_PID")
}
# ready NAME PROBE TARGET: waits (60 s at most, valgrind is slow) for the server NAME.
ready() {
  "$BIN/bench-tool" wait --timeout-ms 60000 "$2" "$3" >/dev/null \
    || { tail -20 "$OUT/$1.log" >&2; die "$1 is not ready"; }
}
# per NAME N: the instructions of the dump taken after the N requests (callgrind_control -d: the
# file with a part suffix), per request, in thousands.
per() {
  local dumps=("$OUT/$1".*.*) total
  total=$(callgrind_annotate "${dumps[0]}" 2>/dev/null \
    | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
  awk -v t="$total" -v n="$2" 'BEGIN {printf "%.1f", t / n / 1000}'
}
# measure WARM-UP N PID... -- H2LOAD-ARGUMENTS...: WARM-UP requests, the counters of PID...
# zeroed, N requests that must all answer 2xx, a dump of the counters, the processes stopped.
measure() {
  local warm_up=$1 n=$2 pids=() ok; shift 2
  while [ "$1" != -- ]; do pids+=("$1"); shift; done
  shift
  h2load -n "$warm_up" "$@" >/dev/null
  for pid in "${pids[@]}"; do callgrind_control -z "$pid" >/dev/null 2>&1; done
  ok=$(h2load -n "$n" "$@" | awk '/^status codes:/ {print $3}')
  [ "$ok" = "$n" ] || die "$ok of $n requests answered 2xx"
  for pid in "${pids[@]}"; do callgrind_control -d "$pid" >/dev/null 2>&1; done
  kill "${pids[@]}"
  wait "${pids[@]}" 2>/dev/null || true
}

# pages NAME BACKEND-CMD... -- FRONTEND-CMD...: both under callgrind (the commands get REC_PORT
# and WEB_PORT substituted), N pages, and one line of instructions per page.
pages() {
  local name=$1 backend=() rec_port web_port; shift
  while [ "$1" != -- ]; do backend+=("$1"); shift; done
  shift
  rec_port=$(port) web_port=$(port)
  callgrind "$name-backend" "${backend[@]//REC_PORT/$rec_port}"
  local backend_pid=$VG_PID
  ready "$name-backend" --recommend "127.0.0.1:$rec_port"
  local frontend=("${@//REC_PORT/$rec_port}")
  callgrind "$name-frontend" "${frontend[@]//WEB_PORT/$web_port}"
  local frontend_pid=$VG_PID
  ready "$name-frontend" --http "http://127.0.0.1:$web_port/"
  measure 300 "$PAGES" "$frontend_pid" "$backend_pid" -- --h1 -c 4 "http://127.0.0.1:$web_port/"
  local web grpc
  web=$(per "$name-frontend" "$PAGES") grpc=$(per "$name-backend" "$PAGES")
  printf '%-6s web %6sk  grpc %6sk  total %6sk instructions per page\n' "$name" "$web" "$grpc" \
    "$(awk -v a="$web" -v b="$grpc" 'BEGIN {printf "%.1f", a + b}')"
}

# calls NAME CMD...: the gRPC server alone under callgrind (REC_PORT substituted), M calls, and
# one line of instructions per call.
calls() {
  local name=$1 rec_port; shift
  rec_port=$(port)
  callgrind "$name-recommend" "${@//REC_PORT/$rec_port}"
  ready "$name-recommend" --recommend "127.0.0.1:$rec_port"
  measure 2000 "$CALLS" "$VG_PID" -- -c 4 -m 8 -d "$OUT/request.bin" -H 'content-type: application/grpc' \
    -H 'te: trailers' "http://127.0.0.1:$rec_port/Recommendations/Recommend"
  printf '%-6s recommend  %6sk instructions per call\n' "$name" "$(per "$name-recommend" "$CALLS")"
}

# Ours' log filter, and with --traces the sink and ours' variables for it (all undone before the
# floors).
export RUST_LOG=$RUST_LOG_OURS
[ "$RUST_LOG" = warn ] || echo "ours with RUST_LOG=$RUST_LOG"
if [ "$TRACES" != off ]; then
  sink_port=$(port)
  "$BIN/bench-tool" otlp-sink --addr "127.0.0.1:$sink_port" >"$OUT/sink.out" 2>"$OUT/sink.log" &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  for _ in $(seq 100); do
    (: <"/dev/tcp/127.0.0.1/$sink_port") 2>/dev/null && break
    kill -0 "$SINK_PID" 2>/dev/null || { cat "$OUT/sink.log" >&2; die "the OTLP sink exited"; }
    sleep 0.1
  done
  export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$sink_port OTEL_EXPORTER_OTLP_PROTOCOL=grpc
  export OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=$RATIO
  export OTEL_BSP_SCHEDULE_DELAY=200
  echo "traces on: ${TRACES}% sampled (parentbased_traceidratio $RATIO), OTLP/gRPC to 127.0.0.1:$sink_port"
fi

pages ours "$BIN/recommendations" --catalog "$ROOT/catalog.toml" --port REC_PORT \
  -- "$BIN/marketplace" --port WEB_PORT --recommendations 127.0.0.1:REC_PORT
calls ours "$BIN/recommendations" --catalog "$ROOT/catalog.toml" --port REC_PORT

# The services have stopped, their last spans flushed: the sink prints its counts as it stops.
export RUST_LOG=warn
if [ "$TRACES" != off ]; then
  unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_PROTOCOL OTEL_TRACES_SAMPLER \
    OTEL_TRACES_SAMPLER_ARG OTEL_BSP_SCHEDULE_DELAY
  kill "$SINK_PID"
  wait "$SINK_PID" || { cat "$OUT/sink.log" >&2; die "the OTLP sink failed"; }
  echo "spans received: $(paste -sd ' ' "$OUT/sink.out")"
  for service in marketplace recommendations; do
    awk -v s="$service" '$1 == s && $2 > 0 {found = 1} END {exit !found}' "$OUT/sink.out" \
      || die "the OTLP sink received no span from $service"
  done
fi

# The floor answers ours' page and JSON byte for byte, as in bench/run.sh.
rec_port=$(port) web_port=$(port)
"$BIN/recommendations" --catalog "$ROOT/catalog.toml" --port "$rec_port" >/dev/null 2>&1 &
PIDS+=($!)
"$BIN/marketplace" --port "$web_port" --recommendations "127.0.0.1:$rec_port" >/dev/null 2>&1 &
PIDS+=($!)
"$BIN/bench-tool" wait --http "http://127.0.0.1:$web_port/readyz" >/dev/null || die "ours did not start"
curl -sf "http://127.0.0.1:$web_port/" -o "$OUT/page.html"
curl -sf "http://127.0.0.1:$web_port/api/recommendations" -o "$OUT/api.json"
cleanup
PIDS=()

pages floor "$BIN/tonic-floor" --port REC_PORT \
  -- "$BIN/salvo-floor" --port WEB_PORT --page "$OUT/page.html" --json "$OUT/api.json" \
  --grpc 127.0.0.1:REC_PORT
calls floor "$BIN/tonic-floor" --port REC_PORT
