#!/usr/bin/env bash
# Fails when code is unformatted, vet or lint complain, or generated files drift.
set -euo pipefail
cd "$(dirname "$0")/.."

bad=$(gofmt -l $(git ls-files '*.go'; git ls-files --others --exclude-standard '*.go'))
if [ -n "$bad" ]; then echo "gofmt needed on:"; echo "$bad"; exit 1; fi

go vet ./...

lint=$(hack/tools.sh golangci-lint)
"$lint" run --allow-serial-runners ./...

# Regenerate in place and compare with a snapshot of what was committed.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r config "$tmp/config"; cp -r charts/beacon/crds "$tmp/crds"; cp docs/reference.md "$tmp/reference.md"
make -s generate >/dev/null
if ! diff -r "$tmp/config" config >/dev/null || ! diff -r "$tmp/crds" charts/beacon/crds >/dev/null \
   || ! diff "$tmp/reference.md" docs/reference.md >/dev/null; then
  echo "generated files are out of date: run 'make generate' and commit the result"
  diff -ru "$tmp/crds" charts/beacon/crds | head -40 || true
  exit 1
fi
echo "verify: ok"
