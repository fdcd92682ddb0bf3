#!/usr/bin/env bash
# End-to-end test of docker-compose.yaml on this machine's Docker engine.
#
# No image can be pulled here, so the images come from local material: release binaries built
# here (in CARGO_TARGET_DIR when set), each packaged by the runtime stage of its real Dockerfile
# over a stand-in for the distroless base made from this machine's files. Then, with the
# docker-compose.yaml users run (plus an override that only names these images), it checks what
# a user would see: both health checks, the page, the request id in the response and in both
# services' logs, hot reload of the mounted catalog by rename and in place, a broken edit,
# Recommendations stopping and coming back (the last books, marked, with the 503), the page in
# headless Chromium with nothing in its console (screenshots with E2E_SCREENSHOTS=1), `--scale
# recommendations=3` with the calls spread over the replicas and one of them stopped, a graceful
# stop, and then the stack with the mTLS override (deploy/compose/mtls.yaml, certificates from
# deploy/tls/make-dev-certs.sh) as a second compose project. Everything it made (containers,
# networks, images) is removed at the end, also when a step fails.
#
# Usage: tests/e2e/compose.sh                       Compose v1.29 (`docker-compose`, Debian's)
#        E2E_COMPOSE=5.6.1 tests/e2e/compose.sh     `docker compose` 5.6.1 (or 2.40.3), from PyPI
#        E2E_COMPOSE=plugin tests/e2e/compose.sh    the `docker compose` this machine has
#        E2E_SCREENSHOTS=1 tests/e2e/compose.sh     also the screenshots (.ci/run: its first run)
# Artifacts in target/e2e/: marketplace-dom.html, unavailable.html, page-mtls.html (the page
# over mTLS), chromium.log, and compose-logs.txt (the logs of the compose project at work) when a
# step failed. Screenshots in target/e2e-screenshots/ (see step 7).

source "$(dirname "$0")/lib.sh"

need_docker
need_compose
need curl
need chromium
need openssl

STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%S)
WORK=$(mktemp -d)
PROJECT_DIR="$WORK/project"
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
PAGE="$URL/?category=mystery&max_results=50"   # every mystery book of the test catalog
TAG="$RUN_ID"
# Two compose projects: the stack as users run it, then the same with the mTLS override.
MAIN_PROJECT=$PROJECT
MTLS_PROJECT="$PROJECT-mtls"
MTLS_FILES=(docker-compose.yaml deploy/compose/mtls.yaml)
MTLS_STARTED=""

