#!/usr/bin/env bash
# Builds rclone v1.76.0 from the Go module proxy once (about 4 minutes
# cold), cached under $DAVGW_TOOLS_CACHE/rclone-<version>/ like the other
# tools, and prints the export line for DAVGW_RCLONE176 (eval it). Used by
# .ci/tools.sh (so .ci/run has it for tests/mount_test.go), .ci/bench and
# .ci/load.
set -euo pipefail
RCLONE_VERSION=v1.76.0
cache=${DAVGW_TOOLS_CACHE:-$HOME/.cache/davgw-tools}
dir="$cache/rclone-$RCLONE_VERSION"
if [ ! -x "$dir/bin/rclone" ]; then
  echo "building rclone $RCLONE_VERSION (about 4 minutes cold)" >&2
  mkdir -p "$dir/bin"
  GOBIN="$dir/bin.tmp" go install "github.com/rclone/rclone@$RCLONE_VERSION" >&2
  mv "$dir/bin.tmp/rclone" "$dir/bin/rclone" && rmdir "$dir/bin.tmp"
fi
echo "export DAVGW_RCLONE176=$dir/bin/rclone"
