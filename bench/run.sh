#!/usr/bin/env bash
# The benchmark harness (docs/benchmarks.md): `bench/run.sh`, the full run (about 16 minutes
# after the build), or `bench/run.sh --quick`, a few seconds per scenario (CI runs it). Servers
# on 127.0.0.1, ours as docker-compose.yaml runs them, started and stopped here; bench-tool
# (bench/src) measures; the table goes to $CARGO_TARGET_DIR/bench/results.md. BENCH_PIN=1 pins
# the servers to CPU 1 and the load generator to CPU 0.
set -euo pipefail
LOG_TAG=bench
# shellcheck source=SCRIPTDIR/../tests/lib/common.sh
source "$(dirname "$0")/../tests/lib/common.sh"   # log, fail, need, free_port, seed_venv, ...

case ${1:-} in
  "") MODE=full ;;
  --quick) MODE=quick ;;
  -h | --help) sed -n '2,6p' "$0"; exit 0 ;;
  *) sed -n '2,6p' "$0"; exit 2 ;;
esac
if [ "$MODE" = quick ]; then
  DUR=2 WARM=1 ROUNDS=1 RELOAD_EDITS=6 POLL_MS=250 RELOAD_LOAD_S=4 RELOADS=10 INVALID=1 SCALES=100000 STARTS=2 LIVE_EDITS=6 STREAMS=100
else # the load scenarios twice, the second time in the opposite order; the table keeps the best
  DUR=10 WARM=2 ROUNDS=2 RELOAD_EDITS=50 POLL_MS=1000 RELOAD_LOAD_S=30 RELOADS=100 INVALID=10 SCALES="10000 100000" STARTS=5 LIVE_EDITS=50 STREAMS=1000
fi
TARGET=$(cargo_target_dir) BIN=$TARGET/release BENCH_DIR=$TARGET/bench
export BENCH_DIR BENCH_SECONDS=$DUR BENCH_WARM_UP=$WARM   # bench-tool's run directory and load runs
WORK=$BENCH_DIR/work LOGS=$BENCH_DIR/logs PORT_LEDGER=$BENCH_DIR/work/ports RESULTS=$BENCH_DIR/results.tsv
SERVER_CPU=() LOAD_CPU=()
if [ "${BENCH_PIN:-0}" = 1 ]; then SERVER_CPU=(taskset -c 1) LOAD_CPU=(taskset -c 0); fi

declare -A PID=()   # the running servers, by name
tool() { "$BIN/bench-tool" "$@"; }
loadgen() { "${LOAD_CPU[@]}" "$BIN/bench-tool" "$@"; }
# launch NAME COMMAND...: the server NAME in the background, its output in logs/NAME.log.
launch() { "${SERVER_CPU[@]}" "${@:2}" </dev/null >"$LOGS/$1.log" 2>&1 & PID[$1]=$!; }
# ready PROBE TARGET NAME...: until PROBE answers at TARGET while NAME... run, else their logs.
ready() {
  local name pids=()
  for name in "${@:3}"; do pids+=(--pid "${PID[$name]}"); done
  tool wait "$1" "$2" "${pids[@]}" && return
  for name in "${@:3}"; do log "the end of $LOGS/$name.log:"; tail -n 40 "$LOGS/$name.log" >&2; done
  fail "${*:3} not ready"
}
start() { launch "$1" "${@:4}"; ready "$2" "$3" "$1"; }   # start NAME PROBE TARGET COMMAND...
# stop NAME...: SIGTERM, SIGKILL after 10 s.
stop() {
  local name
  for name; do kill "${PID[$name]}" 2>/dev/null || true; done
  for name; do
    timeout 10 tail --pid="${PID[$name]}" -f /dev/null || kill -KILL "${PID[$name]}" 2>/dev/null || true
    wait "${PID[$name]}" 2>/dev/null || true
    unset "PID[$name]"
  done
}
server() { echo "$1=${PID[$1]}"; }   # NAME=PID, how bench-tool knows a server
# load SCENARIO SYSTEM TARGET NAME... [-- FLAGS...]: a load row; the servers NAME... answer.
load() {
  local args=("$1" "$2" "$3"); shift 3
  while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$(server "$1")"); shift; done
  loadgen load "${args[@]}" "${@:2}"
}
info() { printf 'info\t%s\t%s\n' "$1" "$2" >>"$RESULTS"; }

