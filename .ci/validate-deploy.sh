#!/usr/bin/env bash
# Strict schema validation of the manifests that run netcd (deploy/), and of the policy
# ConfigMap `netc build --emit configmap` writes, with kubernetes-validate --strict (unknown
# fields are errors) against Kubernetes 1.33 and 1.37 (as .ci/validate-examples.sh). The
# kustomization must list exactly the manifests of deploy/. A broken DaemonSet must be refused
# first, so that a validator that passes everything cannot make this step green.
#
# The netc binary: $NETC if set, else target/debug/netc built here.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a versions <<<"${NETC_VALIDATE_K8S_VERSIONS:-1.33.0 1.37.0}"
command -v kubernetes-validate >/dev/null 2>&1 ||
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# validate FILE...: every object passes for every version (a WARN, e.g. no schema for a kind, fails).
validate() {
  local version out status failed=0
  for version in "${versions[@]}"; do
    status=0
    out=$(kubernetes-validate --strict -k "$version" "$@" 2>&1) || status=$?
    if [ "$status" != 0 ] || grep -q "^WARN\|^ERROR" <<<"$out"; then
      echo "$out" | grep -v "^INFO" >&2 || true
      failed=1
    fi
  done
  return "$failed"
}

sed 's/^  template:/  templat:/' deploy/daemonset.yaml >"$tmp/broken.yaml"
if validate "$tmp/broken.yaml" 2>/dev/null; then
  echo "validate-deploy: the validator accepted a DaemonSet with an unknown field; refusing to trust it" >&2
  exit 1
fi

if [ -n "${NETC:-}" ]; then netc=$NETC; else
  cargo build --quiet -p netc --bin netc
  netc="${CARGO_TARGET_DIR:-target}/debug/netc"
fi
"$netc" build --emit configmap -o "$tmp/netc-ir.yaml" examples/seed/allow-frontend.np

python3 - <<'PY'
import os, yaml
with open("deploy/kustomization.yaml") as f:
    k = yaml.safe_load(f)
assert k["kind"] == "Kustomization", k
manifests = sorted(n for n in os.listdir("deploy") if n.endswith(".yaml") and n != "kustomization.yaml")
assert sorted(k["resources"]) == manifests, (k["resources"], manifests)
PY

mapfile -t manifests < <(find deploy -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml | LC_ALL=C sort)
validate "${manifests[@]}" "$tmp/netc-ir.yaml"
echo "validate-deploy: ${manifests[*]} and netc build --emit configmap valid" \
  "(kubernetes-validate --strict, Kubernetes ${versions[*]})"
