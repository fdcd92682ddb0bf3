#!/usr/bin/env bash
# Builds the real, unmodified Dockerfiles on this machine, where no registry can be reached.
#
# It makes local stand-ins for the two base images they name, under the same names:
#   rust:1.95-slim-bookworm               this machine's Rust toolchain, gcc and libc6-dev, and
#                                         cargo's crate cache with cargo set offline;
#   gcr.io/distroless/cc-debian12:nonroot this machine's glibc and libgcc, no shell.
# Then it builds both services from the repository root, as `docker compose up --build` does:
#   MODE=classic   `docker build` with the classic builder (DOCKER_BUILDKIT=0), then
#                  `docker-compose build` (v1.29, which builds through the same classic API);
#   MODE=buildkit  `docker compose build` (Compose 2.40.3 from PyPI), which builds with the
#                  engine's BuildKit. (The Docker CLI's own BuildKit path needs the buildx
#                  plugin, which neither Debian 12 nor PyPI provides.)
# It times a cold build and a rebuild after a source edit, checks each image (size under 50 MB,
# user 65532, no shell, its HEALTHCHECK), starts the images with the real docker-compose.yaml and
# loads the page. Everything it made is removed at the end, also when a step fails.
#
# Usage: tests/e2e/dockerfiles.sh                  (MODE=classic)
#        MODE=buildkit tests/e2e/dockerfiles.sh
# Report (times, sizes, machine): target/e2e/dockerfiles-$MODE.txt; the builder's output:
# target/e2e/dockerfiles-$MODE.log

source "$(dirname "$0")/lib.sh"

MODE=${MODE:-classic}
# shellcheck disable=SC2034  # E2E_COMPOSE and PROJECT_DIR are read by lib.sh's functions
case "$MODE" in
  classic) E2E_COMPOSE=v1; COMPOSE=(docker-compose) ;;
  buildkit) E2E_COMPOSE=2.40.3; COMPOSE=(docker compose) ;;
  *) fail "MODE must be classic or buildkit" ;;
esac

need_docker
need_compose
need curl

STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%S)
WORK=$(mktemp -d)
# The build context and compose project: a snapshot of the repository (without target/ and
# .git/), so edits made to the working tree while this runs cannot change what is measured,
# and the source edit of the rebuild is never made in the repository.
CONTEXT="$WORK/context"
# shellcheck disable=SC2034  # read by dc (lib.sh)
PROJECT_DIR="$CONTEXT"
PORT=$(free_port)
TAG="$RUN_ID"
REPORT="$ARTIFACTS/dockerfiles-$MODE.txt"
BUILD_LOG="$ARTIFACTS/dockerfiles-$MODE.log"   # the builder's output
BUILD_CACHE_BEFORE=$(docker system df --format '{{.Type}} {{.TotalCount}}' | awk '/^Build Cache/ {print $3}')

cleanup() {
  local status=$?
  set +e
  if [ $status -ne 0 ] && [ -f "${OVERRIDE:-/nonexistent}" ]; then
    dc logs --no-color > "$ARTIFACTS/dockerfiles-logs.txt" 2>&1
  fi
  teardown_project
  remove_images "$STARTED_AT"
  # BuildKit keeps its cache outside images. Prune it only if there was none before this run,
  # so that nobody else's cache goes.
  if [ "$MODE" = buildkit ]; then
    if [ "${BUILD_CACHE_BEFORE:-0}" = 0 ]; then
      docker builder prune -af >/dev/null 2>&1
    else
      log "left the BuildKit cache alone (it had $BUILD_CACHE_BEFORE entries before this run)"
    fi
  fi
  rm -rf "$WORK"
  check_clean || status=1
  if [ $status -eq 0 ]; then log "PASS: the Dockerfiles build ($MODE) and run"; else log "FAILED (exit $status)"; fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

: > "$REPORT"
: > "$BUILD_LOG"
report() { echo "$*" | tee -a "$REPORT" >&2; }
mb() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.1f MB", $1/1e6}'; }

report "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
  "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo);" \
  "Docker Engine $(docker version -f '{{.Server.Version}}'); $("${COMPOSE[@]}" version | head -n 1)"

remember_image "$RUNTIME_BASE"
remember_image "$BUILDER_BASE"
started=$(now)
make_runtime_base
make_builder_base
report "stand-in bases made in $(since "$started") s ($BUILDER_BASE $(mb "$BUILDER_BASE"), $RUNTIME_BASE $(mb "$RUNTIME_BASE"))"

write_override "$TAG"
for service in recommendations marketplace; do remember_image "bookshop-$service:$TAG"; done

mkdir -p "$CONTEXT"
chmod 755 "$WORK" "$CONTEXT"   # the containers' user 65532 reads the catalog through the mount
tar -C "$REPO" --exclude=./target --exclude=./.git -cf - . | tar -C "$CONTEXT" -xf -

# build SERVICE...: builds the services' images from the snapshot, as MODE says, and remembers
# each image id (a rebuild moves the tag; the image it leaves untagged is ours to remove too).
build() {
  local service
  case "$MODE" in
    classic)
      for service in "$@"; do
        (cd "$CONTEXT" && DOCKER_BUILDKIT=0 docker build -f "$service/Dockerfile" -t "bookshop-$service:$TAG" .) \
          >> "$BUILD_LOG" 2>&1 \
          || { tail -n 40 "$BUILD_LOG" >&2; return 1; }
      done ;;
    buildkit)
      dc build --progress=plain "$@" >> "$BUILD_LOG" 2>&1 \
        || { tail -n 40 "$BUILD_LOG" >&2; return 1; } ;;
  esac
  for service in "$@"; do
    MADE_IMAGES+=("$(docker image inspect -f '{{.Id}}' "bookshop-$service:$TAG")")
  done
}