log "preparing ($MODE mode, target $BENCH_DIR)"
need h2load nghttp2-client && need wrk && need openssl && need chromium
(cd "$REPO" && cargo build --release --locked -p recommendations -p marketplace -p bookshop-bench) \
  || fail "cargo build failed"
VENV=$(seed_venv)
rm -rf "$RESULTS" "$WORK" "$LOGS" && mkdir -p "$WORK/catalog" "$LOGS"
trap 'stop "${!PID[@]}"' EXIT
trap 'exit 130' INT TERM
SEED=$WORK/seed
cp -r "$REPO/bench/seed/." "$SEED/"
"$VENV/bin/python" -m grpc_tools.protoc -I "$REPO/proto" --python_out="$SEED" \
  --grpc_python_out="$SEED" "$REPO/proto/recommendations.proto"
# Our catalog in a directory of its own, as a user's is: Recommendations watches its directory.
CATALOG=$WORK/catalog/catalog.toml
cp "$REPO/catalog.toml" "$CATALOG"

# Ours as `docker compose up` runs them (TOKIO_WORKER_THREADS read from docker-compose.yaml), but
# on loopback and free ports, and with Recommendations' Prometheus listener on a port of its own.
THREADS=$(sed -n 's/^ *TOKIO_WORKER_THREADS: *"\{0,1\}\([0-9]*\)"\{0,1\} *$/\1/p' "$REPO/docker-compose.yaml" | sort -u)
[ "$(wc -w <<<"$THREADS")" = 1 ] || fail "docker-compose.yaml must give both services one TOKIO_WORKER_THREADS, not '$THREADS'"
REC_ENV=(TOKIO_WORKER_THREADS="$THREADS" RECOMMENDATIONS__SERVER__HOST=127.0.0.1 RECOMMENDATIONS__METRICS__PORT=0)
MKT_ENV=(TOKIO_WORKER_THREADS="$THREADS" MARKETPLACE__SERVER__HOST=127.0.0.1)
REC=(env "${REC_ENV[@]}" "$BIN/recommendations")
MKT=(env "${MKT_ENV[@]}" "$BIN/marketplace")
# ours SUFFIX REC_PORT MKT_PORT [VAR=VALUE...]: both, as recSUFFIX and mktSUFFIX, these settings winning.
ours() {
  local suffix=$1 rec=$2 mkt=$3; shift 3
  launch "rec$suffix" env "${REC_ENV[@]}" "$@" "$BIN/recommendations" --catalog "$CATALOG" --port "$rec"
  launch "mkt$suffix" env "${MKT_ENV[@]}" "$@" "$BIN/marketplace" --port "$mkt" --recommendations "127.0.0.1:$rec"
  ready http "http://127.0.0.1:$mkt/readyz" "mkt$suffix" "rec$suffix"
}
# The floors with the same threads, for a like-for-like ratio.
SALVO_FLOOR=("$BIN/salvo-floor" --page "$WORK/page.html" --json "$WORK/api.json")
FLOOR=(env TOKIO_WORKER_THREADS="$THREADS" "${SALVO_FLOOR[@]}")
declare -A ROUTE=([page]=/ [json]=/api/recommendations)
# The seed's (bench/seed/): its Recommendations listens on SEED_BIND, its Marketplace on SEED_PORT.
SEED_REC=("$VENV/bin/python" "$SEED/recommendations.py")
SEED_MKT=(env -C "$SEED" RECOMMENDATIONS_HOST=127.0.0.1 SEED_HOST=127.0.0.1 "$VENV/bin/python" marketplace.py)