cleanup() {
  local status=$?
  set +e
  if [ $status -ne 0 ] && [ -f "${OVERRIDE:-/nonexistent}" ]; then
    log "saving the services' logs (project $PROJECT) to target/e2e/compose-logs.txt"
    dc logs --no-color > "$ARTIFACTS/compose-logs.txt" 2>&1
    dc ps -a >> "$ARTIFACTS/compose-logs.txt" 2>&1
  fi
  if [ -n "$MTLS_STARTED" ]; then
    use_project "$MTLS_PROJECT" "${MTLS_FILES[@]}"
    teardown_project
  fi
  use_project "$MAIN_PROJECT"
  teardown_project
  remove_images "$STARTED_AT"
  rm -rf "$WORK"
  check_clean "$MAIN_PROJECT" "$MTLS_PROJECT" || status=1
  if [ $status -eq 0 ]; then log "PASS: compose e2e with $("${COMPOSE[@]}" version 2>/dev/null | head -n 1)"; else log "FAILED (exit $status)"; fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The file users run, as it is, against this Compose's schema.
"${COMPOSE[@]}" -f "$REPO/docker-compose.yaml" config -q || fail "docker-compose.yaml is not valid"
log "ok: docker-compose.yaml is valid for ${COMPOSE[*]}"
# The traces override (Jaeger) over it: checked, not run (its image comes from a registry).
"${COMPOSE[@]}" -f "$REPO/docker-compose.yaml" -f "$REPO/docker-compose.tracing.yaml" config -q \
  || fail "docker-compose.tracing.yaml is not valid over docker-compose.yaml"
log "ok: docker-compose.tracing.yaml is valid over docker-compose.yaml"

# ---- images from local material
log "building release binaries"
(cd "$REPO" && cargo build --release --locked -p recommendations -p marketplace -p bookshop-bench)
BIN_DIR="$(cargo_target_dir)/release"
BENCH_TOOL=$BIN_DIR/bench-tool

remember_image "$RUNTIME_BASE"
make_runtime_base

# local_image SERVICE: the runtime stage of SERVICE/Dockerfile, fed with the binary built here
# instead of the one its build stage would make.
local_image() {
  local service=$1 image="bookshop-$1:$TAG"
  local ctx="$WORK/image-$service"
  mkdir -p "$ctx/out"
  cp "$BIN_DIR/$service" "$REPO/catalog.toml" "$ctx/out/"
  sed -n '/^FROM .* AS runtime$/,$p' "$REPO/$service/Dockerfile" \
    | sed 's#^COPY --from=build /out/#COPY out/#' > "$ctx/Dockerfile"
  grep -q '^COPY out/' "$ctx/Dockerfile" || fail "$service/Dockerfile has no runtime stage to reuse"
  remember_image "$image"
  DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null 2> "$ctx/build.log" \
    || { cat "$ctx/build.log" >&2; fail "cannot build $image"; }
  docker image inspect -f '{{.Size}}' "$image" | awk '{printf "  '"$image"': %.1f MB\n", $1/1e6}' >&2
}
local_image recommendations
local_image marketplace

# ---- the project directory a user would have: the real compose file and a catalog
mkdir -p "$PROJECT_DIR"
chmod 755 "$WORK" "$PROJECT_DIR"   # mktemp -d is 0700: the containers' user 65532 must read it
cp "$REPO/docker-compose.yaml" "$PROJECT_DIR/"
write_override "$TAG"
CATALOG="$PROJECT_DIR/catalog.toml"
catalog() { # catalog TITLE...: a catalog with these mystery titles and one self-help book
  local id=1
  printf '[[self_help]]\nid = 100\ntitle = "Self-help filler"\n'
  for title in "$@"; do
    printf '\n[[mystery]]\nid = %d\ntitle = "%s"\nauthor = "Author %d"\n' "$id" "$title" "$id"
    id=$((id + 1))
  done
}
umask 022
catalog "Первая книга" "Second Book" > "$CATALOG"

# ---- 1. start the stack, wait for both health checks
log "starting the stack (project $PROJECT, page on $URL)"
dc up -d --no-build
wait_until 60 "recommendations is healthy" all_healthy recommendations 1
wait_until 60 "marketplace is healthy" all_healthy marketplace 1
# What docker-compose.yaml gives each service: one CPU, and one Tokio worker thread to match.
for service in recommendations marketplace; do
  id=$(containers "$service")
  nano_cpus=$(docker inspect -f '{{.HostConfig.NanoCpus}}' "$id")
  [ "$nano_cpus" = 1000000000 ] || fail "$service has NanoCpus=$nano_cpus, not the one CPU of docker-compose.yaml"
  docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$id" | grep -qx 'TOKIO_WORKER_THREADS=1' \
    || fail "$service does not run with TOKIO_WORKER_THREADS=1"
done
log "ok: one CPU and one worker thread for each service"

page() { curl -fsS --max-time 5 "$PAGE"; }

# Headless Chromium, Debian's package. Its log goes to chromium.log, with what the page's console
# said (lines with `:CONSOLE`): a CSP violation or a resource that failed to load.
chromium_run() {
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --hide-scrollbars --user-data-dir="$WORK/chromium" \
    --enable-logging=stderr --v=0 "$@" 2>> "$ARTIFACTS/chromium.log"
}
# console_is_empty: no page Chromium loaded so far wrote to its console.
console_is_empty() {
  ! grep -F ':CONSOLE' "$ARTIFACTS/chromium.log" >&2 \
    || fail "the page wrote to Chromium's console (above; target/e2e/chromium.log)"
}
rm -f "$ARTIFACTS"/{page.html,page-mtls.html,unavailable.html,unavailable.headers,marketplace-dom.html,chromium.log,compose-logs.txt}
page_has() { page | grep -qF -- "$1"; }
page_at_has() { curl -sS --max-time 5 "$URL$1" | grep -qF -- "$2"; }

# ---- 2. the page lists the mounted catalog
page > "$ARTIFACTS/page.html"
grep -qF "<h1>Mystery</h1>" "$ARTIFACTS/page.html" || fail "the page is not the home page"
for title in "Первая книга" "Second Book"; do
  grep -qF "<span class=\"book-title\">$title</span>" "$ARTIFACTS/page.html" \
    || fail "the page does not list \"$title\" from the mounted catalog"
done
log "ok: the page lists the titles of the mounted catalog"

# ---- 3. a request id: the client's or a new one, in the response and in both services' logs
# request_id [CURL_ARGS...]: the x-request-id header of the page's answer, which must be a 200.
request_id() {
  local headers
  headers=$(curl -sS --max-time 5 -o /dev/null -D - "$@" "$PAGE" | tr -d '\r') || return 1
  grep -qE '^HTTP/[0-9.]+ 200' <<< "$headers" || { log "not a 200: $(head -n 1 <<< "$headers")"; return 1; }
  sed -n 's/^x-request-id: *//Ip' <<< "$headers"
}
# logs_have SERVICE TEXT...: one line of SERVICE's log holds every TEXT.
logs_have() {
  local service=$1 lines text; shift
  lines=$(dc logs --no-color "$service" 2>&1)
  for text in "$@"; do lines=$(grep -F -- "$text" <<< "$lines") || return 1; done
}
# both_logs_have ID: the access lines of both services carry the request id ID (the page asks
# for its books with the catalog's Recommend, `method="Catalog/Recommend"`).
both_logs_have() {
  logs_have marketplace "request{request_id=$1}" "marketplace::access" \
    && logs_have recommendations "recommendations::access" "request_id=\"$1\"" 'Recommend" category='
}
sent="e2e-$RUN_ID-$(date +%s%N)"
got=$(request_id -H "x-request-id: $sent") || fail "the page with an x-request-id did not answer 200"
[ "$got" = "$sent" ] || fail "sent x-request-id $sent, got back \"$got\""
wait_until 10 "the client's request id ($sent) is in both services' access lines" both_logs_have "$sent"
generated=$(request_id) || fail "the page did not answer 200"
grep -qE '^[0-9a-f]{32}$' <<< "$generated" || fail "the generated x-request-id is \"$generated\", not 32 hex digits"
wait_until 10 "a generated request id ($generated) is in both services' access lines" both_logs_have "$generated"

# ---- 4. host edits reach the container: save by rename (vim, sed -i, IDEs), then in place
catalog "Renamed Title" "Second Book" > "$PROJECT_DIR/.catalog.toml.swp"
inode_before=$(stat -c %i "$CATALOG")
mv "$PROJECT_DIR/.catalog.toml.swp" "$CATALOG"
[ "$(stat -c %i "$CATALOG")" != "$inode_before" ] || fail "the rename kept the inode"
wait_until 5 "a save by rename is on the page" page_has "Renamed Title"

sed -i 's/Second Book/Sed Title/' "$CATALOG"   # sed -i renames too
wait_until 5 "an edit by sed -i is on the page" page_has "Sed Title"

inode_before=$(stat -c %i "$CATALOG")
catalog "In-place Title" "Second Book" > "$CATALOG"
[ "$(stat -c %i "$CATALOG")" = "$inode_before" ] || fail "the in-place write changed the inode"
wait_until 5 "an in-place write is on the page" page_has "In-place Title"

# ---- 5. a broken catalog keeps the last good books, and the log says why
printf '[[mystery]]\nid = 1\ntitle = "Broken"\n\n[[mystery]]\nid = 1\ntitle = "Duplicate"\n' > "$CATALOG"
logs_name_error() {
  dc logs --no-color recommendations 2>&1 | grep -F "/catalog/catalog.toml:6:6: duplicate id 1"
}
wait_until 10 "the Recommendations log names the error (file:line:column)" logs_name_error
page > "$ARTIFACTS/page.html"
grep -qF "In-place Title" "$ARTIFACTS/page.html" || fail "a broken catalog replaced the last good one"
! grep -qF "Broken" "$ARTIFACTS/page.html" || fail "the broken catalog is served"
log "ok: the last good catalog is still served"
catalog "Fixed Title" "Вторая книга" > "$CATALOG"
wait_until 5 "the fixed catalog is on the page" page_has "Fixed Title"

# ---- 6. Recommendations stops: the 503 notice within the deadline; it starts: the page recovers
started=$(now)
dc stop --timeout 10 recommendations >/dev/null 2>&1
stop_seconds=$(since "$started")
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$(containers recommendations)")
[ "$exit_code" = 0 ] || fail "recommendations exited with $exit_code on SIGTERM (137: it was killed)"
awk -v s="$stop_seconds" 'BEGIN { exit !(s < 5) }' || fail "stopping recommendations took ${stop_seconds}s"
log "ok: recommendations stopped on SIGTERM in ${stop_seconds}s, exit 0"

# One request: status, time, headers and body of the same answer. The Marketplace's deadline
# for a Recommendations call is 1 s (recommendations.timeout_ms).
read -r status seconds < <(curl -s --max-time 10 -D "$ARTIFACTS/unavailable.headers" \
  -o "$ARTIFACTS/unavailable.html" -w '%{http_code} %{time_total}\n' "$URL/")
[ "$status" = 503 ] || fail "expected 503 with Recommendations stopped, got $status"
awk -v s="$seconds" 'BEGIN { exit !(s < 2.0) }' || fail "the 503 page took ${seconds}s (deadline 1 s)"
grep -qF 'Recommendations are unavailable right now' "$ARTIFACTS/unavailable.html" \
  || fail "the 503 page is not the unavailable notice"
grep -qF 'role="alert"' "$ARTIFACTS/unavailable.html" || fail "the notice is not an alert"
grep -qF 'href="/?category=self_help"' "$ARTIFACTS/unavailable.html" \
  || fail "the 503 page lost its category navigation"
grep -qiE '^retry-after: 5' "$ARTIFACTS/unavailable.headers" || fail "the 503 has no Retry-After: 5"
log "ok: the 503 notice in ${seconds}s, with navigation and Retry-After"
# The mystery books last served are still shown, marked; a category not served yet has none.
for text in "Possibly out of date" "<span class=\"book-title\">Fixed Title</span>"; do
  grep -qF "$text" "$ARTIFACTS/unavailable.html" || fail "the 503 page does not show the last books ($text)"
done
# (The navigation is the catalog's: this one has mystery and self-help, and self-help was never
# asked for.)
never_served=$(curl -s --max-time 10 -w '\n%{http_code}' "$URL/?category=self_help")
[ "${never_served##*$'\n'}" = 503 ] || fail "the page of a category never served is not a 503"
! grep -qF 'class="book-title"' <<< "$never_served" \
  || fail "the 503 page of a category never served shows books"
log "ok: the 503 page shows the books last served, marked, and none for a category never served"

dc start recommendations >/dev/null 2>&1
wait_until 30 "the page recovers when Recommendations is back" page_has "Fixed Title"
wait_until 30 "both services are healthy again" all_healthy marketplace 1

# ---- 7. a real browser: headless Chromium renders the page, and its console stays empty
chromium_run --dump-dom "$PAGE" > "$ARTIFACTS/marketplace-dom.html"
for title in "Fixed Title" "Вторая книга"; do
  grep -qF "<span class=\"book-title\">$title</span>" "$ARTIFACTS/marketplace-dom.html" \
    || fail "the DOM Chromium rendered does not list \"$title\""
done
console_is_empty
log "ok: headless Chromium rendered the books, with nothing in its console"

# The screenshots (E2E_SCREENSHOTS=1): what a new user sees, with the repository's catalog, in
# English and Russian, on a desktop (1280x800) and a phone (390x844), light and dark; then with
# Recommendations stopped: the last books served (mystery) and a category never served
# (self-help). In target/e2e-screenshots/; Chromium's console must stay empty throughout.
SHOTS="$REPO/target/e2e-screenshots"
# shoot NAME PATH [CHROMIUM_ARGS...]: NAME-desktop.png and NAME-phone.png of the page at PATH.
shoot() {
  local name=$1 path=$2 size; shift 2
  for size in desktop:1280,800 phone:390,844; do
    chromium_run --window-size="${size#*:}" --screenshot="$SHOTS/$name-${size%%:*}.png" "$@" \
      "$URL$path" > /dev/null || fail "Chromium took no screenshot $name-${size%%:*}.png"
  done
}
# serves TITLE: the mystery books the API gives include TITLE.
serves() {
  curl -fsS --max-time 5 "$URL/api/recommendations?category=mystery&max_results=50&lang=ru" \
    | python3 -c 'import json, sys; sys.exit(sys.argv[1] not in [b["title"] for b in json.load(sys.stdin)["recommendations"]])' "$1"
}
if [ "${E2E_SCREENSHOTS:-}" = 1 ]; then
  rm -rf "$SHOTS" && mkdir -p "$SHOTS"
  cp "$REPO/catalog.toml" "$CATALOG"
  first=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["mystery"][0]["title"])' "$CATALOG")
  wait_until 5 "the repository's catalog is served" serves "$first"
  shoot home-en "/?lang=en"
  shoot home-ru "/?lang=ru"
  shoot home-en-dark "/?lang=en" --force-dark-mode
  shoot bad-request-en "/?category=poetry&lang=en"
  dc stop --timeout 10 recommendations >/dev/null 2>&1
  shoot stale-en "/?lang=en"
  shoot stale-ru "/?lang=ru"
  shoot stale-en-dark "/?lang=en" --force-dark-mode
  shoot unavailable-en "/?category=self_help&lang=en"
  shoot unavailable-ru "/?category=self_help&lang=ru"
  dc start recommendations >/dev/null 2>&1
  catalog "Fixed Title" "Вторая книга" > "$CATALOG"
  wait_until 30 "the page is back, with the test's catalog" page_has "Fixed Title"
  wait_until 30 "both services are healthy again" all_healthy marketplace 1
  console_is_empty
  log "ok: $(find "$SHOTS" -name '*.png' | wc -l) screenshots in target/e2e-screenshots/, nothing in Chromium's console"
