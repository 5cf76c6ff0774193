#!/usr/bin/env bash
# The worst cases of issue 8 (hostile input), each beside a baseline measured in the same run:
# time and peak memory of the release `netc` on generated inputs. Usage:
#   cargo build --release -p netc --bin netc && benches/hostile/worst-cases.sh [N]
# N (default 20000) is the list length; figures are quoted in docs/performance.md.
set -euo pipefail
netc="$(realpath "${NETC:-$(dirname "$0")/../../target/release/netc}")"
n="${1:-20000}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e s %M KB" -o time.txt "$@" >/dev/null 2>err.txt || true; sed -i "/exited with/d" time.txt
  printf '%-52s %s   (%s)\n' "$label" "$(cat time.txt)" "$(tail -1 err.txt | cut -c1-60)"
}
python3 - "$n" <<'PY'
import sys
n = int(sys.argv[1])
open("one-arrow.np", "w").write(", ".join(f"w{i}" for i in range(n)) + " -> backend:80\n")
open("many-arrows.np", "w").write("".join(f"w{i} -> backend:80\n" for i in range(n)))
open("one-line-targets.np", "w").write("frontend -> " + ", ".join(f"t{i}:80" for i in range(n)) + "\n")
open("many-targets.np", "w").write("".join(f"frontend -> t{i}:80\n" for i in range(n)))
peers = "".join(f"    - podSelector: {{matchLabels: {{app: p{i}}}}}\n" for i in range(n // 10))
head = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: big, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: db}}\n"
open("import-peers.yaml", "w").write(head + "  ingress:\n  - from:\n" + peers)
open("import-rules.yaml", "w").write(head + "  ingress:\n" + "".join(f"  - from: [{{podSelector: {{matchLabels: {{app: p{i}}}}}}}]\n" for i in range(n // 10)))
open("deep.yaml", "w").write("kind: NetworkPolicy\nspec: " + "{a: " * 100000 + "x" + "}" * 100000 + "\n")
open("wide.yaml", "w").write("kind: NetworkPolicy\nspec: [" + "{a: 1}, " * 100000 + "]\n")
PY
echo "netc: $netc, N=$n"
measure "check: one arrow, N sources" "$netc" check one-arrow.np
measure "  baseline: N arrows, one source each" "$netc" check many-arrows.np
measure "check: one arrow, N targets on one line" "$netc" check one-line-targets.np
measure "  baseline: N arrows, one target each" "$netc" check many-targets.np
measure "import: one rule with N/10 peers" "$netc" import import-peers.yaml
measure "  baseline: N/10 rules with one peer each" "$netc" import import-rules.yaml
measure "import: 100k nested levels (500 KB)" "$netc" import deep.yaml
measure "  baseline: 100k flow maps side by side" "$netc" import wide.yaml
measure "check /dev/zero (NETC_MAX_INPUT_BYTES=256 MiB)" "$netc" check /dev/zero
