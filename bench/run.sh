#!/usr/bin/env bash
# The benchmark harness (docs/benchmarks.md). One command:
#
#   bench/run.sh           full run (about 16 minutes after the build): the table for docs/benchmarks.md
#   bench/run.sh --quick   a few seconds per scenario: keeps the harness working (CI runs it)
#
# It builds the release binaries, installs h2load, wrk and the seed's Python stack, runs every
# server on 127.0.0.1 on free ports, our services as docker-compose.yaml runs them, and
# writes the table to $CARGO_TARGET_DIR/bench/results.md. This file is the list of scenarios;
# bench-tool (bench/src) waits for and stops the servers, runs h2load and wrk, reads /proc and
# writes the rows. BENCH_PIN=1 pins the servers to CPU 1 and the load generator to CPU 0.
set -euo pipefail
LOG_TAG=bench
# shellcheck source=SCRIPTDIR/../tests/lib/common.sh
source "$(dirname "$0")/../tests/lib/common.sh"   # log, fail, need, free_port, seed_venv, ...

MODE=full
for arg in "$@"; do
  case $arg in
    --quick) MODE=quick ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done
if [ "$MODE" = quick ]; then
  DUR=2 WARM=1 ROUNDS=1 RELOAD_EDITS=6 POLL_MS=250 RELOAD_LOAD_S=4 RELOADS=10 INVALID=1 SCALES="100000" STARTS=2
  LIVE_EDITS=6 STREAMS=100
else # the load scenarios twice, the second time in the opposite order; the table keeps the best
  DUR=10 WARM=2 ROUNDS=2 RELOAD_EDITS=50 POLL_MS=1000 RELOAD_LOAD_S=30 RELOADS=100 INVALID=10 SCALES="100000 1000000" STARTS=5
  LIVE_EDITS=50 STREAMS=1000
fi

TARGET=$(cargo_target_dir)
BIN=$TARGET/release
export BENCH_DIR=$TARGET/bench   # bench-tool's run directory: procs/, logs/, work/, results.tsv
WORK=$BENCH_DIR/work PORT_LEDGER=$BENCH_DIR/work/ports
SERVER_CPU=() LOAD_CPU=()
if [ "${BENCH_PIN:-0}" = 1 ]; then SERVER_CPU=(taskset -c 1) LOAD_CPU=(taskset -c 0); fi

tool() { "$BIN/bench-tool" "$@"; }
loadgen() { "${LOAD_CPU[@]}" "$BIN/bench-tool" "$@"; }
# launch NAME COMMAND...: the server NAME in the background (this shell is its parent and reaps it).
launch() { "$BIN/bench-tool" launch "$1" -- "${SERVER_CPU[@]}" "${@:2}" & }
# start NAME PROBE TARGET COMMAND...: launches, then waits until it answers PROBE TARGET:
# --health ADDR, --recommend ADDR or --http URL.
start() { launch "$1" "${@:4}"; tool ready "$1" "$2" "$3"; }
# grpc_load|http_load SCENARIO SYSTEM TARGET [-c N] [-m N] [--note TEXT] SERVER...: a `load` row.
grpc_load() { loadgen grpc-load --seconds "$DUR" --warm-up "$WARM" "$@"; }
http_load() { loadgen http-load --seconds "$DUR" --warm-up "$WARM" "$@"; }

# ---------------------------------------------------------------------------------------------
log "preparing ($MODE mode, target $TARGET)"
need h2load nghttp2-client && need wrk && need openssl
(cd "$REPO" && cargo build --release --locked -p recommendations -p marketplace -p bookshop-bench) \
  || fail "cargo build failed"
VENV=$(seed_venv)
rm -rf "$BENCH_DIR/procs" "$BENCH_DIR/results.tsv" "$WORK" && mkdir -p "$WORK"
trap 'tool stop --all; wait' EXIT
trap 'exit 130' INT TERM
SEED=$WORK/seed
cp -r "$REPO/bench/seed/." "$SEED/"
"$VENV/bin/python" -m grpc_tools.protoc -I "$REPO/proto" --python_out="$SEED" \
  --grpc_python_out="$SEED" "$REPO/proto/recommendations.proto"
