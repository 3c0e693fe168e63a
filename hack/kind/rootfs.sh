#!/usr/bin/env bash
# rootfs.sh NAME PACKAGES...: a Debian root filesystem made with debootstrap
# (minbase plus PACKAGES), cached as a tarball keyed by suite and package
# list. Prints the tarball's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
name=$1; shift
pkgs=$(printf '%s\n' "$@" | sort -u | paste -sd, -)
key=$(printf '%s %s' "$DEBIAN_SUITE" "$pkgs" | sha256sum | cut -c1-12)
out=$KIND_CACHE/rootfs/$DEBIAN_SUITE-$name-$key.tar
if [ ! -f "$out" ]; then
  mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)}
  mirror=${mirror:-http://deb.debian.org/debian}
  dir=$(mktemp -d "$KIND_CACHE/rootfs/.build-$name.XXXX")
  trap 'rm -rf "$dir"' EXIT
  echo "rootfs: debootstrap $DEBIAN_SUITE $name (+$pkgs) from $mirror" >&2
  debootstrap --variant=minbase ${pkgs:+--include="$pkgs"} "$DEBIAN_SUITE" "$dir/root" "$mirror" >"$dir/log" 2>&1 ||
    { tail -n 20 "$dir/log" >&2; exit 1; }
  # Smaller images: no apt lists, docs or caches; a fresh machine-id per boot.
  rm -rf "$dir/root/var/lib/apt/lists/"* "$dir/root/var/cache/apt/"*.bin \
    "$dir/root/var/cache/apt/archives/"*.deb "$dir/root/usr/share/doc" "$dir/root/usr/share/man" \
    "$dir/root/usr/share/locale"
  : >"$dir/root/etc/machine-id"
  tar -C "$dir/root" --numeric-owner -cf "$out.tmp" .
  mv "$out.tmp" "$out"
fi
echo "$out"
