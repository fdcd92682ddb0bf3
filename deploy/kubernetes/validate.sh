#!/usr/bin/env bash
# Renders the Kustomize configuration (as shipped, and with each exposure component) and
# validates the result offline against the Kubernetes JSON schemas (kubernetes-validate, strict),
# then checks the rules docs/kubernetes.md promises (probes, limits, non-root, no subPath, …).
# Fails on the first problem. Run from anywhere; CI runs it from .ci/run.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT="$REPO/target/kubernetes"
VERSIONS=(1.30.0 1.37.0)   # the oldest and newest Kubernetes releases we check against
mkdir -p "$OUT"

VENV="$REPO/target/tools-venv"
if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check kubernetes-validate==1.37.0 pyyaml
fi

# Render with real kustomize when the machine has it (kustomize, or kubectl's built-in one);
# otherwise with render.py, which implements the subset of Kustomize these files use.
render() {
  local dir=$1
  if command -v kustomize >/dev/null 2>&1; then kustomize build "$dir"
  elif command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then kubectl kustomize "$dir"
  else "$VENV/bin/python" "$HERE/render.py" "$dir"
  fi
}

variant() { # variant NAME [COMPONENT]: renders the root kustomization, optionally with a component
  local name=$1 component=${2:-}
  local dir="$REPO"
  if [ -n "$component" ]; then
    # A throw-away kustomization outside the repository (one inside it would contain the root).
    # Kustomize wants relative paths.
    dir=$(mktemp -d)
    local rel; rel=$(python3 -c 'import os,sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$REPO" "$dir")
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: bookshop\nresources:\n  - %s\ncomponents:\n  - %s\n' \
      "$rel" "$rel/deploy/kubernetes/components/$component" > "$dir/kustomization.yaml"
  fi
  render "$dir" > "$OUT/$name.yaml"
  [ -n "$component" ] && rm -rf "$dir"
  for version in "${VERSIONS[@]}"; do
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$OUT/$name.yaml"
  done
  "$VENV/bin/python" "$HERE/policy.py" "$OUT/$name.yaml" "$REPO/catalog.toml"
  echo "ok: $name ($(grep -c '^kind:' "$OUT/$name.yaml") resources, Kubernetes ${VERSIONS[*]})"
}

variant default
variant loadbalancer loadbalancer
variant ingress ingress
variant tracing tracing
