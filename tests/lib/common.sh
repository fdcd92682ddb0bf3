# shellcheck shell=bash
# What the test and benchmark scripts share (sourced, not run): tests/interop/run.sh,
# tests/e2e/lib.sh and bench/run.sh.
#
#   log MESSAGE...                       a line on stderr: [LOG_TAG HH:MM:SS] MESSAGE
#   fail MESSAGE...                      logs FAIL: MESSAGE and exits 1
#   now, since START                     seconds since the epoch; seconds since START (0.1 s)
#   wait_until SECONDS WHAT COMMAND...   polls COMMAND (every 0.2 s) until it succeeds, or fails
#                                        once SECONDS have passed
#   free_port                            a free TCP port (tests/lib/free-port.py); with
#                                        PORT_LEDGER set, never the same one twice in a run
#   need COMMAND [PACKAGE]               installs the Debian package when COMMAND is missing
#   cargo_target_dir                     where cargo builds (CARGO_TARGET_DIR, build.target-dir)
#   seed_venv                            the seed's Python stack, installed once: its venv's path
#
# REPO is the repository's root. Set LOG_TAG before sourcing to name the script in its lines.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

log() { printf '[%s%s] %s\n' "${LOG_TAG:+$LOG_TAG }" "$(date +%T)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

wait_until() {
  local timeout=$1 what=$2; shift 2
  local started; started=$(now)
  until "$@" >/dev/null 2>&1; do
    awk -v s="$started" -v t="$timeout" -v n="$(now)" 'BEGIN { exit !(n - s >= t) }' \
      && fail "timed out after ${timeout}s waiting for: $what"
    sleep 0.2
  done
  log "ok: $what ($(since "$started") s)"
}

free_port() { python3 "$REPO/tests/lib/free-port.py" ${PORT_LEDGER:+"$PORT_LEDGER"}; }

need() {
  local cmd=$1 pkg=${2:-$1}
  command -v "$cmd" >/dev/null 2>&1 && return 0
  log "installing $pkg"
  local sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null \
    || { "${sudo[@]}" apt-get update -qq >/dev/null \
         && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null; } \
    || fail "cannot install $pkg"
}

cargo_target_dir() {
  (cd "$REPO" && cargo metadata --format-version 1 --no-deps --locked) \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# The seed's pinned Python stack (bench/seed/requirements.txt) in one venv under the target
# directory, for tests/interop and bench alike; reinstalled only when the requirements change.
seed_venv() {
  local venv requirements=$REPO/bench/seed/requirements.txt
  venv=$(cargo_target_dir)/seed-venv
  if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
    log "installing the seed's Python stack into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2 \
      || fail "pip install failed"
    cp "$requirements" "$venv/requirements.txt"
  fi
  echo "$venv"
}