fi

# ---- 8. three Recommendations replicas (the compose file has no fixed port or name for it)
dc up -d --no-build --scale recommendations=3
wait_until 60 "3 recommendations replicas are healthy" all_healthy recommendations 3
wait_until 30 "marketplace is healthy" all_healthy marketplace 1
for _ in 1 2 3 4 5 6; do
  page_has "Fixed Title" || fail "the page does not work with 3 replicas"
done
log "ok: the page works with 3 replicas"

# The live catalog through the mount, with 3 replicas: a page open in headless Chromium shows
# each save without a reload (bench-tool live-latency, scenario 9 of docs/benchmarks.md; it
# fails on a page problem or an edit not shown within 5 s). Then the catalog of the next steps.
"$BENCH_TOOL" gen-catalog --shelf 9 "$CATALOG"
wait_until 30 "the poetry shelf is served" page_at_has "/?category=poetry" "<h1>Poetry</h1>"
BENCH_DIR="$WORK/bench" "$BENCH_TOOL" live-latency "$URL" "$CATALOG" 6 \
  || fail "an open page did not follow the catalog (above)"
log "ok: an open page showed each of 6 saves without a reload, with 3 replicas"
catalog "Fixed Title" "Вторая книга" > "$CATALOG"
wait_until 30 "the page shows the catalog again" page_has "Fixed Title"

