#!/usr/bin/env bash
# Wire compatibility with the seed, both ways, with the seed's own Python code (bench/seed/):
#
#   1. the seed's Python client, compiled from the seed's proto as it was (no `author` field),
#      calls our Recommendations: the tutorial's call, an unknown category, the error codes;
#   2. our Marketplace calls the seed's Python Recommendations server (grpcio): page, API, /readyz,
#      and its connection survives being idle (no HTTP/2 pings that grpcio would refuse);
#   3. the seed's Flask Marketplace calls our Recommendations: its page, as its own integration
#      test checks it (the title and three <li>).
#
# Usage: tests/interop/run.sh      (installs the seed's pinned Python stack into the venv under
#                                   the target directory that bench/run.sh shares; everything it
#                                   starts is stopped on exit)
set -euo pipefail
LOG_TAG=interop
# shellcheck source=SCRIPTDIR/../lib/common.sh
source "$(dirname "$0")/../lib/common.sh"   # log, fail, wait_until, free_port, seed_venv

WORK=$(mktemp -d)
PORT_LEDGER=$WORK/ports
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ $status -ne 0 ]; then
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; } >&2; done
  fi
  rm -rf "$WORK"
  [ $status -eq 0 ] && log PASS || log "FAILED (exit $status)"
}
trap cleanup EXIT

(cd "$REPO" && cargo build --release --locked -p recommendations -p marketplace)
BIN=$(cargo_target_dir)/release
PY=$(seed_venv)/bin/python

# The seed's code, and its proto exactly as the seed had it: ours minus the `author` field that
# Bookshop added, so the Python side is a client that has never heard of it.
cp -r "$REPO/bench/seed/." "$WORK/"
mkdir -p "$WORK/seed-proto"
grep -v -e 'string author = 3;' "$REPO/proto/recommendations.proto" > "$WORK/seed-proto/recommendations.proto"
! grep -q 'string author' "$WORK/seed-proto/recommendations.proto" || fail "the seed proto still has author"
"$PY" -m grpc_tools.protoc -I "$WORK/seed-proto" --python_out="$WORK" --grpc_python_out="$WORK" \
  "$WORK/seed-proto/recommendations.proto"

# ---- 1. the seed's client against our Recommendations
REC_PORT=$(free_port)
RECOMMENDATIONS__SERVER__HOST=127.0.0.1 RECOMMENDATIONS__METRICS__ENABLED=false \
  "$BIN/recommendations" --port "$REC_PORT" --catalog "$REPO/catalog.toml" > "$WORK/ours-rec.log" 2>&1 &
PIDS+=($!)
wait_until 20 "our Recommendations" "$BIN/recommendations" healthcheck --addr "127.0.0.1:$REC_PORT"

(cd "$WORK" && "$PY" - "$REC_PORT" <<'PY'
import sys
import grpc
from recommendations_pb2 import BookCategory, RecommendationRequest
from recommendations_pb2_grpc import RecommendationsStub

channel = grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}")
client = RecommendationsStub(channel)

# The tutorial's own call (section 3.16, with max_results=3).
response = client.Recommend(
    RecommendationRequest(user_id=1, category=BookCategory.SCIENCE_FICTION, max_results=3)
)
titles = sorted(b.title for b in response.recommendations)
assert titles == sorted(["Автостопом по галактике", "Игра Эндера", "Дюна"]), titles
assert sorted(b.id for b in response.recommendations) == [4, 5, 6]
# The author (field 3) is unknown to this client and skipped; the message still parses.
assert not hasattr(response.recommendations[0], "author")

one = client.Recommend(RecommendationRequest(user_id=1, category=BookCategory.MYSTERY, max_results=1))
assert len(one.recommendations) == 1

def code_of(request):
    try:
        client.Recommend(request)
    except grpc.RpcError as error:
        return error.code(), error.details()
    return grpc.StatusCode.OK, ""

# The seed's behaviour for an unknown category (7 is outside the enum)...
assert code_of(RecommendationRequest(user_id=1, category=7, max_results=3)) == (
    grpc.StatusCode.NOT_FOUND, "Category not found")
