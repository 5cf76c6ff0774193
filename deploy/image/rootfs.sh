#!/usr/bin/env bash
# Lay out the root file system of netcd's FROM-scratch image: the binary at /usr/bin/netcd and
# every shared library it links (as `ldd` resolves them, dynamic loader included) at the same
# path, and the CA certificates, so the image needs no base. Used by deploy/Containerfile and deploy/image/build-local.sh.
#
# Usage: deploy/image/rootfs.sh BINARY ROOTFS_DIR
set -euo pipefail
binary=$1
root=$2
[ -x "$binary" ] || { echo "rootfs.sh: $binary is not an executable" >&2; exit 1; }
# /proc, /sys, /dev: mount points (a container runtime mounts them; the image test does too;
# netcd reads /dev/urandom for its conntrack hash seed).
mkdir -p "$root/usr/bin" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
install -m 0755 "$binary" "$root/usr/bin/netcd"
# `ldd` prints `name => /path (addr)`, or `/path (addr)` for the loader; vdso has no file.
ldd "$binary" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | sort -u |
  while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
# CA certificates: kube's rustls client loads the system's roots (beside the API server's CA of
# the service account) and refuses to start without any.
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "rootfs.sh: $ca missing: install ca-certificates" >&2; exit 1; }
mkdir -p "$root/etc/ssl/certs"
cp -L "$ca" "$root$ca"
echo "rootfs.sh: $root: netcd and $(find "$root" -name '*.so*' | wc -l) shared libraries"
