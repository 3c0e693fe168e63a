#!/usr/bin/env bash
# image-local.sh TOOL IMAGE: builds Beacon's image without pulling anything
# (see Dockerfile.local): static binaries from this checkout, on a base
# image made here from local files.
set -euo pipefail
tool=$1 image=$2
cd "$(dirname "$0")/.."
base=localhost/beacon/static-base:1

if ! "$tool" image exists "$base" 2>/dev/null && ! "$tool" image inspect "$base" >/dev/null 2>&1; then
  d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
  mkdir -p "$d/etc/ssl/certs" "$d/tmp"; chmod 1777 "$d/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$d/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$d/etc/group"
  cp /etc/ssl/certs/ca-certificates.crt "$d/etc/ssl/certs/"
  tar -C "$d" --numeric-owner --owner=0 --group=0 -c . | "$tool" import - "$base" >/dev/null
fi

v=github.com/beaconlb/beacon/internal/version
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
commit=$(git rev-parse HEAD 2>/dev/null || true)
rm -rf bin/image
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X $v.Version=$version -X $v.Commit=$commit" \
  -o bin/image/ ./cmd/beacon-controller ./cmd/beacon-speaker
"$tool" build -f Dockerfile.local -t "$image" .
