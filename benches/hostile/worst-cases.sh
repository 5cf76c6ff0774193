#!/usr/bin/env bash
# The worst cases of issue 8 (hostile input), each beside a baseline measured in the same run:
# wall time and peak memory (resident) of the release `netc` on generated inputs. Usage:
#   cargo build --release -p netc --bin netc && benches/hostile/worst-cases.sh [N] [TARGETS] [PODS]
# N (default 20000) is the length of the long lists (sources of one arrow, peers of one imported
# rule); TARGETS (default 600000) the targets on one line; PODS (default 2000) the pods of the
# matrix. The defaults are the issue's sizes; figures are quoted in docs/performance.md.
# Each case is stopped after NETC_BENCH_TIMEOUT seconds (default 300; exit 124, said so).
# Needs python3 and GNU time (/usr/bin/time); the 5 GiB file is sparse (no disk used).
set -euo pipefail
netc="$(realpath "${NETC:-$(dirname "$0")/../../target/release/netc}")"
n="${1:-20000}"
targets="${2:-600000}"
pods="${3:-2000}"
limit="${NETC_BENCH_TIMEOUT:-300}" # seconds per case
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
measure() { # label, command...
  local label=$1; shift
  local code=0
  /usr/bin/time -f "%e s %M KB" -o time.txt timeout "$limit" "$@" >/dev/null 2>err.txt || code=$?
  sed -i "/exited with/d" time.txt
  if [ "$code" = 124 ]; then echo "did not finish in $limit s" >>err.txt; fi
  printf '%-56s %-22s exit %s  %s\n' "$label" "$(cat time.txt)" "$code" "$(grep -m1 -E 'error|warning|did not finish' err.txt | cut -c1-70 || true)"
}
python3 - "$n" "$targets" "$pods" <<'PY'
import sys
n, targets, pods = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
open("one-arrow.np", "w").write(", ".join(f"w{i}" for i in range(n)) + " -> backend:80\n")
open("many-arrows.np", "w").write("".join(f"w{i} -> backend:80\n" for i in range(n)))
open("one-line-targets.np", "w").write("frontend -> " + ", ".join(f"t{i}:80" for i in range(targets)) + "\n")
open("many-targets.np", "w").write("".join(f"frontend -> t{i}:80\n" for i in range(targets)))
peers = "".join(f"    - podSelector: {{matchLabels: {{app: p{i}}}}}\n" for i in range(n))
head = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: big, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: db}}\n"
open("import-peers.yaml", "w").write(head + "  ingress:\n  - from:\n" + peers)
open("import-rules.yaml", "w").write(head + "  ingress:\n" + "".join(f"  - from: [{{podSelector: {{matchLabels: {{app: p{i}}}}}}}]\n" for i in range(n)))
open("deep.yaml", "w").write("kind: NetworkPolicy\nspec: " + "{a: " * 100000 + "x" + "}" * 100000 + "\n")
open("wide.yaml", "w").write("kind: NetworkPolicy\nspec: [" + "{a: 1}, " * 100000 + "]\n")
open("small.np", "w").write("frontend -> backend:80\n")
open("comments.np", "w").write("frontend -> backend:80\n" + "# a comment line\n" * 200000)
# The matrix: PODS pods in 50 namespaces, each namespace guarded, its pods reaching their
# neighbours and the next namespace's first workload.
spaces = 50
per = max(1, pods // spaces)
program, cluster = [], ["apiVersion: v1\nkind: List\nitems:\n"]
for s in range(spaces):
    ns = f"ns{s}"
    program.append(f"namespace {ns} {{\n  default deny ingress\n")
    for k in range(10):
        program.append(f"  w{k} -> w{(k + 1) % 10}:8080\n")
    program.append(f"  w0 -> ns{(s + 1) % spaces}/w0:80\n}}\n")
    cluster.append(f"- apiVersion: v1\n  kind: Namespace\n  metadata: {{name: {ns}, labels: {{kubernetes.io/metadata.name: {ns}}}}}\n")
    for p in range(per):
        ip = f"10.{s}.{p // 250}.{p % 250 + 1}"
        cluster.append(f"- apiVersion: v1\n  kind: Pod\n  metadata: {{name: p{p}, namespace: {ns}, labels: {{app: w{p % 10}}}}}\n  status: {{podIP: {ip}, podIPs: [{{ip: {ip}}}]}}\n")
open("matrix.np", "w").write("".join(program))
open("cluster.yaml", "w").write("".join(cluster))
PY
truncate -s 5G five-gib.np
echo "netc: $netc, N=$n, TARGETS=$targets, PODS=$pods; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
measure "check: one arrow, N sources" "$netc" check one-arrow.np
measure "  baseline: N arrows, one source each" "$netc" check many-arrows.np
measure "check: one arrow, TARGETS targets on one line" "$netc" check one-line-targets.np
measure "  baseline: TARGETS arrows, one target each" "$netc" check many-targets.np
measure "import: one rule with N peers" "$netc" import import-peers.yaml
measure "  baseline: N rules with one peer each" "$netc" import import-rules.yaml
measure "import: 100k nested levels (500 KB)" "$netc" import deep.yaml
measure "  baseline: 100k flow maps side by side" "$netc" import wide.yaml
measure "fmt --check: 200k comment lines" "$netc" fmt --check comments.np
measure "  baseline: check of the same file" "$netc" check comments.np
measure "matrix --format json: PODS pods" "$netc" matrix matrix.np --cluster cluster.yaml --format json
measure "matrix --format csv: PODS pods" "$netc" matrix matrix.np --cluster cluster.yaml --format csv
measure "  baseline: check of the same program" "$netc" check matrix.np
measure "check: a 5 GiB file (bound 256 MiB)" "$netc" check five-gib.np
measure "check /dev/zero (bound 256 MiB)" "$netc" check /dev/zero
measure "  baseline: check of a 1-line file" "$netc" check small.np
