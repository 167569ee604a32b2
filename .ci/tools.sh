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
HYDRA_VERSION=v2.3.0
EC2_METADATA_MOCK_VERSION=v1.13.0

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
# The EC2 instance metadata service, for the IMDS credential tests.
imds_mock=$(go_install ec2-metadata-mock "$EC2_METADATA_MOCK_VERSION" github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock)

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

# ORY Hydra (the real OpenID Connect provider of tests/hydra_test.go) refuses
# go install too (replace directives): build it from .ci/tools/hydra with
# its SQLite driver (cgo) so that DSN=memory works.
hydra_dir="$cache/hydra-$HYDRA_VERSION"
if [ ! -x "$hydra_dir/bin/hydra" ]; then
  log "building hydra $HYDRA_VERSION (about 80 seconds cold)"
  mkdir -p "$hydra_dir/bin"
  (cd "$here/tools/hydra" && CGO_ENABLED=1 go build -tags sqlite,sqlite_omit_load_extension -o "$hydra_dir/bin/hydra.tmp" github.com/ory/hydra/v2)
  mv "$hydra_dir/bin/hydra.tmp" "$hydra_dir/bin/hydra"
fi
hydra="$hydra_dir/bin/hydra"

# Debian packages: litmus (WebDAV conformance), curl, and headless Chromium
# with its driver for tests/browser_test.go.
need_apt=()
command -v litmus >/dev/null 2>&1 || need_apt+=(litmus)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# Real WebDAV clients of tests/cadaver_test.go and tests/rclone_test.go:
# Debian's cadaver 0.24 and rclone 1.60 (its webdav remote already sends
# X-OC-Mtime and reads oc:checksums with vendor=owncloud).
command -v cadaver >/dev/null 2>&1 || need_apt+=(cadaver)
command -v rclone >/dev/null 2>&1 || need_apt+=(rclone)
# Debian's redis-server for the shared lock store ([locks].store = redis://):
# the tests start their own on a free loopback port.
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# The CA bundle that .ci/image puts in the container image.
[ -s /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
# node and npm for the npm webdav client of tests/npmwebdav_test.go (the
# client itself comes from the npm registry: .ci/npm-webdav.sh below).
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# Linux mounts of tests/mount_test.go: fuse3 gives rclone mount its
# fusermount3; davfs2 is the kernel-side WebDAV file system (mount.davfs).
command -v fusermount3 >/dev/null 2>&1 || need_apt+=(fuse3)
command -v mount.davfs >/dev/null 2>&1 || need_apt+=(davfs2)
# The reverse proxies of tests/deploy_proxy_test.go, run with the shipped
# deploy/nginx/ and deploy/caddy/ files, and systemd-analyze for
# deploy/systemd/ (tests/deploy_systemd_test.go).
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || need_apt+=(nginx)
command -v caddy >/dev/null 2>&1 || need_apt+=(caddy)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Installing nginx or caddy must not start them as system services (they
  # would listen on every address): policy-rc.d 101 tells the packages not
  # to. The machine image has one; make one for the install if not.
  made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get update -qq >&2
  apt-get install -y -qq "${need_apt[@]}" >&2
  [ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

# The npm webdav client, pinned by .ci/tools/npm-webdav/package-lock.json.
npm_webdav=$(bash "$here/npm-webdav.sh")
# rclone v1.76.0 built from the Go module proxy (tests/mount_test.go's
# rclone mount; .ci/bench and .ci/load use it too).
eval "$(bash "$here/rclone176.sh")"
# The test binaries of rclone v1.76.0's own integration suites
# (tests/rclonesuite_test.go), built from the Go module proxy.
eval "$(bash "$here/rclone-tests.sh")"

cat <<ENV
$npm_webdav
export DAVGW_NODE=$(command -v node)
export DAVGW_VERSITYGW=$versitygw
export DAVGW_WEED=$weed
export DAVGW_STATICCHECK=$staticcheck
export DAVGW_IMDS_MOCK=$imds_mock
export DAVGW_LITMUS=$(command -v litmus)
export DAVGW_HYDRA=$hydra
export DAVGW_CHROMIUM=$(command -v chromium)
export DAVGW_CADAVER=$(command -v cadaver)
export DAVGW_RCLONE=$(command -v rclone)
export DAVGW_REDIS_SERVER=$(command -v redis-server)
export DAVGW_RCLONE176=$DAVGW_RCLONE176
export DAVGW_RCLONE_TESTS=$DAVGW_RCLONE_TESTS
export DAVGW_FUSERMOUNT3=$(command -v fusermount3)
export DAVGW_MOUNT_DAVFS=$(command -v mount.davfs)
export DAVGW_NGINX=$nginx_bin
export DAVGW_CADDY=$(command -v caddy)
export DAVGW_SYSTEMD_ANALYZE=$(command -v systemd-analyze)
ENV