# Every replica serves part of the page loads: counted from each one's access log (one
# `recommendations::access` line per Recommend call).
mapfile -t replicas < <(containers recommendations)
[ "${#replicas[@]}" -eq 3 ] || fail "expected 3 recommendations containers, found ${#replicas[@]}"
FAILED_LOADS=()
load_page() { # one load of the mystery page; a status other than 200 is kept in FAILED_LOADS
  local status seconds
  read -r status seconds < <(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}\n' \
    "$URL/?category=mystery" || true)
  [ "$status" = 200 ] || FAILED_LOADS+=("$status")
  SLOWEST=$(awk -v a="${SLOWEST:-0}" -v b="${seconds:-0}" 'BEGIN { print (b > a ? b : a) }')
}
load_pages() { # load_pages N WHAT: N loads, each of which must be a 200
  FAILED_LOADS=() SLOWEST=0
  local i started; started=$(now)
  for ((i = 0; i < $1; i++)); do load_page; done
  [ "${#FAILED_LOADS[@]}" -eq 0 ] || fail "$2: ${#FAILED_LOADS[@]} of $1 page loads failed (status ${FAILED_LOADS[*]})"
  log "ok: $2: $1 page loads, all 200 ($(since "$started") s, the slowest ${SLOWEST} s)"
}
access_lines() { # access_lines CONTAINER: the Recommend calls it has logged
  docker logs "$1" 2>&1 | grep -cE 'recommendations::access.*method="(Catalog/)?Recommend"' || true
}
replica_counts() { local id; for id in "${replicas[@]}"; do access_lines "$id"; done; }
replica_name() { docker inspect -f '{{.Name}}' "$1" | sed 's#^/##'; }
# served_since BASE...: sets SERVED to each replica's calls since the counts BASE.
served_since() {
  local counts i; mapfile -t counts < <(replica_counts)
  SERVED=(); for i in "${!replicas[@]}"; do SERVED+=($((counts[i] - $1))); shift; done
}
# all_replicas_called: after a few more page loads, every replica has logged a call since BASE.
# The Marketplace re-resolves the name every 5 s, so it learns of new replicas within that.
all_replicas_called() {
  local i n
  for i in 1 2 3; do load_page; done
  served_since "${base[@]}"
  for n in "${SERVED[@]}"; do [ "$n" -gt 0 ] || return 1; done
}
# logged_at_least N: the replicas have logged N calls since BASE, together.
logged_at_least() {
  local n total=0; served_since "${base[@]}"
  for n in "${SERVED[@]}"; do total=$((total + n)); done
  [ "$total" -ge "$1" ]
}

