#!/usr/bin/env bash
# Installs a pinned Go tool into a cache outside the repository and prints
# the path of its binary. Usage: hack/tools.sh controller-gen|golangci-lint
set -euo pipefail
cache=${XDG_CACHE_HOME:-$HOME/.cache}/beacon/tools
case "$1" in
  controller-gen) pkg=sigs.k8s.io/controller-tools/cmd/controller-gen; ver=v0.21.0 ;;
  golangci-lint)  pkg=github.com/golangci/golangci-lint/v2/cmd/golangci-lint; ver=v2.15.0 ;;
  *) echo "unknown tool $1" >&2; exit 2 ;;
esac
dir=$cache/$1-$ver
if [ ! -x "$dir/$1" ]; then
  echo "tools: installing $1 $ver" >&2
  GOBIN=$dir GOWORK=off GOFLAGS= go install "$pkg@$ver" >&2
fi
echo "$dir/$1"
