#!/usr/bin/env bash
# End-to-end test of docker-compose.yaml on this machine's Docker engine.
#
# No image can be pulled here, so the images come from local material: release binaries built
# here (in CARGO_TARGET_DIR when set), each packaged by the runtime stage of its real Dockerfile
# over a stand-in for the distroless base made from this machine's files. Then, with the
# docker-compose.yaml users run (plus an override that only names these images), it checks what
# a user would see: both health checks, the page, hot reload of the mounted catalog by rename and
# in place, a broken edit, Recommendations stopping and coming back, the page in headless
# Chromium, `--scale recommendations=3`, and a graceful stop. Everything it made (containers,
# network, images) is removed at the end, also when a step fails.
#
# Usage: tests/e2e/compose.sh                       Compose v1.29 (`docker-compose`, Debian's)
#        E2E_COMPOSE=5.6.1 tests/e2e/compose.sh     `docker compose` 5.6.1 (or 2.40.3), from PyPI
#        E2E_COMPOSE=plugin tests/e2e/compose.sh    the `docker compose` this machine has
# Artifacts in target/e2e/: marketplace.png and marketplace-phone.png (screenshots),
# unavailable.png (the 503 notice), marketplace-dom.html, unavailable.html, and
# compose-logs.txt when a step failed.

source "$(dirname "$0")/lib.sh"

need_docker
need_compose
need curl
need chromium

STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%S)
WORK=$(mktemp -d)
PROJECT_DIR="$WORK/project"
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
PAGE="$URL/?category=mystery&max_results=50"   # every mystery book of the test catalog
TAG="$RUN_ID"

cleanup() {
  local status=$?
  set +e
  if [ $status -ne 0 ] && [ -f "${OVERRIDE:-/nonexistent}" ]; then
    log "saving the services' logs to target/e2e/compose-logs.txt"
    dc logs --no-color > "$ARTIFACTS/compose-logs.txt" 2>&1
    dc ps -a >> "$ARTIFACTS/compose-logs.txt" 2>&1
  fi
  teardown_project
  remove_images "$STARTED_AT"
  rm -rf "$WORK"
  check_clean || status=1
  if [ $status -eq 0 ]; then log "PASS: compose e2e with $("${COMPOSE[@]}" version 2>/dev/null | head -n 1)"; else log "FAILED (exit $status)"; fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The file users run, as it is, against this Compose's schema.
"${COMPOSE[@]}" -f "$REPO/docker-compose.yaml" config -q || fail "docker-compose.yaml is not valid"
log "ok: docker-compose.yaml is valid for ${COMPOSE[*]}"

# ---- images from local material
log "building release binaries"
(cd "$REPO" && cargo build --release --locked -p recommendations -p marketplace)
BIN_DIR="$(cargo_target_dir)/release"

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

page() { curl -fsS --max-time 5 "$PAGE"; }

# Headless Chromium, Debian's package.
chromium_run() {
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --hide-scrollbars --user-data-dir="$WORK/chromium" "$@" \
    2>> "$ARTIFACTS/chromium.log"
}
rm -f "$ARTIFACTS"/*.png "$ARTIFACTS"/{page.html,unavailable.html,unavailable.headers,marketplace-dom.html,chromium.log,compose-logs.txt}
page_has() { page | grep -qF -- "$1"; }

# ---- 2. the page lists the mounted catalog
page > "$ARTIFACTS/page.html"
grep -qF "Mystery books you may like" "$ARTIFACTS/page.html" || fail "the page is not the home page"
for title in "Первая книга" "Second Book"; do
  grep -qF "<span class=\"book-title\">$title</span>" "$ARTIFACTS/page.html" \
    || fail "the page does not list \"$title\" from the mounted catalog"
done
log "ok: the page lists the titles of the mounted catalog"

# ---- 3. host edits reach the container: save by rename (vim, sed -i, IDEs), then in place
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

# ---- 4. a broken catalog keeps the last good books, and the log says why
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

# ---- 5. Recommendations stops: the 503 notice within the deadline; it starts: the page recovers
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
grep -qF 'href="/?category=science_fiction"' "$ARTIFACTS/unavailable.html" \
  || fail "the 503 page lost its category navigation"
grep -qiE '^retry-after: 5' "$ARTIFACTS/unavailable.headers" || fail "the 503 has no Retry-After: 5"
log "ok: the 503 notice in ${seconds}s, with navigation and Retry-After"
chromium_run --window-size=1280,700 --screenshot="$ARTIFACTS/unavailable.png" "$URL/" >/dev/null \
  || log "no screenshot of the 503 notice (not a failure)"

dc start recommendations >/dev/null 2>&1
wait_until 30 "the page recovers when Recommendations is back" page_has "Fixed Title"
wait_until 30 "both services are healthy again" all_healthy marketplace 1

# ---- 6. a real browser: headless Chromium renders the page
chromium_run --window-size=1280,900 --screenshot="$ARTIFACTS/marketplace.png" "$PAGE" >/dev/null
[ -s "$ARTIFACTS/marketplace.png" ] || fail "Chromium made no screenshot (see target/e2e/chromium.log)"
chromium_run --window-size=390,844 --screenshot="$ARTIFACTS/marketplace-phone.png" "$PAGE" >/dev/null \
  || log "no phone-size screenshot (not a failure)"
chromium_run --dump-dom "$PAGE" > "$ARTIFACTS/marketplace-dom.html"
for title in "Fixed Title" "Вторая книга"; do
  grep -qF "<span class=\"book-title\">$title</span>" "$ARTIFACTS/marketplace-dom.html" \
    || fail "the DOM Chromium rendered does not list \"$title\""
done
log "ok: headless Chromium rendered the books (target/e2e/marketplace.png)"

# ---- 7. three Recommendations replicas (the compose file has no fixed port or name for it)
dc up -d --no-build --scale recommendations=3
wait_until 60 "3 recommendations replicas are healthy" all_healthy recommendations 3
wait_until 30 "marketplace is healthy" all_healthy marketplace 1
for _ in 1 2 3 4 5 6; do
  page_has "Fixed Title" || fail "the page does not work with 3 replicas"
done
log "ok: the page works with 3 replicas"

# ---- 8. a graceful stop of the whole stack
started=$(now)
dc stop --timeout 10 >/dev/null 2>&1
stop_seconds=$(since "$started")
for id in $(containers); do
  code=$(docker inspect -f '{{.State.ExitCode}} {{.Name}}' "$id")
  [ "${code%% *}" = 0 ] || fail "${code#* } exited with ${code%% *} on SIGTERM"
done
awk -v s="$stop_seconds" 'BEGIN { exit !(s < 5) }' || fail "stopping the stack took ${stop_seconds}s"
log "ok: the stack (4 containers) stopped in ${stop_seconds}s, every exit code 0"
