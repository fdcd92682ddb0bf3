#!/usr/bin/env bash
# Instructions per page and per `Recommend` call, counted by callgrind, ours and the frameworks'
# floor (docs/benchmarks.md, "Instructions"):
#
#   bench/callgrind.sh [--pages N] [--calls M]   N pages (3,000) and M calls (20,000) counted
#   bench/callgrind.sh --traces 100|10|off       ours exporting traces (100% or 10% sampled) to
#                                                bench-tool otlp-sink; default off
#   bench/callgrind.sh --rust-log FILTER         ours' RUST_LOG: warn, or with traces the services'
#                                                default info,notify=warn (spans are made at info)
#   bench/callgrind.sh --symbols                 a build of its own with symbols (in
#                                                $CARGO_TARGET_DIR/callgrind), for callgrind_annotate
#
# The release binaries, one Tokio worker thread, each server profiled, counters zeroed after a
# warm-up (300 pages, 2,000 calls). It needs only the binaries, so it can be copied into an older
# checkout to measure it the same way.
set -euo pipefail

PAGES=3000 CALLS=20000 TRACES=off RUST_LOG_OURS= SYMBOLS=0
while [ $# -gt 0 ]; do
  case $1 in
    --pages) PAGES=$2; shift ;;
    --calls) CALLS=$2; shift ;;
    --traces) TRACES=$2; shift ;;
    --rust-log) RUST_LOG_OURS=$2; shift ;;
    --symbols) SYMBOLS=1 ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
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
export CARGO_TARGET_DIR=$TARGET
SYMBOLS_ENV=()
if [ "$SYMBOLS" = 1 ]; then
  CARGO_TARGET_DIR=$TARGET/callgrind SYMBOLS_ENV=(CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only)
fi
BIN=$CARGO_TARGET_DIR/release OUT=$TARGET/callgrind/profiles
die() { echo "callgrind: $*" >&2; exit 1; }

if ! command -v valgrind >/dev/null || ! command -v h2load >/dev/null; then
  sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
  { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq valgrind nghttp2-client >/dev/null; } \
    || die "cannot install valgrind and h2load"
fi
(cd "$ROOT" && env "${SYMBOLS_ENV[@]}" cargo build --release --locked -p recommendations -p marketplace -p bookshop-bench) \
  || die "cargo build failed"

rm -rf "$OUT" && mkdir -p "$OUT"
"$BIN/bench-tool" request-body "$OUT/request.bin"
# Loopback only, no Prometheus listener on the fixed port 9464 (the floors ignore these); set
# here, not with `env` in front of a command, which valgrind would profile instead.
export RECOMMENDATIONS__SERVER__HOST=127.0.0.1 RECOMMENDATIONS__METRICS__PORT=0 MARKETPLACE__SERVER__HOST=127.0.0.1
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
port() { python3 "$ROOT/tests/lib/free-port.py" "$OUT/ports"; }
# up NAME PROBE TARGET PID: waits (60 s at most, valgrind is slow) until PROBE answers at TARGET.
up() { "$BIN/bench-tool" wait "$2" "$3" --pid "$4" --timeout-ms 60000 || { tail -20 "$OUT/$1.log" >&2; die "$1 is not up"; }; }

