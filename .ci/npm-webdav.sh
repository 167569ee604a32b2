#!/usr/bin/env bash
# Installs (or reuses) the npm `webdav` client that tests/npmwebdav_test.go
# drives, from the npm registry with the exact versions of
# .ci/tools/npm-webdav/package-lock.json, into
# $DAVGW_TOOLS_CACHE/npm-webdav-<version>/ (npm ci, no install scripts), and
# prints the export line for DAVGW_NPM_WEBDAV (eval it; .ci/tools.sh does).
# A warm cache is reused as long as its lock file matches the repository's.
# Needs node and npm (.ci/tools.sh installs Debian's when they are absent).
set -euo pipefail
src=$(cd "$(dirname "$0")/tools/npm-webdav" && pwd)
cache=${DAVGW_TOOLS_CACHE:-$HOME/.cache/davgw-tools}
version=$(node -p 'require(process.argv[1]).dependencies.webdav' "$src/package.json")
dir="$cache/npm-webdav-$version"
if [ ! -f "$dir/node_modules/webdav/package.json" ] || ! cmp -s "$src/package-lock.json" "$dir/package-lock.json"; then
  echo "tools: npm ci webdav $version" >&2
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  cp "$src/package.json" "$src/package-lock.json" "$dir.tmp/"
  (cd "$dir.tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
fi
echo "export DAVGW_NPM_WEBDAV=$dir"
