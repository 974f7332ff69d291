#!/usr/bin/env bash
# Runs the blobstore backend test suite (pds/blobstore, TestS3Backend and the migration tests) against SeaweedFS,
# a distributed object store with an S3 gateway, instead of the in-process S3 server of the default test run.
#
#   scripts/s3-seaweedfs.sh            build weed (once, cached), start it on loopback, run the suite, stop it
#   scripts/s3-seaweedfs.sh --build    only build weed
#
# SeaweedFS is built from the Go module proxy: a throwaway wrapper module requires github.com/seaweedfs/seaweedfs and
# copies its go.mod's one `replace` directive (replace directives of a dependency are ignored otherwise). The first
# build takes 10-20 minutes on 2 cores; the binary is cached in $SEAWEEDFS_CACHE (default ~/.cache/pdsgo-seaweedfs).
# Not part of CI. Everything listens on 127.0.0.1 only.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}
CACHE=${SEAWEEDFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pdsgo-seaweedfs}
BIN=$CACHE/weed-$VERSION
BASE_PORT=${SEAWEEDFS_BASE_PORT:-18330} # master, volume, filer, s3 = BASE+0..3 (gRPC = port + 10000)

build() {
  if [ -x "$BIN" ]; then
    return
  fi
  echo "building SeaweedFS $VERSION (10-20 minutes the first time)..." >&2
  local dir=$CACHE/build
  rm -rf "$dir" && mkdir -p "$dir"
  local moddir
  moddir=$(cd "$dir" && go mod download -json "github.com/seaweedfs/seaweedfs@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  {
    echo "module pdsgo.local/seaweedfs-build"
    echo
    echo "go 1.26"
    echo
    grep -E '^replace ' "$moddir/go.mod"
  } >"$dir/go.mod"
  (cd "$dir" && go get "github.com/seaweedfs/seaweedfs/weed@$VERSION" && go build -o "$BIN.tmp" github.com/seaweedfs/seaweedfs/weed)
  mv "$BIN.tmp" "$BIN"
  echo "built $BIN" >&2
}

build
if [ "${1:-}" = "--build" ]; then
  exit 0
fi

DATA=$(mktemp -d)
WEED_PID=
cleanup() {
  if [ -n "$WEED_PID" ]; then
    kill "$WEED_PID" 2>/dev/null || true
    wait "$WEED_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT

ACCESS_KEY=pdsgo-test
SECRET_KEY=pdsgo-test-secret
cat >"$DATA/s3.json" <<EOF
{"identities": [{"name": "pdsgo", "credentials": [{"accessKey": "$ACCESS_KEY", "secretKey": "$SECRET_KEY"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
mkdir -p "$DATA/store"
S3_PORT=$((BASE_PORT + 3))
"$BIN" server -dir="$DATA/store" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port=$BASE_PORT -volume.port=$((BASE_PORT + 1)) -filer -filer.port=$((BASE_PORT + 2)) \
  -s3 -s3.port=$S3_PORT -s3.config="$DATA/s3.json" >"$DATA/weed.log" 2>&1 &
WEED_PID=$!

echo "waiting for the S3 gateway on 127.0.0.1:$S3_PORT..." >&2
for _ in $(seq 1 120); do
  if curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/"; then
    break
  fi
  if ! kill -0 "$WEED_PID" 2>/dev/null; then
    cat "$DATA/weed.log" >&2
    echo "weed exited" >&2
    exit 1
  fi
  sleep 1
done
sleep 2 # the volume server registers with the master shortly after the gateway answers

cd "$ROOT"
PDS_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT \
  PDS_TEST_S3_BUCKET=pdsgo-test-$$ \
  PDS_TEST_S3_REGION=us-east-1 \
  PDS_TEST_S3_ACCESS_KEY_ID=$ACCESS_KEY \
  PDS_TEST_S3_SECRET_ACCESS_KEY=$SECRET_KEY \
  go test ./pds/blobstore/ -run 'TestS3|TestMigrate' -count=1 -v "${@}"