# Our catalog in a directory of its own, as a user's is: Recommendations watches the catalog's
# directory (to see saves by rename), and h2load writes its request log into $WORK, so with the
# catalog there every call would also wake the watcher for an event about that log.
CATALOG=$WORK/catalog/catalog.toml
mkdir -p "$WORK/catalog" && cp "$REPO/catalog.toml" "$CATALOG"

# Our services as `docker compose up` runs them: with the Tokio worker threads that
# docker-compose.yaml gives each (one, for its one CPU), read from it so the two cannot differ,
# and only what running several instances side by side needs: loopback, free ports, and
# Recommendations' Prometheus listener (9464 by default) on a port of its own.
THREADS=$(sed -n 's/^ *TOKIO_WORKER_THREADS: *"\{0,1\}\([0-9]*\)"\{0,1\} *$/\1/p' "$REPO/docker-compose.yaml" | sort -u)
[ "$(wc -w <<<"$THREADS")" = 1 ] || fail "docker-compose.yaml must give both services one TOKIO_WORKER_THREADS, not '$THREADS'"
REC_ENV=(TOKIO_WORKER_THREADS="$THREADS" RECOMMENDATIONS__SERVER__HOST=127.0.0.1 RECOMMENDATIONS__METRICS__PORT=0)
MKT_ENV=(TOKIO_WORKER_THREADS="$THREADS" MARKETPLACE__SERVER__HOST=127.0.0.1)
REC=(env "${REC_ENV[@]}" "$BIN/recommendations")
MKT=(env "${MKT_ENV[@]}" "$BIN/marketplace")
# ours SUFFIX REC_PORT MKT_PORT [VAR=VALUE...]: both, as recSUFFIX and mktSUFFIX, with these
# settings as well, after the ones above so that they win (each service reads only the variables
# of its own prefix). The Marketplace's /readyz is 200 once its health check went through to
# Recommendations.
ours() {
  local suffix=$1 rec=$2 mkt=$3; shift 3
  launch "rec$suffix" env "${REC_ENV[@]}" "$@" "$BIN/recommendations" --catalog "$CATALOG" --port "$rec"
  launch "mkt$suffix" env "${MKT_ENV[@]}" "$@" "$BIN/marketplace" --port "$mkt" --recommendations "127.0.0.1:$rec"
  tool ready "mkt$suffix" "rec$suffix" --http "http://127.0.0.1:$mkt/readyz"
}
# The floors with the same threads, for a like-for-like ratio.
SALVO_FLOOR=("$BIN/salvo-floor" --page "$WORK/page.html" --json "$WORK/api.json")
FLOOR=(env TOKIO_WORKER_THREADS="$THREADS" "${SALVO_FLOOR[@]}")
TONIC_FLOOR=(env TOKIO_WORKER_THREADS="$THREADS" "$BIN/tonic-floor")
declare -A ROUTE=([page]=/ [json]=/api/recommendations)
declare -A TITLE=([recommend]="1: Recommend, 8 connections x 8 streams" [page]="2: home page, 16 connections" [json]="3: JSON API, 16 connections")
# The seed's (bench/seed/): its Recommendations listens on SEED_BIND, its Marketplace on SEED_PORT.
SEED_REC=("$VENV/bin/python" "$SEED/recommendations.py")
SEED_MKT=(env -C "$SEED" RECOMMENDATIONS_HOST=127.0.0.1 SEED_HOST=127.0.0.1 "$VENV/bin/python" marketplace.py)

tool info mode "$MODE (\`bench/run.sh$([ "$MODE" = quick ] && echo ' --quick')\`)"
tool info date "$(date -u '+%Y-%m-%d %H:%M UTC')"
tool info machine "$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(free -h | awk '/^Mem:/ {print $2}') RAM, Linux $(uname -r)"
tool info toolchain "$(rustc --version); $(h2load --version | head -1); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())')"
tool info "load average before" "$(cut -d' ' -f1-3 /proc/loadavg)"
tool info pinning "$([ "${BENCH_PIN:-0}" = 1 ] && echo 'servers on CPU 1, load generator on CPU 0' || echo 'none (servers and load generator share both cores)')"
tool info "load runs" "$DUR s each after $WARM s of warm-up; h2load -t 1, wrk -t 1"
tool info "our services" "as docker-compose.yaml runs them: TOKIO_WORKER_THREADS=$THREADS (the floors too), RUST_LOG unset (info: no access line for a successful request); on loopback and free ports"