# ...and ours for a negative count (the seed answered UNKNOWN from a Python exception).
code, _ = code_of(RecommendationRequest(user_id=1, category=BookCategory.MYSTERY, max_results=-1))
assert code == grpc.StatusCode.INVALID_ARGUMENT, code
print("seed client -> our Recommendations: ok")
PY
) || fail "the seed's client against our Recommendations"
log "ok: the seed's Python client talks to our Recommendations"

# ---- 3. the seed's Flask Marketplace against our Recommendations
FLASK_PORT=$(free_port)
(cd "$WORK" && RECOMMENDATIONS_HOST=127.0.0.1 RECOMMENDATIONS_PORT=$REC_PORT SEED_PORT=$FLASK_PORT \
  exec "$PY" marketplace.py > "$WORK/seed-market.log" 2>&1) &
PIDS+=($!)
wait_until 30 "the seed's Flask Marketplace" curl -fsS "http://127.0.0.1:$FLASK_PORT/"
page=$(curl -fsS "http://127.0.0.1:$FLASK_PORT/")
grep -q "<title>Online Books For You</title>" <<<"$page" || fail "the seed's page has no title"
[ "$(grep -c '<li>' <<<"$page")" = 3 ] || fail "the seed's page does not list three books: $page"
grep -q "Мальтийский сокол\|Убийство в Восточном экспрессе\|Собака Баскервилей" <<<"$page" \
  || fail "the seed's page does not show our mystery books"
log "ok: the seed's Flask Marketplace shows our Recommendations' books"

# ---- 2. our Marketplace against the seed's Python Recommendations
SEED_REC_PORT=$(free_port)
(cd "$WORK" && SEED_BIND="127.0.0.1:$SEED_REC_PORT" exec "$PY" recommendations.py > "$WORK/seed-rec.log" 2>&1) &
PIDS+=($!)
MARKET_PORT=$(free_port)
MARKETPLACE__SERVER__HOST=127.0.0.1 MARKETPLACE__RECOMMENDATIONS__KEEPALIVE_MS=1000 \
  "$BIN/marketplace" --port "$MARKET_PORT" \
  --recommendations "127.0.0.1:$SEED_REC_PORT" > "$WORK/ours-market.log" 2>&1 &
PIDS+=($!)
wait_until 30 "our Marketplace in front of the seed's server" curl -fsS "http://127.0.0.1:$MARKET_PORT/readyz"
page=$(curl -fsS "http://127.0.0.1:$MARKET_PORT/?category=self_help")
for title in "Семь навыков высокоэффективных людей" "Человек в поисках смысла"; do
  grep -qF "$title" <<<"$page" || fail "our page does not show the seed's book $title"
done
json=$(curl -fsS "http://127.0.0.1:$MARKET_PORT/api/recommendations?category=science_fiction")
"$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["category"]=="science_fiction"; assert len(d["recommendations"])==3, d; assert all("author" not in b for b in d["recommendations"]), d' "$json" \
  || fail "our API in front of the seed's server: $json"
log "ok: our Marketplace shows the seed's Python Recommendations' books (page, API, /readyz)"

# gRPC's C core (the seed's grpcio) takes HTTP/2 pings on a connection without calls for abuse
# and closes it (GOAWAY "too_many_pings") after a few. Our keepalive is 1 s here, so idle for
# 7 s the connection would have been pinged about seven times: it must still be the one the calls
# above used. (The wait is the test's subject: time without calls.)
conns_to_seed() { # the local ports of established IPv4 connections to the seed's server
  "$PY" - "$SEED_REC_PORT" <<'PY'
import sys
port = int(sys.argv[1])
with open("/proc/net/tcp") as f:
    next(f)
    for line in f:
        local, remote, state = line.split()[1:4]
        if state == "01" and int(remote.split(":")[1], 16) == port:
            print(int(local.split(":")[1], 16))
PY
}
before=$(conns_to_seed)
[ "$(wc -w <<<"$before")" = 1 ] || fail "expected one connection to the seed's server, found: $before"
sleep 7
after=$(conns_to_seed)
[ "$after" = "$before" ] \
  || fail "the idle connection to the seed's server did not survive keepalive (local port $before, now: ${after:-none})"
curl -fsS "http://127.0.0.1:$MARKET_PORT/?category=self_help" | grep -qF "Человек в поисках смысла" \
  || fail "our page after 7 s idle"
log "ok: an idle connection to the seed's server survives our keepalive (no too_many_pings)"
