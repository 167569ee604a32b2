#!/usr/bin/env bash
# Installs (or reuses) every pinned tool the test suite needs and prints the
# environment lines that point the tests at them. Built binaries are cached
# under $DAVGW_TOOLS_CACHE/<tool>-<version>/, so later runs on the same machine
# reuse them; a fresh machine builds them from the Go module proxy.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${DAVGW_TOOLS_CACHE:-$HOME/.cache/davgw-tools}
mkdir -p "$cache"

VERSITYGW_VERSION=v1.8.0
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6
STATICCHECK_VERSION=v0.8.2

log() { echo "tools: $*" >&2; }

# go_install NAME VERSION PKG: go install PKG@VERSION into the cache.
go_install() {
  local dir="$cache/$1-$2"
  if [ ! -x "$dir/bin/$1" ]; then
    log "building $1 $2"
    mkdir -p "$dir/bin"
    GOBIN="$dir/bin.tmp" go install "$3@$2"
    mv "$dir/bin.tmp/$1" "$dir/bin/$1" && rmdir "$dir/bin.tmp"
  fi
  echo "$dir/bin/$1"
}

versitygw=$(go_install versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw)
staticcheck=$(go_install staticcheck "$STATICCHECK_VERSION" honnef.co/go/tools/cmd/staticcheck)

# SeaweedFS refuses go install (replace directives): build it from the pinned
# tools module in .ci/tools/seaweedfs.
weed_dir="$cache/weed-$SEAWEEDFS_VERSION"
if [ ! -x "$weed_dir/bin/weed" ]; then
  log "building weed $SEAWEEDFS_VERSION (about 4 minutes cold)"
  mkdir -p "$weed_dir/bin"
  (cd "$here/tools/seaweedfs" && go build -o "$weed_dir/bin/weed.tmp" github.com/seaweedfs/seaweedfs/weed)
  mv "$weed_dir/bin/weed.tmp" "$weed_dir/bin/weed"
fi
weed="$weed_dir/bin/weed"

# Debian packages: litmus (WebDAV conformance), curl.
need_apt=()
command -v litmus >/dev/null 2>&1 || need_apt+=(litmus)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need_apt[@]}" >&2
fi

cat <<ENV
export DAVGW_VERSITYGW=$versitygw
export DAVGW_WEED=$weed
export DAVGW_STATICCHECK=$staticcheck
export DAVGW_LITMUS=$(command -v litmus)
ENV
