#!/usr/bin/env bash
# Builds every example in examples/ with netc into a temporary directory and validates every
# generated NetworkPolicy with an independent, strict schema validator: kubernetes-validate (PyPI),
# which checks objects against the Kubernetes OpenAPI schemas with --strict (unknown fields are
# errors).
#
# Kubernetes versions: 1.33, the oldest netc supports (k8s-openapi's v1_33 feature, see
# Cargo.toml), and 1.37, the newest kubernetes-validate ships schemas for. Override with
# NETC_VALIDATE_K8S_VERSIONS="1.33.0 1.37.0".
#
# The netc binary: $NETC if set, else target/debug/netc built here (`cargo build -p netc`).
# kubernetes-validate is installed with pip if missing (.ci/install-deps does the same).
#
# Usage:
#   .ci/validate-examples.sh                 build and validate every example
#   .ci/validate-examples.sh FILE.yaml...    validate these files only (each must hold
#                                            NetworkPolicy objects); exit 1 if any is invalid
#
# Before the examples, the script checks that the validator rejects a broken object, so that a
# validator that passes everything (a changed flag, a missing schema) cannot make this step green.
set -euo pipefail
cd "$(dirname "$0")/.."

read -r -a versions <<<"${NETC_VALIDATE_K8S_VERSIONS:-1.33.0 1.37.0}"

if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "validate-examples: installing kubernetes-validate (pip)"
  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# validate FILE... : every file must hold only objects that pass strict validation against every
# version. kubernetes-validate only warns (exit 0) when it has no schema for an object (a wrong
# apiVersion or kind), so any WARN line fails too, and every object must be reported as passed.
validate() {
  local expected=$#
  local version out status passed failed=0
  for version in "${versions[@]}"; do
    status=0
    out=$(kubernetes-validate --strict -k "$version" "$@" 2>&1) || status=$?
    passed=$(grep -c " passed for resource networkpolicy/" <<<"$out" || true)
    if [ "$status" != 0 ] || grep -q "^WARN\|^ERROR" <<<"$out" || [ "$passed" -lt "$expected" ]; then
      echo "$out" | grep -v "^INFO" >&2 || true
      echo "validate-examples: FAILED against Kubernetes $version ($passed of $expected files passed)" >&2
      failed=1
    fi
  done
  return "$failed"
}

if [ $# -gt 0 ]; then
  validate "$@"
  echo "validate-examples: $# file(s) valid against Kubernetes ${versions[*]}"
  exit 0
fi

# 1. The validator must reject a broken object: an unknown field (`frm`), and an apiVersion it has
#    no schema for.
cat >"$tmp/broken-field.yaml" <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: broken, namespace: default}
spec:
  podSelector: {}
  ingress:
  - frm: [{podSelector: {}}]
EOF
cat >"$tmp/broken-version.yaml" <<'EOF'
apiVersion: networking.k8s.io/v2
kind: NetworkPolicy
metadata: {name: broken, namespace: default}
spec:
  podSelector: {}
EOF
for broken in "$tmp"/broken-*.yaml; do
  if validate "$broken" 2>/dev/null; then
    echo "validate-examples: the validator accepted a broken object ($(basename "$broken")); refusing to trust it" >&2
    exit 1
  fi
done
rm -f "$tmp"/broken-*.yaml

# 2. Build every example, one output directory each (seed examples name their policies alike).
if [ -n "${NETC:-}" ]; then
  netc=$NETC
else
  cargo build --quiet -p netc --bin netc
  netc="${CARGO_TARGET_DIR:-target}/debug/netc"
fi
mapfile -t examples < <(find examples -name '*.np' | LC_ALL=C sort)
if [ ${#examples[@]} = 0 ]; then
  echo "validate-examples: no examples found" >&2
  exit 1
fi
files=()
for example in "${examples[@]}"; do
  out="$tmp/${example%.np}"
  "$netc" build --color never -o "$out" "$example" 2>"$tmp/stderr" || {
    cat "$tmp/stderr" >&2
    echo "validate-examples: netc build failed for $example" >&2
    exit 1
  }
  mapfile -t generated < <(find "$out" -name '*.yaml' ! -name kustomization.yaml | LC_ALL=C sort)
  if [ ${#generated[@]} = 0 ]; then
    echo "validate-examples: $example produced no NetworkPolicy" >&2
    exit 1
  fi
  # The kustomization lists exactly the generated files.
  python3 - "$out" <<'EOF'
import os, sys, yaml
out = sys.argv[1]
with open(os.path.join(out, "kustomization.yaml")) as f:
    k = yaml.safe_load(f)
files = sorted(n for n in os.listdir(out) if n.endswith(".yaml") and n != "kustomization.yaml")
assert k["kind"] == "Kustomization", k
assert k["resources"] == files, (k["resources"], files)
EOF
  files+=("${generated[@]}")
done

# 3. Validate them all.
validate "${files[@]}"
echo "validate-examples: ${#files[@]} NetworkPolicy objects from ${#examples[@]} examples valid" \
  "(kubernetes-validate $(kubernetes-validate --version), --strict, Kubernetes ${versions[*]})"
