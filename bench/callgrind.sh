#!/usr/bin/env bash
# Instructions per page, counted by callgrind (docs/benchmarks.md, "Profiling notes"). One command:
#
#   bench/callgrind.sh             ours and the frameworks' floor, 3,000 pages each
#   bench/callgrind.sh --pages N   N pages each
#
# Builds release binaries with symbols (in $CARGO_TARGET_DIR/callgrind, default
# target/callgrind), then for each pair of servers, ours (marketplace + recommendations) and the
# floor (salvo-floor --grpc + tonic-floor), runs both under `valgrind --tool=callgrind` with one
# Tokio worker thread and RUST_LOG=warn, serves 300 pages to warm up, zeroes the counters, serves
# N pages (`h2load --h1 -c 4`), and prints the instructions per page of each process. The counts
# do not depend on how busy the machine is, so they compare commits where req/s cannot. The
# profiles stay in $CARGO_TARGET_DIR/callgrind/profiles for `callgrind_annotate`.
set -euo pipefail

PAGES=3000
while [ $# -gt 0 ]; do
  case $1 in
    --pages) PAGES=$2; shift ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

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
# Loopback only, and no Prometheus listener on the fixed port 9464 (the floors ignore these). Set
# here, not through `env` in front of a command, which valgrind would profile instead.
export RECOMMENDATIONS__SERVER__HOST=127.0.0.1 RECOMMENDATIONS__METRICS__PORT=0
export MARKETPLACE__SERVER__HOST=127.0.0.1 RUST_LOG=warn
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
port() { python3 "$ROOT/tests/lib/free-port.py" "$OUT/ports"; }

# profile NAME BACKEND-CMD... -- FRONTEND-CMD...: both under callgrind (the commands get
# REC_PORT and WEB_PORT substituted), N pages, and one line of instructions per page.
profile() {
  local name=$1; shift
  local backend=() frontend=()
  while [ "$1" != -- ]; do backend+=("$1"); shift; done
  shift
  frontend=("$@")
  local rec_port web_port
  rec_port=$(port) web_port=$(port)
  local vg=(valgrind --tool=callgrind --dump-instr=no)
  TOKIO_WORKER_THREADS=1 "${vg[@]}" --callgrind-out-file="$OUT/$name-backend.%p" \
    "${backend[@]//REC_PORT/$rec_port}" >"$OUT/$name-backend.log" 2>&1 &
  local backend_pid=$!
  PIDS+=("$backend_pid")
  "$BIN/bench-tool" wait --timeout-ms 60000 --recommend "127.0.0.1:$rec_port" >/dev/null \
    || { tail -20 "$OUT/$name-backend.log" >&2; die "$name: the gRPC server is not ready"; }
  local fe=("${frontend[@]//REC_PORT/$rec_port}")
  TOKIO_WORKER_THREADS=1 "${vg[@]}" --callgrind-out-file="$OUT/$name-frontend.%p" \
    "${fe[@]//WEB_PORT/$web_port}" >"$OUT/$name-frontend.log" 2>&1 &
  local frontend_pid=$!
  PIDS+=("$frontend_pid")
  "$BIN/bench-tool" wait --timeout-ms 60000 --http "http://127.0.0.1:$web_port/" >/dev/null \
    || { tail -20 "$OUT/$name-frontend.log" >&2; die "$name: the web server is not ready"; }
  local url=http://127.0.0.1:$web_port/
  h2load --h1 -n 300 -c 4 "$url" >/dev/null
  callgrind_control -z "$backend_pid" >/dev/null 2>&1
  callgrind_control -z "$frontend_pid" >/dev/null 2>&1
  local ok
  ok=$(h2load --h1 -n "$PAGES" -c 4 "$url" | awk '/^status codes:/ {print $3}')
  [ "$ok" = "$PAGES" ] || die "$name: $ok of $PAGES pages answered 2xx"
  callgrind_control -d "$backend_pid" >/dev/null 2>&1
  callgrind_control -d "$frontend_pid" >/dev/null 2>&1
  kill "$frontend_pid" "$backend_pid"
  wait "$frontend_pid" "$backend_pid" 2>/dev/null || true
  local side file total per=()
  for side in frontend backend; do
    # The dump taken after the N pages (callgrind_control -d): the file with a part suffix.
    file=$(ls "$OUT/$name-$side".*.* | head -1)
    total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
    per+=("$(awk -v t="$total" -v n="$PAGES" 'BEGIN {printf "%.1f", t / n / 1000}')")
  done
  printf '%-6s web %6sk  grpc %6sk  total %6sk instructions per page\n' "$name" "${per[0]}" "${per[1]}" \
    "$(awk -v a="${per[0]}" -v b="${per[1]}" 'BEGIN {printf "%.1f", a + b}')"
}

profile ours "$BIN/recommendations" --catalog "$ROOT/catalog.toml" --port REC_PORT \
  -- "$BIN/marketplace" --port WEB_PORT --recommendations 127.0.0.1:REC_PORT

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

profile floor "$BIN/tonic-floor" --port REC_PORT \
  -- "$BIN/salvo-floor" --port WEB_PORT --page "$OUT/page.html" --json "$OUT/api.json" \
  --grpc 127.0.0.1:REC_PORT