# callgrind NAME PROBE TARGET COMMAND...: COMMAND under callgrind in the background (output in
# NAME.log, profiles NAME.PID*) until up; its pid in VG_PID.
callgrind() {
  TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$OUT/$1.%p" "${@:4}" \
    >"$OUT/$1.log" 2>&1 &
  VG_PID=$!
  PIDS+=("$VG_PID")
  up "$1" "$2" "$3" "$VG_PID"
}
# per NAME N: the instructions of NAME's dump after the N requests, per request, in thousands.
per() {
  local dumps=("$OUT/$1".*.*)
  callgrind_annotate "${dumps[0]}" 2>/dev/null \
    | awk -v n="$2" '/PROGRAM TOTALS/ {gsub(",", "", $1); printf "%.1f", $1 / n / 1000; exit}'
}
# measure WARM-UP N PID... -- H2LOAD-ARGUMENTS...: WARM-UP requests, the counters of PID...
# zeroed, N requests that must all answer 2xx, the counters dumped, the processes stopped.
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
# pages NAME BACKEND-COMMAND... -- FRONTEND-COMMAND...: both under callgrind (REC_PORT and
# WEB_PORT replaced by their ports), N pages, one line of instructions per page. Ours' page
# and JSON are saved (before the warm-up) for the floor, which answers them byte for byte.
pages() {
  local name=$1 backend=() rec_port web_port backend_pid web grpc; shift
  while [ "$1" != -- ]; do backend+=("$1"); shift; done
  shift
  rec_port=$(port) web_port=$(port)
  callgrind "$name-backend" recommend "127.0.0.1:$rec_port" "${backend[@]//REC_PORT/$rec_port}"
  backend_pid=$VG_PID
  local frontend=("${@//REC_PORT/$rec_port}")
  callgrind "$name-frontend" http "http://127.0.0.1:$web_port/" "${frontend[@]//WEB_PORT/$web_port}"
  if [ "$name" = ours ]; then
    curl -sf "http://127.0.0.1:$web_port/" -o "$OUT/page.html"
    curl -sf "http://127.0.0.1:$web_port/api/recommendations" -o "$OUT/api.json"
  fi
  measure 300 "$PAGES" "$VG_PID" "$backend_pid" -- --h1 -c 4 "http://127.0.0.1:$web_port/"
  web=$(per "$name-frontend" "$PAGES") grpc=$(per "$name-backend" "$PAGES")
  printf '%-6s web %6sk  grpc %6sk  total %6sk instructions per page\n' "$name" "$web" "$grpc" \
    "$(awk -v a="$web" -v b="$grpc" 'BEGIN {printf "%.1f", a + b}')"
}
# calls NAME COMMAND...: the gRPC server alone under callgrind (REC_PORT replaced), M calls, one
# line of instructions per call.
calls() {
  local name=$1 rec_port; shift
  rec_port=$(port)
  callgrind "$name-recommend" recommend "127.0.0.1:$rec_port" "${@//REC_PORT/$rec_port}"
  measure 2000 "$CALLS" "$VG_PID" -- -c 4 -m 8 -d "$OUT/request.bin" -H 'content-type: application/grpc' \
    -H 'te: trailers' "http://127.0.0.1:$rec_port/Recommendations/Recommend"
  printf '%-6s recommend  %6sk instructions per call\n' "$name" "$(per "$name-recommend" "$CALLS")"
}

# Ours' log filter, and with --traces the sink (not profiled) and the standard variables for it;
# spans are exported every 200 ms instead of 5 s, so that the counted requests include their export.
export RUST_LOG=$RUST_LOG_OURS
[ "$RUST_LOG" = warn ] || echo "ours with RUST_LOG=$RUST_LOG"
if [ "$TRACES" != off ]; then
  sink_port=$(port)
  "$BIN/bench-tool" otlp-sink --addr "127.0.0.1:$sink_port" >"$OUT/sink.out" 2>"$OUT/sink.log" &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  up sink health "127.0.0.1:$sink_port" "$SINK_PID"
  export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$sink_port OTEL_EXPORTER_OTLP_PROTOCOL=grpc
  export OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=$RATIO OTEL_BSP_SCHEDULE_DELAY=200
  echo "traces on: ${TRACES}% sampled (parentbased_traceidratio $RATIO), OTLP/gRPC to 127.0.0.1:$sink_port"
fi

pages ours "$BIN/recommendations" --catalog "$ROOT/catalog.toml" --port REC_PORT \
  -- "$BIN/marketplace" --port WEB_PORT --recommendations 127.0.0.1:REC_PORT
calls ours "$BIN/recommendations" --catalog "$ROOT/catalog.toml" --port REC_PORT

# The services have stopped, their last spans flushed: the sink prints its counts as it stops.
export RUST_LOG=warn
if [ "$TRACES" != off ]; then
  unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_PROTOCOL OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG OTEL_BSP_SCHEDULE_DELAY
  kill "$SINK_PID"
  wait "$SINK_PID" || { cat "$OUT/sink.log" >&2; die "the OTLP sink failed"; }
  echo "spans received: $(paste -sd ' ' "$OUT/sink.out")"
  for service in marketplace recommendations; do
    grep -q "^$service [1-9]" "$OUT/sink.out" || die "the OTLP sink received no span from $service"
  done
fi

pages floor "$BIN/tonic-floor" --port REC_PORT \
  -- "$BIN/salvo-floor" --port WEB_PORT --page "$OUT/page.html" --json "$OUT/api.json" --grpc 127.0.0.1:REC_PORT
calls floor "$BIN/tonic-floor" --port REC_PORT
