#!/usr/bin/env bash
# Runs the S3 tests against SeaweedFS, a distributed object store with an S3 gateway, instead of the in-process S3
# server of the default test run: the blob store's backend suite (pds/blobstore, TestS3Backend and the migration
# tests), the backup's round tests on S3 (pds/backup: incremental rounds, upload counts, restore, verify,
# prune), and the backup commands of the real binary: `pds backup now` of a seeded data directory, a second
# round after writes, `pds backup list`, `pds backup verify`, `pds restore`.
#
#   scripts/s3-seaweedfs.sh            build weed (once, cached), start it on loopback, run everything, stop it
#   scripts/s3-seaweedfs.sh --build    only build weed
#   ONLY=blobstore|backup|cli scripts/s3-seaweedfs.sh [go test flags]   one part
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
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -f "$DATA/weed.log" ]; then
    echo "--- the last lines of SeaweedFS's log:" >&2
    tail -n 40 "$DATA/weed.log" >&2
  fi
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
# Every bucket is a SeaweedFS collection with volumes of its own (several per collection): the default 8 volume
# slots run out after a few of the tests' buckets ("No writable volumes and no free volumes left", an S3
# InternalError), so the server gets many small volumes.
S3_PORT=$((BASE_PORT + 3))
"$BIN" server -dir="$DATA/store" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port=$BASE_PORT -volume.port=$((BASE_PORT + 1)) -filer -filer.port=$((BASE_PORT + 2)) \
  -s3 -s3.port=$S3_PORT -s3.config="$DATA/s3.json" \
  -volume.max=400 -master.volumeSizeLimitMB=64 >"$DATA/weed.log" 2>&1 &
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
export PDS_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT \
  PDS_TEST_S3_BUCKET=pdsgo-test-$$ \
  PDS_TEST_S3_REGION=us-east-1 \
  PDS_TEST_S3_ACCESS_KEY_ID=$ACCESS_KEY \
  PDS_TEST_S3_SECRET_ACCESS_KEY=$SECRET_KEY
ONLY=${ONLY:-}

if [ -z "$ONLY" ] || [ "$ONLY" = blobstore ]; then
  go test ./pds/blobstore/ -run 'TestS3|TestMigrate' -count=1 -v "${@}"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = backup ]; then
  go test ./pds/backup/ -run 'TestIncrementalRoundsVerifyAndRestore/s3|TestRoundCopiesOnlyWhatChanged/s3' -count=1 -v "${@}"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = cli ]; then
  # The operator's commands on a seeded data directory (pdsbench seed: 200 accounts with signed genesis commits
  # and their firehose events), backed up to a bucket of SeaweedFS.
  work=$DATA/cli
  mkdir -p "$work/bin"
  go build -o "$work/bin/pds" ./cmd/pds
  go build -o "$work/bin/pdsbench" ./cmd/pdsbench
  PDS_HOSTNAME=localhost "$work/bin/pdsbench" seed -q -data "$work/data" -accounts 200 >&2
  bucket=pdsgo-test-$$-cli
  curl -fsS -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    "$PDS_TEST_S3_ENDPOINT/$bucket" >/dev/null
  export PDS_DATA_DIRECTORY=$work/data PDS_HOSTNAME=localhost \
    PDS_BACKUP_URL=s3://$bucket/pds-1 PDS_BACKUP_KEY="seaweedfs drill passphrase" \
    PDS_BACKUP_S3_ENDPOINT=$PDS_TEST_S3_ENDPOINT PDS_BACKUP_S3_REGION=us-east-1 PDS_BACKUP_S3_FORCE_PATH_STYLE=true \
    PDS_BACKUP_S3_ACCESS_KEY_ID=$ACCESS_KEY PDS_BACKUP_S3_SECRET_ACCESS_KEY=$SECRET_KEY
  echo "== pds backup now (first round)" >&2
  "$work/bin/pds" backup now
  echo "== 20 more accounts, then pds backup now (the second round copies only them)" >&2
  PDS_HOSTNAME=localhost "$work/bin/pdsbench" seed -q -data "$work/data" -accounts 220 >&2
  out=$("$work/bin/pds" backup now 2>&1)
  echo "$out" >&2
  echo "$out" | grep -q "220 accounts (20 copied)" || { echo "the second round did not copy exactly the 20 new accounts" >&2; exit 1; }
  echo "== pds backup list" >&2
  "$work/bin/pds" backup list
  echo "== pds backup verify" >&2
  "$work/bin/pds" backup verify
  echo "== pds restore" >&2
  "$work/bin/pds" restore --to "$work/restored"
  n=$(find "$work/restored/actors" -name repo.sqlite | wc -l)
  [ "$n" -eq 220 ] || { echo "restored $n repositories, want 220" >&2; exit 1; }
  echo "the backup commands against SeaweedFS: ok (220 repositories restored)" >&2
fi
