#!/usr/bin/env bash
# Build netcd's image without network access: the final stage of deploy/Containerfile (FROM
# scratch, the binary and its shared libraries laid out by rootfs.sh) from a netcd built on this
# machine. What CI builds and starts (runtime/tests/image_needs_root.rs).
#
# Usage: deploy/image/build-local.sh NETCD_BINARY IMAGE_TAG
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary=$1
tag=$2
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
"$here/rootfs.sh" "$binary" "$context/rootfs"
cat >"$context/Containerfile" <<'CONTAINERFILE'
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/usr/bin/netcd"]
CMD ["run", "--kubernetes"]
CONTAINERFILE
podman build --quiet --network none -f "$context/Containerfile" -t "$tag" "$context"