info mode "$MODE (\`bench/run.sh$([ "$MODE" = quick ] && echo ' --quick')\`)"
info date "$(date -u '+%Y-%m-%d %H:%M UTC')"
info machine "$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(free -h | awk '/^Mem:/ {print $2}') RAM, Linux $(uname -r)"
info toolchain "$(rustc --version); $(h2load --version | head -1); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())')"
info "load average before" "$(cut -d' ' -f1-3 /proc/loadavg)"
info pinning "$([ "${BENCH_PIN:-0}" = 1 ] && echo 'servers on CPU 1, load generator on CPU 0' || echo 'none (servers and load generator share both cores)')"
info "load runs" "$DUR s each after $WARM s of warm-up; h2load -t 1, wrk -t 1"
info "our services" "as docker-compose.yaml runs them: TOKIO_WORKER_THREADS=$THREADS (the floors too), RUST_LOG unset (info: no access line for a successful request); on loopback and free ports"

log "starting the servers"
P_REC=$(free_port) P_MKT=$(free_port) P_SREC=$(free_port) P_SMKT=$(free_port)
P_TFLOOR=$(free_port) P_SFLOOR=$(free_port) P_GFLOOR=$(free_port)
ours "" "$P_REC" "$P_MKT"
start seed_rec recommend "127.0.0.1:$P_SREC" env SEED_BIND="127.0.0.1:$P_SREC" "${SEED_REC[@]}"
start seed_mkt http "http://127.0.0.1:$P_SMKT/" env RECOMMENDATIONS_PORT="$P_SREC" SEED_PORT="$P_SMKT" "${SEED_MKT[@]}"
start tonic_floor recommend "127.0.0.1:$P_TFLOOR" env TOKIO_WORKER_THREADS="$THREADS" "$BIN/tonic-floor" --port "$P_TFLOOR"
# The floors answer ours' page and JSON byte for byte; floor-grpc after a call to the tonic floor.
curl -sf "http://127.0.0.1:$P_MKT/" -o "$WORK/page.html"
curl -sf "http://127.0.0.1:$P_MKT/api/recommendations" -o "$WORK/api.json"
start salvo_floor http "http://127.0.0.1:$P_SFLOOR/" "${FLOOR[@]}" --port "$P_SFLOOR"
start grpc_floor http "http://127.0.0.1:$P_GFLOOR/" "${FLOOR[@]}" --port "$P_GFLOOR" --grpc "127.0.0.1:$P_TFLOOR"

log "checking the answers (h2load and wrk count statuses, not contents)"
for port in "$P_REC" "$P_SREC" "$P_TFLOOR"; do tool check "127.0.0.1:$port"; done
[ "$(grep -c 'class="book"' "$WORK/page.html")" = 3 ] || fail "our home page does not list 3 books"
curl -sf "http://127.0.0.1:$P_SMKT/" -o "$WORK/seed-page.html"
grep -q '<title>Online Books For You</title>' "$WORK/seed-page.html" || fail "the seed page has no title"
[ "$(grep -c '<li>' "$WORK/seed-page.html")" = 3 ] || fail "the seed page does not list 3 books"
info "page sizes" "ours $(wc -c <"$WORK/page.html") B (floor: the same bytes), seed $(wc -c <"$WORK/seed-page.html") B; JSON: ours $(wc -c <"$WORK/api.json") B, seed $(curl -sf "http://127.0.0.1:$P_SMKT/api/recommendations" | wc -c) B"

for round in $(seq "$ROUNDS"); do
  order="ours seed floor floor-grpc"; [ "$round" = 2 ] && order="floor-grpc floor seed ours"
  for scenario in recommend page json; do
    log "scenario $scenario (round $round of $ROUNDS)"
    for system in $order; do
      url=${ROUTE[$scenario]:-}
      case $scenario/$system in
        recommend/ours) load recommend ours "127.0.0.1:$P_REC" rec ;;
        recommend/seed) load recommend seed "127.0.0.1:$P_SREC" seed_rec ;;
        recommend/floor) load recommend floor "127.0.0.1:$P_TFLOOR" tonic_floor ;;
        recommend/floor-grpc) ;; # an HTTP floor only
        */ours) load "$scenario" ours "http://127.0.0.1:$P_MKT$url" mkt rec ;;
        */seed) load "$scenario" seed "http://127.0.0.1:$P_SMKT$url" seed_mkt seed_rec ;;
        */floor) load "$scenario" floor "http://127.0.0.1:$P_SFLOOR$url" salvo_floor ;;
        */floor-grpc) load "$scenario" floor-grpc "http://127.0.0.1:$P_GFLOOR$url" grpc_floor tonic_floor ;;
      esac
    done
  done