mapfile -t base < <(replica_counts)
FAILED_LOADS=()
wait_until 20 "the Marketplace sends calls to all 3 replicas" all_replicas_called
[ "${#FAILED_LOADS[@]}" -eq 0 ] || fail "page loads failed while the Marketplace found the replicas (status ${FAILED_LOADS[*]})"

loads=90
mapfile -t base < <(replica_counts)
load_pages "$loads" "the page with 3 replicas"
wait_until 10 "the replicas logged the $loads calls" logged_at_least "$loads"
served_since "${base[@]}"
log "calls per replica for $loads page loads:"
for i in "${!replicas[@]}"; do
  log "  $(replica_name "${replicas[$i]}"): ${SERVED[$i]}"
  [ "${SERVED[$i]}" -ge $((loads / 10)) ] \
    || fail "$(replica_name "${replicas[$i]}") served ${SERVED[$i]} of $loads calls (under 10%)"
done
log "ok: every replica served at least 10% of the calls"

# One replica stops: the Marketplace retries a refused call on another one and ejects it.
stopped=${replicas[0]}
docker stop --time 10 "$stopped" >/dev/null
log "stopped $(replica_name "$stopped")"
loads=30
mapfile -t base < <(replica_counts)
load_pages "$loads" "the page with one of 3 replicas stopped"
wait_until 10 "the 2 running replicas logged the $loads calls" logged_at_least "$loads"
served_since "${base[@]}"
log "calls per replica for $loads page loads, $(replica_name "$stopped") stopped:"
for i in "${!replicas[@]}"; do log "  $(replica_name "${replicas[$i]}"): ${SERVED[$i]}"; done
[ "${SERVED[0]}" -eq 0 ] || fail "the stopped replica logged ${SERVED[0]} calls"