# ---------------------------------------------------------------------------------------------
log "starting the servers"
P_REC=$(free_port) P_MKT=$(free_port) P_SREC=$(free_port) P_SMKT=$(free_port)
P_TFLOOR=$(free_port) P_SFLOOR=$(free_port) P_GFLOOR=$(free_port)
ours "" "$P_REC" "$P_MKT"
start seed_rec --recommend "127.0.0.1:$P_SREC" env SEED_BIND="127.0.0.1:$P_SREC" "${SEED_REC[@]}"
start seed_mkt --http "http://127.0.0.1:$P_SMKT/" env RECOMMENDATIONS_PORT="$P_SREC" SEED_PORT="$P_SMKT" "${SEED_MKT[@]}"
start tonic_floor --recommend "127.0.0.1:$P_TFLOOR" "${TONIC_FLOOR[@]}" --port "$P_TFLOOR"
# The floors answer a real page and JSON answer of ours, byte for byte; floor-grpc only after
# one `Recommend` call to the tonic floor: a page with a gRPC round trip, in the two frameworks
# alone, before any code of ours.
curl -sf "http://127.0.0.1:$P_MKT/" -o "$WORK/page.html"
curl -sf "http://127.0.0.1:$P_MKT/api/recommendations" -o "$WORK/api.json"
start salvo_floor --http "http://127.0.0.1:$P_SFLOOR/" "${FLOOR[@]}" --port "$P_SFLOOR"
start grpc_floor --http "http://127.0.0.1:$P_GFLOOR/" "${FLOOR[@]}" --port "$P_GFLOOR" --grpc "127.0.0.1:$P_TFLOOR"

log "checking the answers (h2load and wrk count statuses, not contents)"
for port in "$P_REC" "$P_SREC" "$P_TFLOOR"; do tool check --addr "127.0.0.1:$port"; done
[ "$(grep -c 'class="book"' "$WORK/page.html")" = 3 ] || fail "our home page does not list 3 books"
curl -sf "http://127.0.0.1:$P_SMKT/" -o "$WORK/seed-page.html"
grep -q '<title>Online Books For You</title>' "$WORK/seed-page.html" || fail "the seed page has no title"
[ "$(grep -c '<li>' "$WORK/seed-page.html")" = 3 ] || fail "the seed page does not list 3 books"
tool info "page sizes" "ours $(wc -c <"$WORK/page.html") B (floor: the same bytes), seed $(wc -c <"$WORK/seed-page.html") B; JSON: ours $(wc -c <"$WORK/api.json") B, seed $(curl -sf "http://127.0.0.1:$P_SMKT/api/recommendations" | wc -c) B"

# ---------------------------------------------------------------------------------------------
for round in $(seq "$ROUNDS"); do
  order="ours seed floor floor-grpc"; [ "$round" = 2 ] && order="floor-grpc floor seed ours"
  for scenario in recommend page json; do
    log "scenario ${TITLE[$scenario]} (round $round of $ROUNDS)"
    for system in $order; do
      case $scenario/$system in
        recommend/ours) grpc_load recommend ours "127.0.0.1:$P_REC" rec ;;
        recommend/seed) grpc_load recommend seed "127.0.0.1:$P_SREC" seed_rec ;;
        recommend/floor) grpc_load recommend floor "127.0.0.1:$P_TFLOOR" tonic_floor ;;
        recommend/floor-grpc) ;; # an HTTP floor only
        */ours) http_load $scenario ours "http://127.0.0.1:$P_MKT${ROUTE[$scenario]}" mkt rec ;;
        */seed) http_load $scenario seed "http://127.0.0.1:$P_SMKT${ROUTE[$scenario]}" seed_mkt seed_rec ;;
        */floor) http_load $scenario floor "http://127.0.0.1:$P_SFLOOR${ROUTE[$scenario]}" salvo_floor ;;
        */floor-grpc) http_load $scenario floor-grpc "http://127.0.0.1:$P_GFLOOR${ROUTE[$scenario]}" grpc_floor tonic_floor ;;
      esac
    done
  done
done

