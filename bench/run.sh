#!/usr/bin/env bash
# The benchmark harness (docs/benchmarks.md). One command:
#
#   bench/run.sh           full run (about 13 minutes after the build): the table for docs/benchmarks.md
#   bench/run.sh --quick   a few seconds per scenario: keeps the harness working (CI runs it)
#
# It builds the release binaries, installs what it needs (h2load and wrk from Debian, the seed's
# Python stack in a venv under the target dir), starts every server on 127.0.0.1 on free ports,
# drives the load with h2load (gRPC) and wrk (HTTP), and writes the table to
# $CARGO_TARGET_DIR/bench/results.md (default target/bench/). Every process it starts is
# stopped on exit. Set BENCH_PIN=1 to pin the servers to CPU 1 and the load generator to CPU 0.
set -euo pipefail

MODE=full
for arg in "$@"; do
  case $arg in
    --quick) MODE=quick ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
BIN=$TARGET/release
OUT=$TARGET/bench
WORK=$OUT/work
LOGS=$OUT/logs
TSV=$OUT/results.tsv
VENV=$OUT/venv

if [ "$MODE" = quick ]; then
  DUR=2 WARM=1 RELOAD_EDITS=6 POLL_MS=250 RELOAD_LOAD_S=4 RELOADS=10 INVALID=1
  SCALES="100000" STARTS=2
else
  DUR=10 WARM=2 RELOAD_EDITS=50 POLL_MS=1000 RELOAD_LOAD_S=30 RELOADS=100 INVALID=10
  SCALES="100000 1000000" STARTS=5
fi