# ---- 9. a graceful stop of the whole stack
started=$(now)
dc stop --timeout 10 >/dev/null 2>&1
stop_seconds=$(since "$started")
for id in $(containers); do
  code=$(docker inspect -f '{{.State.ExitCode}} {{.Name}}' "$id")
  [ "${code%% *}" = 0 ] || fail "${code#* } exited with ${code%% *} on SIGTERM"
done
awk -v s="$stop_seconds" 'BEGIN { exit !(s < 5) }' || fail "stopping the stack took ${stop_seconds}s"
log "ok: the stack (4 containers) stopped in ${stop_seconds}s, every exit code 0"

# ---- 10. the stack with mutual TLS: the override and certificates a developer would use
# A compose project of its own, in the same project directory (the same catalog).
use_project "$MAIN_PROJECT"
teardown_project
mkdir -p "$PROJECT_DIR/deploy/compose"
cp "$REPO/deploy/compose/mtls.yaml" "$PROJECT_DIR/deploy/compose/"
CERTS="$PROJECT_DIR/deploy/tls/dev"   # where mtls.yaml mounts them from (./deploy/tls/dev)
bash "$REPO/deploy/tls/make-dev-certs.sh" "$CERTS" >/dev/null || fail "make-dev-certs.sh failed"
for file in ca.pem recommendations.pem recommendations.key marketplace.pem marketplace.key; do
  [ $((8#$(stat -c %a "$CERTS/$file") & 4)) -ne 0 ] || fail "$file is not readable by the containers' user"
done
log "ok: make-dev-certs.sh wrote the CA and both certificates"
use_project "$MTLS_PROJECT" "${MTLS_FILES[@]}"
dc config -q || fail "docker-compose.yaml with deploy/compose/mtls.yaml is not valid"
log "starting the stack with deploy/compose/mtls.yaml (project $PROJECT)"
MTLS_STARTED=1
dc up -d --no-build
wait_until 60 "recommendations (mTLS) is healthy" all_healthy recommendations 1
wait_until 60 "marketplace (mTLS) is healthy" all_healthy marketplace 1
page > "$ARTIFACTS/page-mtls.html" || fail "the page does not load with mTLS"
for title in "Fixed Title" "Вторая книга"; do
  grep -qF "<span class=\"book-title\">$title</span>" "$ARTIFACTS/page-mtls.html" \
    || fail "the page with mTLS does not list \"$title\""
done
logs_have recommendations "Recommendations listening (gRPC)" "tls=true mutual_tls=true" \
  || fail "the Recommendations log does not say it listens with tls=true mutual_tls=true"
log "ok: the page works over mTLS; Recommendations listens with tls=true mutual_tls=true"

# mTLS is enforced. The image has only its own binary: its health check client speaks plaintext
# gRPC, which the TLS port must refuse while the health-only port answers.
rec=$(containers recommendations)
docker exec "$rec" /usr/local/bin/recommendations healthcheck --addr 127.0.0.1:50052 >/dev/null 2>&1 \
  || fail "the plaintext health port (50052) does not answer"
! docker exec "$rec" /usr/local/bin/recommendations healthcheck --addr 127.0.0.1:50051 >/dev/null 2>&1 \
  || fail "the gRPC port (50051) answers a plaintext client"
log "ok: the gRPC port refuses a plaintext client (the health-only port answers)"
# And a TLS client must show a certificate of the development CA. From the host, straight to the
# container's address on the compose network: a gRPC health call over TLS with the Marketplace's
# client certificate is answered; a TLS handshake without a client certificate, or with one of
# another CA, ends in the server's alert. (openssl s_client reads that alert; -ign_eof keeps it
# reading until the server closes, within the timeout.)
rec_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$rec")
printf '\0\0\0\0\0' > "$WORK/health-request"   # an empty HealthCheckRequest, gRPC-framed
answer=$(curl -sS --max-time 5 --http2 --cacert "$CERTS/ca.pem" \
    --cert "$CERTS/marketplace.pem" --key "$CERTS/marketplace.key" \
    --resolve "recommendations:50051:$rec_ip" -H 'content-type: application/grpc' -H 'te: trailers' \
    --data-binary @"$WORK/health-request" -o /dev/null -D - \
    https://recommendations:50051/grpc.health.v1.Health/Check 2>&1 | tr -d '\r') \
  || fail "a gRPC call over TLS with the client certificate failed: $answer"
if ! grep -qE '^HTTP/2 200' <<< "$answer" || ! grep -qx 'grpc-status: 0' <<< "$answer"; then
  fail "a gRPC call over TLS with the client certificate was not answered OK: $answer"
fi
log "ok: a gRPC call over TLS with the Marketplace's client certificate is answered (grpc-status 0)"
tls_handshake() { # tls_handshake S_CLIENT_ARGS...: the handshake's outcome, as openssl prints it
  timeout 10 openssl s_client -ign_eof -connect "$rec_ip:50051" -servername recommendations \
    -CAfile "$CERTS/ca.pem" -verify_return_error -alpn h2 "$@" < /dev/null 2>&1
}
bash "$REPO/deploy/tls/make-dev-certs.sh" "$WORK/other-ca" >/dev/null
for client in none other-ca; do
  case $client in
    none) args=(); what="without a client certificate" ;;
    other-ca) args=(-cert "$WORK/other-ca/marketplace.pem" -key "$WORK/other-ca/marketplace.key")
              what="with a client certificate of another CA" ;;
  esac
  if outcome=$(tls_handshake "${args[@]}"); then
    fail "a TLS client $what was not refused"
  fi
  alert=$(grep -aoE 'alert [a-z ]+' <<< "$outcome" | head -n 1) \
    || fail "a TLS client $what: no alert from the server (openssl: $(tail -n 1 <<< "$outcome"))"
  log "ok: a TLS client $what is refused ($alert)"
done
