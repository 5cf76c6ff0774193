#!/usr/bin/env bash
# Snapshot hygiene, after the tests ran: no pending snapshots, none outside snapshots/, and none
# that no test asserted any more.
#
# Usage:
#   refs=$(mktemp)
#   INSTA_UPDATE=no INSTA_SNAPSHOT_REFERENCES_FILE="$refs" cargo test --workspace
#   .ci/check-snapshots.sh "$refs"
#
# insta (src/env.rs, memoize_snapshot_file) appends the path of every snapshot file an assertion
# uses to the file named by INSTA_SNAPSHOT_REFERENCES_FILE, one per line, whether the assertion
# passed or not. Paths may be absolute or relative, and may contain `..` (a settings helper that
# joins CARGO_MANIFEST_DIR with `../snapshots`); both are normalised here.
#
# Fails (exit 1), listing the files, when
#   - a `*.snap.new` or `*.pending-snap` file exists anywhere in the repository (an unreviewed
#     snapshot: review it, then accept or delete it);
#   - a `*.snap` file lives outside snapshots/ (a test without the shared insta settings);
#   - a snapshots/*.snap file is not in the references file (its test was renamed or removed:
#     delete the file, or the test no longer asserts it).
# Exit 2: usage error (no references file, or it is empty: the tests did not run with the
# variable set).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd -P)
snapshots="$repo/snapshots"

if [[ $# -ne 1 ]]; then
    echo "usage: $0 REFERENCES_FILE (written by INSTA_SNAPSHOT_REFERENCES_FILE=REFERENCES_FILE cargo test)" >&2
    exit 2
fi
refs=$1
if [[ ! -s $refs ]]; then
    echo "error: $refs is missing or empty: run the tests with INSTA_SNAPSHOT_REFERENCES_FILE=$refs first" >&2
    exit 2
fi

failed=0
report() { # title, newline-separated absolute paths (shown relative to the repository)
    local title=$1 list=$2
    if [[ -n $list ]]; then
        echo "error: $title:"
        while IFS= read -r path; do
            echo "  ${path#"$repo"/}"
        done <<<"$list"
        failed=1
    fi
}

# Files under the repository except build output and git's own files.
find_in_repo() {
    find "$repo" \( -path "$repo/target" -o -path "$repo/.git" \) -prune -o -type f \( "$@" \) -print | sort
}

report "pending snapshots (review each: accept it with INSTA_UPDATE=always or cargo insta review, or delete it)" \
    "$(find_in_repo -name '*.snap.new' -o -name '*.pending-snap')"

report "snapshots outside snapshots/ (give the test the shared insta settings, see compiler/tests/common)" \
    "$(find_in_repo -name '*.snap' | { grep -v "^$snapshots/" || true; })"

# Referenced snapshots as canonical absolute paths: relative ones are taken from the repository
# root (where cargo runs the tests from); `..`, `.` and symlinks are resolved.
referenced=$(
    while IFS= read -r path || [[ -n $path ]]; do
        path=${path%$'\r'}
        [[ -z $path ]] && continue
        [[ $path != /* ]] && path="$repo/$path"
        realpath -m -- "$path"
    done <"$refs" | sort -u
)
present=$(find "$snapshots" -maxdepth 1 -type f -name '*.snap' -print0 | xargs -0 -r realpath -m -- | sort -u)

report "snapshots no test asserted (delete them, or restore their test)" \
    "$(comm -23 <(printf '%s\n' "$present" | sed '/^$/d') <(printf '%s\n' "$referenced" | sed '/^$/d'))"

if [[ $failed -ne 0 ]]; then
    exit 1
fi
count=$(printf '%s\n' "$present" | sed '/^$/d' | wc -l)
echo "snapshots: $count in snapshots/, all referenced by a test, none pending"