log() { printf '\n--- %s (%s)\n' "$*" "$(date +%T)" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Processes: every server is started through `start` and stopped by the EXIT trap.
declare -A PID=()
stop() {
  local name=$1 pid=${PID[$1]:-}
  [ -n "$pid" ] || return 0
  unset "PID[$name]"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local name
  for name in "${!PID[@]}"; do stop "$name"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SERVER_CPU=() LOADGEN_CPU=()
if [ "${BENCH_PIN:-0}" = 1 ]; then SERVER_CPU=(taskset -c 1) LOADGEN_CPU=(taskset -c 0); fi

# start NAME CMD...: runs CMD in the background, output to $LOGS/NAME.log.
start() {
  local name=$1; shift
  "${SERVER_CPU[@]}" "$@" >"$LOGS/$name.log" 2>&1 &
  PID[$name]=$!
}

# A port below the ephemeral range, never the same one twice in a run (tests/lib/free-port.py).
free_port() { python3 "$ROOT/tests/lib/free-port.py" "$WORK/ports"; }

# ready NAME PROBE...: waits (30 s at most, or READY_MS) until the server started as NAME
# answers the probe (`bench-tool wait` arguments); otherwise stops the run with the end of the
# server's log, so a failure in CI says why.
ready() {
  local name=$1; shift
  "$BIN/bench-tool" wait --timeout-ms "${READY_MS:-30000}" "$@" && return 0
  kill -0 "${PID[$name]}" 2>/dev/null || echo "bench: $name has exited" >&2
  echo "--- the end of $LOGS/$name.log:" >&2
  tail -n 40 "$LOGS/$name.log" >&2 || true
  die "$name is not ready"
}

# The process and its children (gunicorn's workers).
tree() { echo "$1"; pgrep -P "$1" || true; }
cpu_ticks() {
  local total=0 p
  for p in $(for name in "$@"; do tree "${PID[$name]}"; done); do
    total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
  done
  echo "$total"
}
# "SWITCHES TIDS THREAD_TICKS": the context switches (voluntary or not) of every live thread of
# the processes, which threads those are, and the CPU ticks of those threads. A thread that exits
# takes its switch count with it, so a per-request figure is only given when no thread came,
# went, or came and went during the run: the same threads at both ends, and no CPU time of the
# processes (`cpu_ticks`, which counts dead threads too) that they do not account for. Flask's
# own server starts a thread per request.
switches() {
  local total=0 tids=() threads=0 p t n ticks
  for p in $(for name in "$@"; do tree "${PID[$name]}"; done); do
    for t in /proc/"$p"/task/*; do
      # A thread may exit between the listing and the reading: then it is left out.
      n=$(awk '/^(non)?voluntary_ctxt_switches:/ {n += $2} END {print n + 0}' "$t/status" 2>/dev/null) || continue
      ticks=$(sed 's/.*) //' "$t/stat" 2>/dev/null | awk '{print $12 + $13}')
      [ -n "$ticks" ] || continue
      total=$((total + n)) threads=$((threads + ticks)) tids+=("${t##*/}")
    done
  done
  local IFS=,; echo "$total ${tids[*]} $threads"
}
# switches_per_request BEFORE AFTER PROCESS_TICKS N: context switches per request, or "-" (see
# above); PROCESS_TICKS is the run's `cpu_ticks` difference.
switches_per_request() {
  local b=($1) a=($2)
  local unaccounted=$(($3 - (a[2] - b[2])))
  if [ "${b[1]}" = "${a[1]}" ] && [ "$unaccounted" -le 2 ] && [ "$4" -gt 0 ]; then
    awk -v d=$((a[0] - b[0])) -v n="$4" 'BEGIN {printf "%.2f", d / n}'
  else echo "-"; fi
}
reset_peak() {
  local p
  for p in $(for name in "$@"; do tree "${PID[$name]}"; done); do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || true; done
}
# "name 12.3 + name 4.5 MB" from VmHWM.
rss_text() {
  local parts=() name kb p
  for name in "$@"; do
    kb=0
    for p in $(tree "${PID[$name]}"); do
      kb=$((kb + $(awk -v f="VmHWM:" '$1 == f {print $2}' "/proc/$p/status")))
    done
    parts+=("$name $(awk -v kb="$kb" 'BEGIN {printf "%.1f", kb / 1024}')")
  done
  local IFS='|'; echo "${parts[*]}" | sed 's/|/ + /g; s/$/ MB/'
}
rss_mb() { local kb; kb=$(awk '$1 == "VmRSS:" {print $2}' "/proc/${PID[$1]}/status"); awk -v kb="$kb" 'BEGIN {printf "%.1f", kb / 1024}'; }

# ---------------------------------------------------------------------------------------------
# Loads. Each appends one `load` row (see bench/src/report.rs) to results.tsv.

# grpc_load SCENARIO SYSTEM ADDR CONNECTIONS STREAMS PROCESS...
grpc_load() {
  local scenario=$1 system=$2 addr=$3 c=$4 m=$5; shift 5
  local out=$WORK/h2load-$scenario-$system
  rm -f "$out.log" # h2load appends to its log file
  local h2load=("${LOADGEN_CPU[@]}" h2load -t 1 -c "$c" -m "$m" -d "$WORK/request.bin"
    -H 'content-type: application/grpc' -H 'te: trailers')
  # The warm-up is a run of its own, as for wrk, so the CPU time below is the measured run's.
  "${h2load[@]}" -D "$WARM" "http://$addr/Recommendations/Recommend" >/dev/null 2>&1 || true
  local before sw_before; before=$(cpu_ticks "$@") sw_before=$(switches "$@"); reset_peak "$@"
  "${h2load[@]}" -D "$DUR" --log-file="$out.log" "http://$addr/Recommendations/Recommend" >"$out.txt" 2>&1 \
    || { cat "$out.txt" >&2; die "h2load failed against $system"; }
  local after sw_after; after=$(cpu_ticks "$@") sw_after=$(switches "$@")
  local rps errors stats
  rps=$(awk '/^finished in/ {print $4}' "$out.txt")
  # h2load's "failed" already holds its "errored" and "timeout" and every non-2xx answer. It
  # sees HTTP statuses only; grpc-status is checked by `bench-tool check`.
  errors=$(awk '/^requests:/ {print $10}' "$out.txt")
  stats=$("$BIN/bench-tool" h2load-log "$out.log")
  local p50 p99 n
  read -r p50 p99 _ n <<<"$stats"
  local cpu_us
  cpu_us=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN {printf "%.1f", n ? t / hz * 1e6 / n : 0}')
  printf 'load\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$system" "$rps" "$p50" "$p99" \
    "$errors" "$cpu_us" "$(rss_text "$@")" "${NOTE:-}" \
    "$(switches_per_request "$sw_before" "$sw_after" $((after - before)) "$n")" | tee -a "$TSV" >&2
}

# http_load SCENARIO SYSTEM URL CONNECTIONS PROCESS...
http_load() {
  local scenario=$1 system=$2 url=$3 c=$4; shift 4
  local out=$WORK/wrk-$scenario-$system.txt
  "${LOADGEN_CPU[@]}" wrk -t 1 -c "$c" -d "${WARM}s" "$url" >/dev/null 2>&1 || true
  local before sw_before; before=$(cpu_ticks "$@") sw_before=$(switches "$@"); reset_peak "$@"
  "${LOADGEN_CPU[@]}" wrk -t 1 -c "$c" -d "${DUR}s" --timeout 5s -s "$ROOT/bench/wrk-report.lua" "$url" >"$out" 2>&1 \
    || { cat "$out" >&2; die "wrk failed against $system"; }
  local after sw_after; after=$(cpu_ticks "$@") sw_after=$(switches "$@")
  local n dur p50 p99 errors
  read -r _ n dur p50 p99 errors < <(grep '^BENCH' "$out")
  local rps cpu_us
  rps=$(awk -v n="$n" -v d="$dur" 'BEGIN {printf "%.0f", n / (d / 1e6)}')
  cpu_us=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN {printf "%.1f", n ? t / hz * 1e6 / n : 0}')
  printf 'load\t%s\t%s\t%s\t%.2f\t%.2f\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$system" "$rps" \
    "$(awk -v v="$p50" 'BEGIN {print v / 1000}')" "$(awk -v v="$p99" 'BEGIN {print v / 1000}')" \
    "$errors" "$cpu_us" "$(rss_text "$@")" "${NOTE:-}" \
    "$(switches_per_request "$sw_before" "$sw_after" $((after - before)) "$n")" | tee -a "$TSV" >&2
}

# ---------------------------------------------------------------------------------------------
log "preparing ($MODE mode, target $TARGET)"
mkdir -p "$WORK" "$LOGS"
rm -f "$TSV" "$WORK"/*.log "$WORK"/*.txt "$WORK/ports"

need=()
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null \
    || die "cannot install ${need[*]}"
fi

(cd "$ROOT" && cargo build --release --locked -p recommendations -p marketplace -p bookshop-bench) \
  || die "cargo build failed"

# The seed's Python stack, reinstalled only when the pinned requirements change.
if ! cmp -s "$ROOT/bench/seed/requirements.txt" "$VENV/requirements.txt" 2>/dev/null; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/bench/seed/requirements.txt" \
    || die "pip install failed"
  cp "$ROOT/bench/seed/requirements.txt" "$VENV/requirements.txt"
fi
SEED=$WORK/seed
rm -rf "$SEED" && mkdir -p "$SEED" && cp -r "$ROOT/bench/seed/." "$SEED/"
"$VENV/bin/python" -m grpc_tools.protoc -I "$ROOT/proto" --python_out="$SEED" \
  --grpc_python_out="$SEED" "$ROOT/proto/recommendations.proto"
"$BIN/bench-tool" request-body "$WORK/request.bin"
cp "$ROOT/catalog.toml" "$WORK/catalog.toml"

# Settings every Recommendations of the run gets: loopback only, and its Prometheus listener
# (port 9464 by default) on a free port, as several instances run at once.
REC_ENV=(RECOMMENDATIONS__SERVER__HOST=127.0.0.1 RECOMMENDATIONS__METRICS__PORT=0)

{
  printf 'info\tmode\t%s (`bench/run.sh%s`)\n' "$MODE" "$([ "$MODE" = quick ] && echo ' --quick')"
  printf 'info\tdate\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'info\tmachine\t%s, %s cores, %s RAM, Linux %s\n' \
    "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$(nproc)" \
    "$(free -h | awk '/^Mem:/ {print $2}')" "$(uname -r)"
  printf 'info\ttoolchain\t%s; %s; %s; Python %s\n' "$(rustc --version)" \
    "$(h2load --version | head -1)" "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)" \
    "$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')"
  printf 'info\tload average before\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'info\tpinning\t%s\n' "$([ "${BENCH_PIN:-0}" = 1 ] && echo 'servers on CPU 1, load generator on CPU 0' || echo 'none (servers and load generator share both cores)')"
  printf 'info\tload runs\t%s s each after %s s of warm-up; h2load -t 1, wrk -t 1\n' "$DUR" "$WARM"
} >"$TSV"

# ---------------------------------------------------------------------------------------------
log "starting the servers"
P_REC=$(free_port) P_MKT=$(free_port) P_SREC=$(free_port) P_SMKT=$(free_port)
P_TFLOOR=$(free_port) P_SFLOOR=$(free_port) P_GFLOOR=$(free_port)

start rec env RUST_LOG=warn "${REC_ENV[@]}" \
  "$BIN/recommendations" --catalog "$WORK/catalog.toml" --port "$P_REC"
start mkt env RUST_LOG=warn MARKETPLACE__SERVER__HOST=127.0.0.1 \
  "$BIN/marketplace" --port "$P_MKT" --recommendations "127.0.0.1:$P_REC"
start seed_rec env SEED_BIND="127.0.0.1:$P_SREC" "$VENV/bin/python" "$SEED/recommendations.py"
start seed_mkt env -C "$SEED" RECOMMENDATIONS_HOST=127.0.0.1 RECOMMENDATIONS_PORT="$P_SREC" \
  SEED_HOST=127.0.0.1 SEED_PORT="$P_SMKT" "$VENV/bin/python" marketplace.py
start tonic_floor "$BIN/tonic-floor" --port "$P_TFLOOR"

ready rec --health "127.0.0.1:$P_REC"
ready mkt --http "http://127.0.0.1:$P_MKT/readyz"
ready seed_rec --recommend "127.0.0.1:$P_SREC"
ready seed_mkt --http "http://127.0.0.1:$P_SMKT/"
ready tonic_floor --recommend "127.0.0.1:$P_TFLOOR"

# The floor serves a real page and JSON answer of ours, byte for byte the same size.
curl -sf "http://127.0.0.1:$P_MKT/" -o "$WORK/page.html"
curl -sf "http://127.0.0.1:$P_MKT/api/recommendations" -o "$WORK/api.json"
start salvo_floor "$BIN/salvo-floor" --port "$P_SFLOOR" --page "$WORK/page.html" --json "$WORK/api.json"
ready salvo_floor --http "http://127.0.0.1:$P_SFLOOR/"
# The same fixed answers after one `Recommend` call to the tonic floor: a page with a gRPC round
# trip, in the two frameworks alone, before any code of ours.
start grpc_floor "$BIN/salvo-floor" --port "$P_GFLOOR" --page "$WORK/page.html" --json "$WORK/api.json" \
  --grpc "127.0.0.1:$P_TFLOOR"
ready grpc_floor --http "http://127.0.0.1:$P_GFLOOR/"

log "checking the answers (h2load and wrk count statuses, not contents)"
for addr in "$P_REC" "$P_SREC" "$P_TFLOOR"; do "$BIN/bench-tool" check --addr "127.0.0.1:$addr"; done
[ "$(grep -c 'class="book"' "$WORK/page.html")" = 3 ] || die "our home page does not list 3 books"
curl -sf "http://127.0.0.1:$P_SMKT/" -o "$WORK/seed-page.html"
grep -q '<title>Online Books For You</title>' "$WORK/seed-page.html" || die "the seed page has no title"
[ "$(grep -c '<li>' "$WORK/seed-page.html")" = 3 ] || die "the seed page does not list 3 books"
printf 'info\tpage sizes\tours %s B (floor: the same bytes), seed %s B; JSON: ours %s B, seed %s B\n' \
  "$(wc -c <"$WORK/page.html")" "$(wc -c <"$WORK/seed-page.html")" \
  "$(wc -c <"$WORK/api.json")" "$(curl -sf "http://127.0.0.1:$P_SMKT/api/recommendations" | wc -c)" >>"$TSV"

# ---------------------------------------------------------------------------------------------
# The load scenarios, in the full mode twice (the second time in the opposite order); the
# table keeps each system's best run, since other work on the machine only slows a run down.
ROUNDS=1; [ "$MODE" = full ] && ROUNDS=2
for round in $(seq "$ROUNDS"); do
  order="ours seed floor floor-grpc"; [ "$round" = 2 ] && order="floor-grpc floor seed ours"
  log "scenario 1: Recommend, 8 connections x 8 streams (round $round of $ROUNDS)"
  for system in $order; do
    case $system in
      ours) grpc_load recommend ours "127.0.0.1:$P_REC" 8 8 rec ;;
      seed) grpc_load recommend seed "127.0.0.1:$P_SREC" 8 8 seed_rec ;;
      floor) grpc_load recommend floor "127.0.0.1:$P_TFLOOR" 8 8 tonic_floor ;;
      floor-grpc) ;; # an HTTP floor only
    esac
  done
  for scenario in page json; do
    path=/; [ $scenario = json ] && path=/api/recommendations
    log "scenario $([ $scenario = page ] && echo '2: home page' || echo '3: JSON API'), 16 connections (round $round of $ROUNDS)"
    for system in $order; do
      case $system in
        ours) http_load $scenario ours "http://127.0.0.1:$P_MKT$path" 16 mkt rec ;;
        seed) http_load $scenario seed "http://127.0.0.1:$P_SMKT$path" 16 seed_mkt seed_rec ;;
        floor) http_load $scenario floor "http://127.0.0.1:$P_SFLOOR$path" 16 salvo_floor ;;
        floor-grpc) http_load $scenario floor-grpc "http://127.0.0.1:$P_GFLOOR$path" 16 grpc_floor tonic_floor ;;
      esac
    done
  done
done

# Mutual TLS on the gRPC hop, as deploy/compose/mtls.yaml sets it up, with certificates from
# deploy/tls/make-dev-certs.sh (P-256 keys): what encrypting and authenticating it costs.
if command -v openssl >/dev/null; then
  log "our services with mutual TLS between them"
  bash "$ROOT/deploy/tls/make-dev-certs.sh" "$WORK/tls" >/dev/null
  P_REC_TLS=$(free_port) P_MKT_TLS=$(free_port)
  start rec_tls env RUST_LOG=warn "${REC_ENV[@]}" \
    RECOMMENDATIONS__TLS__CERT_PATH="$WORK/tls/recommendations.pem" \
    RECOMMENDATIONS__TLS__KEY_PATH="$WORK/tls/recommendations.key" \
    RECOMMENDATIONS__TLS__CLIENT_CA_PATH="$WORK/tls/ca.pem" \
    "$BIN/recommendations" --catalog "$WORK/catalog.toml" --port "$P_REC_TLS"
  start mkt_tls env RUST_LOG=warn MARKETPLACE__SERVER__HOST=127.0.0.1 \
    MARKETPLACE__RECOMMENDATIONS__TLS__CA_PATH="$WORK/tls/ca.pem" \
    MARKETPLACE__RECOMMENDATIONS__TLS__SERVER_NAME=localhost \
    MARKETPLACE__RECOMMENDATIONS__TLS__CERT_PATH="$WORK/tls/marketplace.pem" \
    MARKETPLACE__RECOMMENDATIONS__TLS__KEY_PATH="$WORK/tls/marketplace.key" \
    "$BIN/marketplace" --port "$P_MKT_TLS" --recommendations "127.0.0.1:$P_REC_TLS"
  # /readyz is 200 once the health check went through the mutual TLS connection.
  ready mkt_tls --http "http://127.0.0.1:$P_MKT_TLS/readyz"
  [ "$(curl -sf "http://127.0.0.1:$P_MKT_TLS/" | grep -c 'class="book"')" = 3 ] \
    || die "our home page over mutual TLS does not list 3 books"
  NOTE="mutual TLS" http_load page ours-mtls "http://127.0.0.1:$P_MKT_TLS/" 16 mkt_tls rec_tls
  stop mkt_tls; stop rec_tls
else
  log "no openssl: the mutual TLS rows are left out"
fi

if [ "$MODE" = full ]; then
  log "unloaded latency: one request at a time"
  grpc_load recommend-1 ours "127.0.0.1:$P_REC" 1 1 rec
  grpc_load recommend-1 seed "127.0.0.1:$P_SREC" 1 1 seed_rec
  grpc_load recommend-1 floor "127.0.0.1:$P_TFLOOR" 1 1 tonic_floor
  http_load page-1 ours "http://127.0.0.1:$P_MKT/" 1 mkt rec
  http_load page-1 seed "http://127.0.0.1:$P_SMKT/" 1 seed_mkt seed_rec
  http_load page-1 floor "http://127.0.0.1:$P_SFLOOR/" 1 salvo_floor

  log "the seed's Marketplace under gunicorn (2 workers x 4 threads) as a fairer Python reference"
  P_GUNI=$(free_port)
  start gunicorn env -C "$SEED" RECOMMENDATIONS_HOST=127.0.0.1 RECOMMENDATIONS_PORT="$P_SREC" \
    "$VENV/bin/gunicorn" -w 2 --threads 4 -b "127.0.0.1:$P_GUNI" marketplace:app
  ready gunicorn --http "http://127.0.0.1:$P_GUNI/"
  http_load page seed-gunicorn "http://127.0.0.1:$P_GUNI/" 16 gunicorn seed_rec
  http_load json seed-gunicorn "http://127.0.0.1:$P_GUNI/api/recommendations" 16 gunicorn seed_rec
  stop gunicorn

  log "our services with their default logging (RUST_LOG unset: info, to a file)"
  P_REC_LOG=$(free_port)
  start rec_log env "${REC_ENV[@]}" \
    "$BIN/recommendations" --catalog "$WORK/catalog.toml" --port "$P_REC_LOG"
  ready rec_log --health "127.0.0.1:$P_REC_LOG"
  NOTE="default logging" grpc_load recommend ours-info-log "127.0.0.1:$P_REC_LOG" 8 8 rec_log
  stop rec_log
  P_MKT_LOG=$(free_port)
  start mkt_log env MARKETPLACE__SERVER__HOST=127.0.0.1 \
    "$BIN/marketplace" --port "$P_MKT_LOG" --recommendations "127.0.0.1:$P_REC"
  ready mkt_log --http "http://127.0.0.1:$P_MKT_LOG/readyz"
  NOTE="default logging" http_load page ours-info-log "http://127.0.0.1:$P_MKT_LOG/" 16 mkt_log rec
  stop mkt_log

  # Tokio starts one worker thread per core by default. Here two services and wrk share two
  # cores, and a page wakes threads in both services; one worker thread per process avoids
  # most of those cross-thread wake-ups. Same setting for the floor, for a like-for-like ratio.
  log "one Tokio worker thread per process (TOKIO_WORKER_THREADS=1), ours and the floors"
  P_REC_1T=$(free_port) P_MKT_1T=$(free_port) P_FLOOR_1T=$(free_port)
  P_TFLOOR_1T=$(free_port) P_GFLOOR_1T=$(free_port)
  start rec_1t env TOKIO_WORKER_THREADS=1 RUST_LOG=warn "${REC_ENV[@]}" \
    "$BIN/recommendations" --catalog "$WORK/catalog.toml" --port "$P_REC_1T"
  ready rec_1t --health "127.0.0.1:$P_REC_1T"
  start mkt_1t env TOKIO_WORKER_THREADS=1 RUST_LOG=warn MARKETPLACE__SERVER__HOST=127.0.0.1 \
    "$BIN/marketplace" --port "$P_MKT_1T" --recommendations "127.0.0.1:$P_REC_1T"
  ready mkt_1t --http "http://127.0.0.1:$P_MKT_1T/readyz"
  start floor_1t env TOKIO_WORKER_THREADS=1 \
    "$BIN/salvo-floor" --port "$P_FLOOR_1T" --page "$WORK/page.html" --json "$WORK/api.json"
  ready floor_1t --http "http://127.0.0.1:$P_FLOOR_1T/"
  start tfloor_1t env TOKIO_WORKER_THREADS=1 "$BIN/tonic-floor" --port "$P_TFLOOR_1T"
  ready tfloor_1t --recommend "127.0.0.1:$P_TFLOOR_1T"
  start gfloor_1t env TOKIO_WORKER_THREADS=1 "$BIN/salvo-floor" --port "$P_GFLOOR_1T" \
    --page "$WORK/page.html" --json "$WORK/api.json" --grpc "127.0.0.1:$P_TFLOOR_1T"
  ready gfloor_1t --http "http://127.0.0.1:$P_GFLOOR_1T/"
  for _round in 1 2; do
    NOTE="1 worker thread" http_load page ours-1-thread "http://127.0.0.1:$P_MKT_1T/" 16 mkt_1t rec_1t
    NOTE="1 worker thread" http_load page floor-1-thread "http://127.0.0.1:$P_FLOOR_1T/" 16 floor_1t
    NOTE="1 worker thread" http_load json ours-1-thread "http://127.0.0.1:$P_MKT_1T/api/recommendations" 16 mkt_1t rec_1t
    NOTE="1 worker thread" http_load json floor-1-thread "http://127.0.0.1:$P_FLOOR_1T/api/recommendations" 16 floor_1t
    NOTE="1 worker thread" http_load page floor-grpc-1-thread "http://127.0.0.1:$P_GFLOOR_1T/" 16 gfloor_1t tfloor_1t
    NOTE="1 worker thread" http_load json floor-grpc-1-thread "http://127.0.0.1:$P_GFLOOR_1T/api/recommendations" 16 gfloor_1t tfloor_1t
  done
  stop mkt_1t; stop rec_1t; stop floor_1t; stop gfloor_1t; stop tfloor_1t
fi
IDLE_REC=$(rss_mb rec) IDLE_MKT=$(rss_mb mkt)
stop mkt; stop rec; stop seed_mkt; stop seed_rec; stop tonic_floor; stop salvo_floor; stop grpc_floor

# ---------------------------------------------------------------------------------------------
# A Recommendations of its own on a generated catalog in a directory of its own.
# rec_on NAME CATALOG PORT [ENV=VALUE...]
rec_on() {
  local name=$1 catalog=$2 port=$3; shift 3
  start "$name" env RUST_LOG=warn "${REC_ENV[@]}" \
    RECOMMENDATIONS__CATALOG__MAX_BYTES=1073741824 "$@" \
    "$BIN/recommendations" --catalog "$catalog" --port "$port"
  READY_MS=60000 ready "$name" --health "127.0.0.1:$port"
}

log "scenario 4: hot reload latency ($RELOAD_EDITS edits, alternating in place and by rename)"
mkdir -p "$WORK/reload" && rm -f "$WORK/reload"/*
for mode in events poll; do
  "$BIN/bench-tool" gen-catalog --books 9 --out "$WORK/reload/catalog.toml"
  port=$(free_port)
  rec_on "reload_$mode" "$WORK/reload/catalog.toml" "$port" RECOMMENDATIONS__CATALOG__WATCH=$mode \
    RECOMMENDATIONS__CATALOG__POLL_INTERVAL_MS=$POLL_MS
  if [ $mode = events ]; then target=500 label=events; else target=$((POLL_MS + 200)) label="poll every $POLL_MS ms"; fi
  "$BIN/bench-tool" reload-latency --addr "127.0.0.1:$port" --catalog "$WORK/reload/catalog.toml" \
    --edits "$RELOAD_EDITS" --label "$label" --target-ms "$target" | tee -a "$TSV" >&2
  stop "reload_$mode"
done

log "scenario 5: $RELOADS reloads ($INVALID invalid) during a $RELOAD_LOAD_S s load run"
mkdir -p "$WORK/reload-load" && rm -f "$WORK/reload-load"/*
"$BIN/bench-tool" gen-catalog --books 41 --out "$WORK/reload-load/catalog.toml"
port=$(free_port)
rec_on reload_load "$WORK/reload-load/catalog.toml" "$port"
"${LOADGEN_CPU[@]}" "$BIN/bench-tool" reload-load --addr "127.0.0.1:$port" \
  --catalog "$WORK/reload-load/catalog.toml" --books 41 --seconds "$RELOAD_LOAD_S" \
  --reloads "$RELOADS" --invalid "$INVALID" | tee -a "$TSV" >&2
stop reload_load

log "scenario 6: catalog scale (9 books, then $SCALES)"
mkdir -p "$WORK/scale"
base_p99= base_cpu=
for books in 9 $SCALES; do
  rm -f "$WORK/scale"/*
  "$BIN/bench-tool" gen-catalog --books "$books" --out "$WORK/scale/catalog.toml"
  file_mb=$(awk -v b="$(wc -c <"$WORK/scale/catalog.toml")" 'BEGIN {printf "%.1f", b / 1048576}')
  port=$(free_port)
  read -r start_ms _ <<<"$("$BIN/bench-tool" startup --runs 1 --health "127.0.0.1:$port" -- \
    env RUST_LOG=warn "${REC_ENV[@]}" RECOMMENDATIONS__CATALOG__MAX_BYTES=1073741824 \
    "$BIN/recommendations" --catalog "$WORK/scale/catalog.toml" --port "$port")"
  rec_on scale "$WORK/scale/catalog.toml" "$port"
  peak_load=$(awk '$1 == "VmHWM:" {print $2}' "/proc/${PID[scale]}/status")
  # The load as in scenario 1, as many times as the load scenarios; the best run is kept.
  rps=0
  for round in $(seq "$ROUNDS"); do
    grpc_load "scale-$books" ours "127.0.0.1:$port" 8 8 scale
    read -r _ _ _ r p50 p99_r _ cpu_r _ <<<"$(tail -1 "$TSV")"
    sed -i '$d' "$TSV"
    if [ "$r" -gt "$rps" ]; then rps=$r p99=$p99_r cpu=$cpu_r; fi
  done
  reload_ms=$("$BIN/bench-tool" reload-latency --addr "127.0.0.1:$port" --catalog "$WORK/scale/catalog.toml" \
    --books "$books" --edits 3 --label scale --target-ms 0 --p50-only)
  peak=$(awk -v l="$peak_load" '$1 == "VmHWM:" {printf "%.1f", ($2 > l ? $2 : l) / 1024}' "/proc/${PID[scale]}/status")
  [ -n "$base_p99" ] || base_p99=$p99 base_cpu=$cpu
  printf 'scale\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$books" "$file_mb" "$start_ms" "$reload_ms" \
    "$peak" "$rps" "$p99" "$base_p99" "$cpu" "$base_cpu" | tee -a "$TSV" >&2
  stop scale
done
rm -f "$WORK/scale"/*

log "scenario 7: footprint ($STARTS starts each)"
port=$(free_port)
start rec env RUST_LOG=warn "${REC_ENV[@]}" \
  "$BIN/recommendations" --catalog "$WORK/catalog.toml" --port "$port"
ready rec --health "127.0.0.1:$port"
footprint() { # NAME BINARY_MB IDLE_AFTER_LOAD PROBE... -- COMMAND...
  local name=$1 size=$2 after=$3; shift 3
  local s; s=$("$BIN/bench-tool" startup --runs "$STARTS" "$@")
  printf 'footprint\t%s\t%s\t%s\t%s\n' "$name" "$size" "$s" "$after" | tee -a "$TSV" >&2
}
size_mb() { awk -v b="$(stat -c %s "$1")" 'BEGIN {printf "%.1f", b / 1048576}'; }
P_X=$(free_port)
footprint recommendations "$(size_mb "$BIN/recommendations")" "$IDLE_REC" --health "127.0.0.1:$P_X" -- \
  env RUST_LOG=warn "${REC_ENV[@]}" "$BIN/recommendations" --catalog "$WORK/catalog.toml" --port "$P_X"
footprint marketplace "$(size_mb "$BIN/marketplace")" "$IDLE_MKT" --http "http://127.0.0.1:$P_X/healthz" -- \
  env RUST_LOG=warn MARKETPLACE__SERVER__HOST=127.0.0.1 "$BIN/marketplace" --port "$P_X" --recommendations "127.0.0.1:$port"
footprint tonic-floor "$(size_mb "$BIN/tonic-floor")" "" --recommend "127.0.0.1:$P_X" -- "$BIN/tonic-floor" --port "$P_X"
footprint salvo-floor "$(size_mb "$BIN/salvo-floor")" "" --http "http://127.0.0.1:$P_X/" -- \
  "$BIN/salvo-floor" --port "$P_X" --page "$WORK/page.html" --json "$WORK/api.json"
footprint "seed recommendations (Python)" "" "" --recommend "127.0.0.1:$P_X" -- \
  env SEED_BIND="127.0.0.1:$P_X" "$VENV/bin/python" "$SEED/recommendations.py"
footprint "seed marketplace (Python)" "" "" --http "http://127.0.0.1:$P_X/" -- \
  env -C "$SEED" RECOMMENDATIONS_HOST=127.0.0.1 RECOMMENDATIONS_PORT="$port" SEED_HOST=127.0.0.1 \
  SEED_PORT="$P_X" "$VENV/bin/python" marketplace.py
stop rec

printf 'info\tload average after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$TSV"
"$BIN/bench-tool" report "$TSV" >"$OUT/results.md"
log "results ($OUT/results.md)"
cat "$OUT/results.md"