# ---- cold builds, one service after the other (as Compose builds them)
for service in recommendations marketplace; do
  image="bookshop-$service:$TAG"
  log "building $service/Dockerfile ($MODE)"
  started=$(now)
  build "$service"
  report "$service: cold build $(since "$started") s, image $(mb "$image")"
done

# ---- what is in the images
for service in recommendations marketplace; do
  image="bookshop-$service:$TAG"
  size=$(docker image inspect -f '{{.Size}}' "$image")
  [ "$size" -lt 50000000 ] || fail "$image is $size bytes, over the 50 MB target"
  user=$(docker image inspect -f '{{.Config.User}}' "$image")
  [ "$user" = "65532:65532" ] || fail "$image runs as '$user', not the non-root 65532"
  health=$(docker image inspect -f '{{json .Config.Healthcheck.Test}}' "$image")
  [ "$health" = "[\"CMD\",\"/usr/local/bin/$service\",\"healthcheck\"]" ] \
    || fail "$image has the HEALTHCHECK $health"
  help=$(docker run --rm --network none "$image" --help) || fail "$image does not run its binary"
  grep -q healthcheck <<< "$help" || fail "$image does not run its binary"
  if docker run --rm --network none --entrypoint sh "$image" -c true >/dev/null 2>&1; then
    fail "$image has a shell"
  fi
done
docker run --rm --network none "bookshop-recommendations:$TAG" check /catalog/catalog.toml >/dev/null || fail "the recommendations image has no valid demo catalog"
log "ok: both images under 50 MB, user 65532, no shell, HEALTHCHECK through the binary"

# ---- a rebuild after an edit to the code (in the snapshot): only the workspace's crates are
# compiled again.
echo "// edited by tests/e2e/dockerfiles.sh" >> "$CONTEXT/recommendations/src/main.rs"
started=$(now)
build recommendations
report "recommendations: rebuild after a source edit $(since "$started") s"

if [ "$MODE" = classic ]; then
  # What `docker-compose up --build` (v1.29) does: its own context upload, the same builder.
  started=$(now)
  COMPOSE_DOCKER_CLI_BUILD=0 dc build >/dev/null 2>&1 || fail "docker-compose build failed"
  report "docker-compose build (v1.29) of both after that: $(since "$started") s"
fi

# ---- the images with the real compose file
log "starting the built images with docker-compose.yaml"
dc up -d --no-build
wait_until 60 "recommendations is healthy" all_healthy recommendations 1
wait_until 60 "marketplace is healthy" all_healthy marketplace 1
# The first science-fiction title of the demo catalog (its own, Russian) must be on that category's Russian page.
title=$(awk -F'"' '/^\[\[science_fiction\]\]/ { f = 1 } f && /^title/ { print $2; exit }' "$CONTEXT/catalog.toml")
page_has() {
  curl -fsS --max-time 5 "http://127.0.0.1:$PORT/?category=science_fiction&max_results=50&lang=ru" | grep -qF "$1"
}
wait_until 10 "the page lists the catalog's \"$title\"" page_has "$title"
started=$(now)
dc stop --timeout 10 >/dev/null 2>&1
for id in $(containers); do
  code=$(docker inspect -f '{{.State.ExitCode}} {{.Name}}' "$id")
  [ "${code%% *}" = 0 ] || fail "${code#* } exited with ${code%% *} on SIGTERM"
done
report "compose with the built images: healthy, page served, stopped in $(since "$started") s with exit 0"