done

# Mutual TLS on the gRPC hop as deploy/compose/mtls.yaml sets it up: what it costs.
log "our services with mutual TLS between them"
TLS=$WORK/tls
bash "$REPO/deploy/tls/make-dev-certs.sh" "$TLS" >/dev/null
P_REC_TLS=$(free_port) P_MKT_TLS=$(free_port)
ours _tls "$P_REC_TLS" "$P_MKT_TLS" RECOMMENDATIONS__TLS__CERT_PATH="$TLS/recommendations.pem" \
  RECOMMENDATIONS__TLS__KEY_PATH="$TLS/recommendations.key" RECOMMENDATIONS__TLS__CLIENT_CA_PATH="$TLS/ca.pem" \
  MARKETPLACE__RECOMMENDATIONS__TLS__CA_PATH="$TLS/ca.pem" MARKETPLACE__RECOMMENDATIONS__TLS__SERVER_NAME=localhost \
  MARKETPLACE__RECOMMENDATIONS__TLS__CERT_PATH="$TLS/marketplace.pem" MARKETPLACE__RECOMMENDATIONS__TLS__KEY_PATH="$TLS/marketplace.key"
[ "$(curl -sf "http://127.0.0.1:$P_MKT_TLS/" | grep -c 'class="book"')" = 3 ] || fail "our home page over mutual TLS does not list 3 books"
load page ours-mtls "http://127.0.0.1:$P_MKT_TLS/" mkt_tls rec_tls -- --note "mutual TLS"
stop mkt_tls rec_tls

if [ "$MODE" = full ]; then
  log "unloaded latency: one request at a time"
  load recommend-1 ours "127.0.0.1:$P_REC" rec -- -c 1 -m 1
  load recommend-1 seed "127.0.0.1:$P_SREC" seed_rec -- -c 1 -m 1
  load recommend-1 floor "127.0.0.1:$P_TFLOOR" tonic_floor -- -c 1 -m 1
  load page-1 ours "http://127.0.0.1:$P_MKT/" mkt rec -- -c 1
  load page-1 seed "http://127.0.0.1:$P_SMKT/" seed_mkt seed_rec -- -c 1
  load page-1 floor "http://127.0.0.1:$P_SFLOOR/" salvo_floor -- -c 1

  log "the seed's Marketplace under gunicorn (2 workers x 4 threads) as a fairer Python reference"
  P_GUNI=$(free_port)
  start gunicorn http "http://127.0.0.1:$P_GUNI/" env -C "$SEED" RECOMMENDATIONS_HOST=127.0.0.1 \
    RECOMMENDATIONS_PORT="$P_SREC" "$VENV/bin/gunicorn" -w 2 --threads 4 -b "127.0.0.1:$P_GUNI" marketplace:app
  load page seed-gunicorn "http://127.0.0.1:$P_GUNI/" gunicorn seed_rec
  load json seed-gunicorn "http://127.0.0.1:$P_GUNI/api/recommendations" gunicorn seed_rec
  stop gunicorn

  log "our services with RUST_LOG=warn (no access lines)"
  P_REC_WARN=$(free_port) P_MKT_WARN=$(free_port)
  ours _warn "$P_REC_WARN" "$P_MKT_WARN" RUST_LOG=warn
  load recommend ours-warn-log "127.0.0.1:$P_REC_WARN" rec_warn -- --note "RUST_LOG=warn"
  load page ours-warn-log "http://127.0.0.1:$P_MKT_WARN/" mkt_warn rec_warn -- --note "RUST_LOG=warn"
  stop mkt_warn rec_warn

  # Tokio's default without TOKIO_WORKER_THREADS (`cargo run`, a bare binary): the floors too.
  log "one Tokio worker thread per core ($(nproc)), ours and the floors"
  ALL=(env TOKIO_WORKER_THREADS="$(nproc)") PER_CORE=(-- --note "a worker thread per core")
  P_REC_ALL=$(free_port) P_MKT_ALL=$(free_port) P_FLOOR_ALL=$(free_port) P_TFLOOR_ALL=$(free_port) P_GFLOOR_ALL=$(free_port)
  ours _all "$P_REC_ALL" "$P_MKT_ALL" TOKIO_WORKER_THREADS="$(nproc)"
  start floor_all http "http://127.0.0.1:$P_FLOOR_ALL/" "${ALL[@]}" "${SALVO_FLOOR[@]}" --port "$P_FLOOR_ALL"
  start tfloor_all recommend "127.0.0.1:$P_TFLOOR_ALL" "${ALL[@]}" "$BIN/tonic-floor" --port "$P_TFLOOR_ALL"
  start gfloor_all http "http://127.0.0.1:$P_GFLOOR_ALL/" "${ALL[@]}" "${SALVO_FLOOR[@]}" --port "$P_GFLOOR_ALL" \
    --grpc "127.0.0.1:$P_TFLOOR_ALL"
  load recommend ours-all-cores "127.0.0.1:$P_REC_ALL" rec_all "${PER_CORE[@]}"
  load recommend floor-all-cores "127.0.0.1:$P_TFLOOR_ALL" tfloor_all "${PER_CORE[@]}"
  for scenario in page json page json; do
    url=${ROUTE[$scenario]}
    load "$scenario" ours-all-cores "http://127.0.0.1:$P_MKT_ALL$url" mkt_all rec_all "${PER_CORE[@]}"
    load "$scenario" floor-all-cores "http://127.0.0.1:$P_FLOOR_ALL$url" floor_all "${PER_CORE[@]}"
    load "$scenario" floor-grpc-all-cores "http://127.0.0.1:$P_GFLOOR_ALL$url" gfloor_all tfloor_all "${PER_CORE[@]}"
  done
  stop mkt_all rec_all floor_all gfloor_all tfloor_all
fi
read -ra IDLE <<<"$(awk '/^VmRSS:/ {printf "%.1f ", $2 / 1024}' "/proc/${PID[rec]}/status" "/proc/${PID[mkt]}/status")"
stop mkt rec seed_mkt seed_rec grpc_floor tonic_floor salvo_floor

log "scenario 4: hot reload latency ($RELOAD_EDITS edits, alternating in place and by rename)"
for watch in events poll; do
  tool gen-catalog 9 "$WORK/reload/catalog.toml"
  port=$(free_port)
  start "reload_$watch" health "127.0.0.1:$port" env RECOMMENDATIONS__CATALOG__WATCH=$watch \
    RECOMMENDATIONS__CATALOG__POLL_INTERVAL_MS="$POLL_MS" "${REC[@]}" --catalog "$WORK/reload/catalog.toml" --port "$port"
  # Each change polling finds also waits catalog.settle_ms (500 ms): the bound is both + 200 ms.
  if [ $watch = events ]; then target=500 label=events; else target=$((POLL_MS + 500 + 200)) label="poll every $POLL_MS ms"; fi
  tool reload-latency "127.0.0.1:$port" "$WORK/reload/catalog.toml" "$RELOAD_EDITS" "$label" "$target"
  stop "reload_$watch"
done

log "scenario 5: $RELOADS reloads ($INVALID invalid) during a $RELOAD_LOAD_S s load run"
tool gen-catalog 41 "$WORK/reload-load/catalog.toml"
port=$(free_port)
start reload_load health "127.0.0.1:$port" "${REC[@]}" --catalog "$WORK/reload-load/catalog.toml" --port "$port"
loadgen reload-load "127.0.0.1:$port" "$WORK/reload-load/catalog.toml" 41 "$RELOAD_LOAD_S" "$RELOADS" "$INVALID"
stop reload_load

log "scenario 6: catalog scale (9 books, then $SCALES)"
port=$(free_port)
# shellcheck disable=SC2086 # one size a word
loadgen scale "127.0.0.1:$port" "$WORK/scale/catalog.toml" "$ROUNDS" 9 $SCALES -- "${SERVER_CPU[@]}" \
  env RECOMMENDATIONS__CATALOG__MAX_BYTES=1073741824 "${REC[@]}" --catalog "$WORK/scale/catalog.toml" --port "$port"
rm -f "$WORK/scale"/*

log "scenario 7: footprint ($STARTS starts each)"
port=$(free_port) P_X=$(free_port)
start rec health "127.0.0.1:$port" "${REC[@]}" --catalog "$CATALOG" --port "$port"
footprint() { tool footprint --runs "$STARTS" "$@"; }
footprint recommendations health "127.0.0.1:$P_X" --ours --binary "$BIN/recommendations" --idle-after-load "${IDLE[0]}" \
  -- "${REC[@]}" --catalog "$CATALOG" --port "$P_X"
footprint marketplace http "http://127.0.0.1:$P_X/healthz" --ours --binary "$BIN/marketplace" --idle-after-load "${IDLE[1]}" \
  -- "${MKT[@]}" --port "$P_X" --recommendations "127.0.0.1:$port"
footprint tonic-floor recommend "127.0.0.1:$P_X" --binary "$BIN/tonic-floor" -- "$BIN/tonic-floor" --port "$P_X"
footprint salvo-floor http "http://127.0.0.1:$P_X/" --binary "$BIN/salvo-floor" -- "${FLOOR[@]}" --port "$P_X"
footprint "seed recommendations (Python)" recommend "127.0.0.1:$P_X" -- env SEED_BIND="127.0.0.1:$P_X" "${SEED_REC[@]}"
footprint "seed marketplace (Python)" http "http://127.0.0.1:$P_X/" -- env RECOMMENDATIONS_PORT="$port" SEED_PORT="$P_X" "${SEED_MKT[@]}"
stop rec

# Catalogs of catalog.max_bytes (16 MiB, quick mode too: the targets are about that size).
log "scenario 8: memory around reloads of a catalog.max_bytes catalog"
tool gen-catalog 9 "$WORK/memory/catalog.toml"
port=$(free_port)
start rec_memory health "127.0.0.1:$port" "${REC[@]}" --catalog "$WORK/memory/catalog.toml" --port "$port"
tool reload-memory "127.0.0.1:$port" "$WORK/memory/catalog.toml" "$(server rec_memory)"
stop rec_memory
rm -f "$WORK/memory"/*

# Saves of catalog.toml timed to the open page's screen, then what the idle /events streams of
# open pages cost the home page and the Marketplace's memory.
log "scenario 9: live catalog ($LIVE_EDITS edits seen in Chromium; the home page beside $STREAMS idle event streams)"
# Each stream is a socket on both sides, and both processes are this shell's children.
files=$((2 * STREAMS + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$files" ]; then
  ulimit -n "$files" || fail "scenario 9 needs $files open files (ulimit -n $(ulimit -n), hard limit $(ulimit -Hn))"
fi
tool gen-catalog 9 "$WORK/live/catalog.toml" --shelf
P_REC_LIVE=$(free_port) P_MKT_LIVE=$(free_port)
launch rec_live "${REC[@]}" --catalog "$WORK/live/catalog.toml" --port "$P_REC_LIVE"
launch mkt_live "${MKT[@]}" --port "$P_MKT_LIVE" --recommendations "127.0.0.1:$P_REC_LIVE"
ready http "http://127.0.0.1:$P_MKT_LIVE/readyz" mkt_live rec_live
tool live-latency "http://127.0.0.1:$P_MKT_LIVE" "$WORK/live/catalog.toml" "$LIVE_EDITS"
loadgen idle-streams "127.0.0.1:$P_MKT_LIVE" "$(server mkt_live)" "$(server rec_live)" "$STREAMS" "$ROUNDS"
stop mkt_live rec_live

info "load average after" "$(cut -d' ' -f1-3 /proc/loadavg)"
tool report "$RESULTS" >"$BENCH_DIR/results.md"
log "results ($BENCH_DIR/results.md)"
cat "$BENCH_DIR/results.md"
