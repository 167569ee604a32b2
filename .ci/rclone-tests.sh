#!/usr/bin/env bash
# Builds the test binaries of rclone v1.76.0's own integration suites once
# (backend/webdav, fs/sync, fs/operations; one to a few minutes cold),
# cached under $DAVGW_TOOLS_CACHE/rclone-tests-<version>/ like the other
# tools, and prints the export line for DAVGW_RCLONE_TESTS (eval it;
# .ci/tools.sh does). tests/rclonesuite_test.go runs them with -remote
# against davgw. The source comes from the Go module proxy (go mod
# download); the module cache copy is read-only, so the build happens in a
# writable copy that is removed afterwards.
set -euo pipefail
RCLONE_VERSION=v1.76.0
cache=${DAVGW_TOOLS_CACHE:-$HOME/.cache/davgw-tools}
dir="$cache/rclone-tests-$RCLONE_VERSION"
# Test binary name -> package, in the rclone module.
pkgs=(webdav.test:./backend/webdav sync.test:./fs/sync operations.test:./fs/operations)
missing=0
for p in "${pkgs[@]}"; do
  [ -x "$dir/bin/${p%%:*}" ] || missing=1
done
if [ "$missing" -eq 1 ]; then
  echo "building rclone $RCLONE_VERSION test binaries (a few minutes cold)" >&2
  src=$(go mod download -json "github.com/rclone/rclone@$RCLONE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$src" ] || { echo "go mod download gave no source dir for rclone $RCLONE_VERSION" >&2; exit 1; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  mkdir -p "$dir/bin.tmp"
  for p in "${pkgs[@]}"; do
    (cd "$work" && go test -c -o "$dir/bin.tmp/${p%%:*}" "${p#*:}") >&2
  done
  mkdir -p "$dir/bin"
  for p in "${pkgs[@]}"; do
    mv "$dir/bin.tmp/${p%%:*}" "$dir/bin/${p%%:*}"
  done
  rmdir "$dir/bin.tmp"
fi
echo "export DAVGW_RCLONE_TESTS=$dir/bin"