# Mutual TLS on the gRPC hop, as deploy/compose/mtls.yaml sets it up, with certificates from
# deploy/tls/make-dev-certs.sh (P-256 keys): what encrypting and authenticating it costs.
log "our services with mutual TLS between them"
TLS=$WORK/tls
bash "$REPO/deploy/tls/make-dev-certs.sh" "$TLS" >/dev/null
P_REC_TLS=$(free_port) P_MKT_TLS=$(free_port)
ours _tls "$P_REC_TLS" "$P_MKT_TLS" RECOMMENDATIONS__TLS__CERT_PATH="$TLS/recommendations.pem" \
  RECOMMENDATIONS__TLS__KEY_PATH="$TLS/recommendations.key" RECOMMENDATIONS__TLS__CLIENT_CA_PATH="$TLS/ca.pem" \
  MARKETPLACE__RECOMMENDATIONS__TLS__CA_PATH="$TLS/ca.pem" MARKETPLACE__RECOMMENDATIONS__TLS__SERVER_NAME=localhost \
  MARKETPLACE__RECOMMENDATIONS__TLS__CERT_PATH="$TLS/marketplace.pem" MARKETPLACE__RECOMMENDATIONS__TLS__KEY_PATH="$TLS/marketplace.key"
[ "$(curl -sf "http://127.0.0.1:$P_MKT_TLS/" | grep -c 'class="book"')" = 3 ] || fail "our home page over mutual TLS does not list 3 books"
http_load page ours-mtls "http://127.0.0.1:$P_MKT_TLS/" --note "mutual TLS" mkt_tls rec_tls
tool stop mkt_tls rec_tls

if [ "$MODE" = full ]; then
  log "unloaded latency: one request at a time"
  grpc_load recommend-1 ours "127.0.0.1:$P_REC" -c 1 -m 1 rec
  grpc_load recommend-1 seed "127.0.0.1:$P_SREC" -c 1 -m 1 seed_rec
  grpc_load recommend-1 floor "127.0.0.1:$P_TFLOOR" -c 1 -m 1 tonic_floor
  http_load page-1 ours "http://127.0.0.1:$P_MKT/" -c 1 mkt rec
  http_load page-1 seed "http://127.0.0.1:$P_SMKT/" -c 1 seed_mkt seed_rec
  http_load page-1 floor "http://127.0.0.1:$P_SFLOOR/" -c 1 salvo_floor

  log "the seed's Marketplace under gunicorn (2 workers x 4 threads) as a fairer Python reference"
  P_GUNI=$(free_port)
  start gunicorn --http "http://127.0.0.1:$P_GUNI/" env -C "$SEED" RECOMMENDATIONS_HOST=127.0.0.1 \
    RECOMMENDATIONS_PORT="$P_SREC" "$VENV/bin/gunicorn" -w 2 --threads 4 -b "127.0.0.1:$P_GUNI" marketplace:app
  http_load page seed-gunicorn "http://127.0.0.1:$P_GUNI/" gunicorn seed_rec
  http_load json seed-gunicorn "http://127.0.0.1:$P_GUNI/api/recommendations" gunicorn seed_rec
  tool stop gunicorn

  log "our services with RUST_LOG=warn (no access lines)"
  P_REC_WARN=$(free_port) P_MKT_WARN=$(free_port)
  ours _warn "$P_REC_WARN" "$P_MKT_WARN" RUST_LOG=warn
  grpc_load recommend ours-warn-log "127.0.0.1:$P_REC_WARN" --note "RUST_LOG=warn" rec_warn
  http_load page ours-warn-log "http://127.0.0.1:$P_MKT_WARN/" --note "RUST_LOG=warn" mkt_warn rec_warn
  tool stop mkt_warn rec_warn

  # Without docker-compose.yaml's TOKIO_WORKER_THREADS, Tokio starts one worker thread per
  # core, as `cargo run` and a bare binary do. Here two services and wrk share two cores, and a
  # page wakes threads in both services: what those cross-thread wake-ups cost. The floors the
  # same way, for a like-for-like ratio.
  log "one Tokio worker thread per core ($(nproc)), ours and the floors"
  ALL=$(nproc) PER_CORE=(--note "a worker thread per core")
  P_REC_ALL=$(free_port) P_MKT_ALL=$(free_port) P_FLOOR_ALL=$(free_port) P_TFLOOR_ALL=$(free_port) P_GFLOOR_ALL=$(free_port)
  ours _all "$P_REC_ALL" "$P_MKT_ALL" TOKIO_WORKER_THREADS="$ALL"
  start floor_all --http "http://127.0.0.1:$P_FLOOR_ALL/" env TOKIO_WORKER_THREADS="$ALL" "${SALVO_FLOOR[@]}" --port "$P_FLOOR_ALL"
  start tfloor_all --recommend "127.0.0.1:$P_TFLOOR_ALL" env TOKIO_WORKER_THREADS="$ALL" "$BIN/tonic-floor" --port "$P_TFLOOR_ALL"
  start gfloor_all --http "http://127.0.0.1:$P_GFLOOR_ALL/" env TOKIO_WORKER_THREADS="$ALL" "${SALVO_FLOOR[@]}" \
    --port "$P_GFLOOR_ALL" --grpc "127.0.0.1:$P_TFLOOR_ALL"
  grpc_load recommend ours-all-cores "127.0.0.1:$P_REC_ALL" "${PER_CORE[@]}" rec_all
  grpc_load recommend floor-all-cores "127.0.0.1:$P_TFLOOR_ALL" "${PER_CORE[@]}" tfloor_all
  for scenario in page json page json; do
    path=${ROUTE[$scenario]}
    http_load $scenario ours-all-cores "http://127.0.0.1:$P_MKT_ALL$path" "${PER_CORE[@]}" mkt_all rec_all
    http_load $scenario floor-all-cores "http://127.0.0.1:$P_FLOOR_ALL$path" "${PER_CORE[@]}" floor_all
    http_load $scenario floor-grpc-all-cores "http://127.0.0.1:$P_GFLOOR_ALL$path" "${PER_CORE[@]}" gfloor_all tfloor_all
  done
  tool stop mkt_all rec_all floor_all gfloor_all tfloor_all
fi
IDLE_REC=$(tool rss rec) IDLE_MKT=$(tool rss mkt)
tool stop mkt rec seed_mkt seed_rec grpc_floor tonic_floor salvo_floor

# ---------------------------------------------------------------------------------------------
log "scenario 4: hot reload latency ($RELOAD_EDITS edits, alternating in place and by rename)"
for watch in events poll; do
  tool gen-catalog --books 9 --out "$WORK/reload/catalog.toml"
  port=$(free_port)
  start "reload_$watch" --health "127.0.0.1:$port" env RECOMMENDATIONS__CATALOG__WATCH=$watch \
    RECOMMENDATIONS__CATALOG__POLL_INTERVAL_MS="$POLL_MS" "${REC[@]}" --catalog "$WORK/reload/catalog.toml" --port "$port"
  # Polling cannot tell a rename from an in-place write, so every change it finds waits the
  # settle interval (catalog.settle_ms, 500 ms) before it is read: the bound is both, plus 200 ms.
  if [ $watch = events ]; then target=500 label=events; else target=$((POLL_MS + 500 + 200)) label="poll every $POLL_MS ms"; fi
  tool reload-latency --addr "127.0.0.1:$port" --catalog "$WORK/reload/catalog.toml" \
    --edits "$RELOAD_EDITS" --label "$label" --target-ms "$target"
  tool stop "reload_$watch"
done

log "scenario 5: $RELOADS reloads ($INVALID invalid) during a $RELOAD_LOAD_S s load run"
tool gen-catalog --books 41 --out "$WORK/reload-load/catalog.toml"
port=$(free_port)
start reload_load --health "127.0.0.1:$port" "${REC[@]}" --catalog "$WORK/reload-load/catalog.toml" --port "$port"
loadgen reload-load --addr "127.0.0.1:$port" --catalog "$WORK/reload-load/catalog.toml" --books 41 \
  --seconds "$RELOAD_LOAD_S" --reloads "$RELOADS" --invalid "$INVALID"
tool stop reload_load

log "scenario 6: catalog scale (9 books, then $SCALES)"
for books in 9 $SCALES; do
  port=$(free_port)
  loadgen scale --books "$books" --catalog "$WORK/scale/catalog.toml" --addr "127.0.0.1:$port" --rounds "$ROUNDS" \
    --seconds "$DUR" --warm-up "$WARM" -- "${SERVER_CPU[@]}" env RECOMMENDATIONS__CATALOG__MAX_BYTES=1073741824 \
    "${REC[@]}" --catalog "$WORK/scale/catalog.toml" --port "$port"
done
rm -f "$WORK/scale"/*

log "scenario 7: footprint ($STARTS starts each)"
port=$(free_port) P_X=$(free_port)
start rec --health "127.0.0.1:$port" "${REC[@]}" --catalog "$CATALOG" --port "$port"
footprint() { tool footprint --runs "$STARTS" "$@"; }
footprint recommendations --binary "$BIN/recommendations" --idle-after-load "$IDLE_REC" --health "127.0.0.1:$P_X" \
  -- "${REC[@]}" --catalog "$CATALOG" --port "$P_X"
footprint marketplace --binary "$BIN/marketplace" --idle-after-load "$IDLE_MKT" --http "http://127.0.0.1:$P_X/healthz" \
  -- "${MKT[@]}" --port "$P_X" --recommendations "127.0.0.1:$port"
footprint tonic-floor --binary "$BIN/tonic-floor" --recommend "127.0.0.1:$P_X" -- "$BIN/tonic-floor" --port "$P_X"
footprint salvo-floor --binary "$BIN/salvo-floor" --http "http://127.0.0.1:$P_X/" -- "${FLOOR[@]}" --port "$P_X"
footprint "seed recommendations (Python)" --recommend "127.0.0.1:$P_X" -- env SEED_BIND="127.0.0.1:$P_X" "${SEED_REC[@]}"
footprint "seed marketplace (Python)" --http "http://127.0.0.1:$P_X/" \
  -- env RECOMMENDATIONS_PORT="$port" SEED_PORT="$P_X" "${SEED_MKT[@]}"
tool stop rec

# Catalogs of catalog.max_bytes (16 MiB, the largest a reload can take; quick mode too, as the
# targets are about that size) in and out of service by rename, RSS read around each reload.
log "scenario 8: memory around reloads of a catalog.max_bytes catalog"
tool gen-catalog --books 9 --out "$WORK/memory/catalog.toml"
port=$(free_port)
start rec_memory --health "127.0.0.1:$port" "${REC[@]}" --catalog "$WORK/memory/catalog.toml" --port "$port"
tool reload-memory rec_memory --addr "127.0.0.1:$port" --catalog "$WORK/memory/catalog.toml"
tool stop rec_memory
rm -f "$WORK/memory"/*

# The Marketplace's live catalog: a saved catalog.toml in every open page within half a second.
# Recommendations on a generated catalog with a shelf (poetry) that gets a new first title at
# every edit; the save-to-screen time read in headless Chromium; then what idle /events streams
# (one per open tab) cost the home page's load and the Marketplace's memory.
log "scenario 9: live catalog ($LIVE_EDITS edits seen in Chromium; the home page beside $STREAMS idle event streams)"
if (need chromium); then
  # Each stream is a socket on both sides, and both processes are this shell's children.
  files=$((2 * STREAMS + 1024))
  if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$files" ]; then
    ulimit -n "$files" || fail "scenario 9 needs $files open files (ulimit -n $(ulimit -n), hard limit $(ulimit -Hn))"
  fi
  tool gen-catalog --books 9 --shelf poetry --out "$WORK/live/catalog.toml"
  P_REC_LIVE=$(free_port) P_MKT_LIVE=$(free_port)
  launch rec_live "${REC[@]}" --catalog "$WORK/live/catalog.toml" --port "$P_REC_LIVE"
  launch mkt_live "${MKT[@]}" --port "$P_MKT_LIVE" --recommendations "127.0.0.1:$P_REC_LIVE"
  tool ready mkt_live rec_live --http "http://127.0.0.1:$P_MKT_LIVE/readyz"
  tool live-latency --url "http://127.0.0.1:$P_MKT_LIVE" --catalog "$WORK/live/catalog.toml" \
    --shelf poetry --edits "$LIVE_EDITS" --target-ms 500
  loadgen idle-streams mkt_live rec_live --addr "127.0.0.1:$P_MKT_LIVE" --streams "$STREAMS" \
    --rounds "$ROUNDS" --seconds "$DUR" --warm-up "$WARM"
  tool stop mkt_live rec_live
else
  log "scenario 9 skipped: no chromium, and apt-get could not install it"
  tool info "scenario 9" "skipped: no chromium"
fi

tool info "load average after" "$(cut -d' ' -f1-3 /proc/loadavg)"
tool report "$BENCH_DIR/results.tsv" >"$BENCH_DIR/results.md"
log "results ($BENCH_DIR/results.md)"
cat "$BENCH_DIR/results.md"
