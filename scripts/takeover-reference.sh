#!/usr/bin/env bash
# `pds takeover` against the reference PDS (npm @atproto/pds 0.5.35, scripts/reference-pds/): the reference gets
# accounts with posts, follows, blobs, an app password, preferences, invites, a deactivated and a taken-down
# account, while a firehose subscriber and indigo's relay (scripts/build-relay.sh) follow it; `pds takeover
# --check` reads it while it runs (the takeover itself refuses); it is stopped; a copy with an older schema and
# one with a missing key are refused; `pds takeover` turns its data directory into this server's; this server
# starts on the same hostname and port. Then: the official client logs in with the old password and app
# password, an access token issued by the reference still works, every record and blob is served with the same
# CID and bytes, sync.getRepo verifies (@atproto/repo) against the unchanged DID document, a new write chains to
# the old head, the firehose subscriber resumes from its cursor without a gap (and an older cursor replays the
# carried events), the relay follows on by itself (same host, its cursor continued, the new commit accepted,
# no account out of sync, no verification failure), and the reference's directory is unchanged.
#
#   scripts/takeover-reference.sh                  # blobs on disk (copied)
#   BLOBSTORE=s3 scripts/takeover-reference.sh     # blobs in an S3 bucket (referenced in place)
#
# Needs Go, a C compiler (the relay), Node.js, jq, curl and the reference install of scripts/migrate-reference.sh
# (scripts/lib/reference.sh installs it the same way). The S3 bucket is served by internal/tests3/cmd/s3server
# (gofakes3, the blob tests' S3 server, as a program). Environment: PORT_BASE=24780 (PLC, the PDS, the relay and
# its metrics, S3), RELAY_BIN (a relay binary instead of scripts/build-relay.sh's), KEEP=1 keeps the work directory.
set -euo pipefail
NAME=takeover-reference
WORK=$(mktemp -d /tmp/pdsgo-takeover-ref.XXXXXX)
. "$(dirname "$0")/lib/reference.sh"
cd "$ROOT"
command -v jq >/dev/null || die "jq is required"
PORT_BASE=${PORT_BASE:-24780}
BLOBSTORE=${BLOBSTORE:-disk}
HELPER=$REFDIR/takeover-helper.mjs

# ---- install, build, PLC, relay, S3 ----
install_reference
[[ -d internal/officialclient/node/node_modules/@atproto/api ]] || (cd internal/officialclient/node && npm ci --no-audit --no-fund --loglevel=error)
RELAY_BIN=${RELAY_BIN:-$(scripts/build-relay.sh)}
log "building cmd/pds"
go build -o "$WORK/pdsgo" ./cmd/pds
start_plc $PORT_BASE
PORT=$((PORT_BASE + 1))
BASE=http://localhost:$PORT
HOST=localhost:$PORT
RELAY=http://127.0.0.1:$((PORT_BASE + 2))
env DATABASE_URL="sqlite://$WORK/relay.sqlite" RELAY_API_BIND=127.0.0.1:$((PORT_BASE + 2)) RELAY_METRICS_LISTEN=127.0.0.1:$((PORT_BASE + 3)) \
  RELAY_PERSIST_DIR="$WORK/relay-persist" RELAY_ALLOW_INSECURE_HOSTS=true RELAY_PLC_HOST=$PLC RELAY_ADMIN_PASSWORD=relay-admin \
  RELAY_TRUSTED_DOMAINS=$HOST RELAY_LOG_LEVEL=info "$RELAY_BIN" serve >"$WORK/relay.log" 2>&1 &
RELAY_PID=$!
PIDS+=($RELAY_PID)
wait_http "$RELAY/xrpc/_health" $RELAY_PID
if [[ $BLOBSTORE == s3 ]]; then
  go build -o "$WORK/s3server" ./internal/tests3/cmd/s3server
  "$WORK/s3server" -port $((PORT_BASE + 4)) pds-blobs >"$WORK/s3.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do grep -q S3_LISTENING "$WORK/s3.log" && break; sleep 0.1; done
  grep -q S3_LISTENING "$WORK/s3.log" || die "the S3 server did not start"
fi

# ---- the reference, as an operator runs it: a data directory and its env file ----
REF=$WORK/pds
mkdir -p "$REF"
if [[ $BLOBSTORE == s3 ]]; then
  BLOBENV="PDS_BLOBSTORE_S3_BUCKET=pds-blobs
PDS_BLOBSTORE_S3_ENDPOINT=http://127.0.0.1:$((PORT_BASE + 4))
PDS_BLOBSTORE_S3_REGION=us-east-1
PDS_BLOBSTORE_S3_FORCE_PATH_STYLE=true
PDS_BLOBSTORE_S3_ACCESS_KEY_ID=test
PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY=test-secret"
else
  mkdir -p "$REF/blocks"
  BLOBENV="PDS_BLOBSTORE_DISK_LOCATION=$REF/blocks"
fi
cat >"$REF/pds.env" <<EOF
PDS_HOSTNAME=localhost
PDS_PORT=$PORT
PDS_DATA_DIRECTORY=$REF
$BLOBENV
PDS_DID_PLC_URL=$PLC
PDS_INVITE_REQUIRED=true
PDS_DEV_MODE=true
PDS_RATE_LIMITS_ENABLED=false
PDS_JWT_SECRET=takeover-jwt-secret
PDS_ADMIN_PASSWORD=takeover-admin
PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX=$(printf 'a%.0s' $(seq 63))1
PDS_DPOP_SECRET=$(printf 'd%.0s' $(seq 64))
PDS_BSKY_APP_VIEW_URL=http://127.0.0.1:9
PDS_BSKY_APP_VIEW_DID=did:web:appview.test
LOG_ENABLED=false
EOF
start_ref() {
  (set -a && . "$REF/pds.env" && set +a && exec "$NODE22" "$REFDIR/launch.js") >"$WORK/ref.log" 2>&1 &
  REF_PID=$!
  PIDS+=($REF_PID)
  wait_http "$BASE/xrpc/com.atproto.server.describeServer" $REF_PID
}
start_ref
log "reference PDS at $BASE (data $REF)"

auth() { [[ -n $1 ]] && printf 'authorization: Bearer %s' "$1" || printf 'x-no-auth: 1'; }
xget() { curl -sS --fail-with-body -H "$(auth "$3")" "$BASE/xrpc/$1?$2"; }
xpost() { curl -sS --fail-with-body -H "$(auth "$3")" -H 'content-type: application/json' -d "$2" "$BASE/xrpc/$1"; }
admin() { curl -sS --fail-with-body -u admin:takeover-admin -H 'content-type: application/json' -d "$2" "$BASE/xrpc/$1"; }

# The firehose subscriber follows the reference live, and so does the relay (asked through its admin
# requestCrawl: its public one refuses localhost), with a subscriber of its own firehose.
"$NODE22" "$HELPER" sub "ws://localhost:$PORT" "" "$WORK/sub1.events" 2>"$WORK/sub1.log" &
PIDS+=($!)
relay_get() { curl -sS --fail-with-body "$RELAY/xrpc/$1?$2"; }
curl -sS --fail-with-body -u admin:relay-admin -H 'content-type: application/json' -d '{"hostname":"'$HOST'"}' \
  "$RELAY/admin/pds/requestCrawl" >/dev/null || die "relay requestCrawl"
"$NODE22" "$HELPER" sub "ws://127.0.0.1:$((PORT_BASE + 2))" "" "$WORK/relayfeed.events" 2>"$WORK/relayfeed.log" &
PIDS+=($!)

INVITE=$(admin com.atproto.server.createInviteCode '{"useCount":10}' | jq -r .code)
declare -A DIDS TOKENS REFRESH
for who in alice bob carol; do
  out=$(xpost com.atproto.server.createAccount '{"handle":"'$who'.test","email":"'$who'@example.com","password":"pw-'$who'","inviteCode":"'$INVITE'"}' "") ||
    die "createAccount $who: $out"
  DIDS[$who]=$(jq -r .did <<<"$out")
  TOKENS[$who]=$(jq -r .accessJwt <<<"$out")
  REFRESH[$who]=$(jq -r .refreshJwt <<<"$out")
done
A=${DIDS[alice]} B=${DIDS[bob]} C=${DIDS[carol]}
post() { # WHO TEXT
  xpost com.atproto.repo.createRecord '{"repo":"'${DIDS[$1]}'","collection":"app.bsky.feed.post","record":{"$type":"app.bsky.feed.post","text":"'"$2"'","createdAt":"2026-12-01T00:00:00.000Z"}}' "${TOKENS[$1]}" >/dev/null
}
for i in $(seq 1 12); do post alice "alice post $i"; done
for i in 1 2 3; do post bob "bob post $i"; post carol "carol post $i"; done
xpost com.atproto.repo.createRecord '{"repo":"'$B'","collection":"app.bsky.graph.follow","record":{"$type":"app.bsky.graph.follow","subject":"'$A'","createdAt":"2026-12-01T00:00:00.000Z"}}' "${TOKENS[bob]}" >/dev/null
xpost com.atproto.repo.createRecord '{"repo":"'$A'","collection":"app.bsky.graph.follow","record":{"$type":"app.bsky.graph.follow","subject":"'$B'","createdAt":"2026-12-01T00:00:00.000Z"}}' "${TOKENS[alice]}" >/dev/null
{ printf '\x89PNG\r\n\x1a\n'; head -c 40000 /dev/urandom; } >"$WORK/avatar.png"
blob=$(curl -sS --fail-with-body -H "authorization: Bearer ${TOKENS[alice]}" -H 'content-type: image/png' --data-binary @"$WORK/avatar.png" \
  "$BASE/xrpc/com.atproto.repo.uploadBlob" | jq -c .blob)
BLOB=$(jq -r '.ref["$link"]' <<<"$blob")
xpost com.atproto.repo.putRecord '{"repo":"'$A'","collection":"app.bsky.actor.profile","rkey":"self","record":{"$type":"app.bsky.actor.profile","displayName":"Alice","avatar":'"$blob"'}}' "${TOKENS[alice]}" >/dev/null
# Two images in a post: with the avatar, three blobs of alice's.
IMAGES=
for i in 1 2; do
  { printf '\xff\xd8\xff\xe0'; head -c $((20000 * i)) /dev/urandom; } >"$WORK/image$i.jpg"
  IMAGES+=$(curl -sS --fail-with-body -H "authorization: Bearer ${TOKENS[alice]}" -H 'content-type: image/jpeg' --data-binary @"$WORK/image$i.jpg" \
    "$BASE/xrpc/com.atproto.repo.uploadBlob" | jq -c '{alt: "image '$i'", image: .blob}'),
done
xpost com.atproto.repo.createRecord '{"repo":"'$A'","collection":"app.bsky.feed.post","record":{"$type":"app.bsky.feed.post","text":"two images","createdAt":"2026-12-01T00:00:00.000Z","embed":{"$type":"app.bsky.embed.images","images":['"${IMAGES%,}"']}}}' "${TOKENS[alice]}" >/dev/null ||
  die "the post with images"
APPPW=$(xpost com.atproto.server.createAppPassword '{"name":"phone"}' "${TOKENS[alice]}" | jq -r .password)
xpost app.bsky.actor.putPreferences '{"preferences":[{"$type":"app.bsky.actor.defs#adultContentPref","enabled":true}]}' "${TOKENS[alice]}" >/dev/null ||
  die "putPreferences at the reference"
SPARE=$(admin com.atproto.server.createInviteCode '{"useCount":1}' | jq -r .code)

# What the reference serves, to compare with afterwards.
for who in alice bob; do
  for coll in app.bsky.feed.post app.bsky.graph.follow app.bsky.actor.profile; do
    xget com.atproto.repo.listRecords "repo=${DIDS[$who]}&collection=$coll&limit=100" "${TOKENS[$who]}" | jq -c '[.records[] | {uri, cid}]'
  done
done >"$WORK/records.before"
HEAD_BEFORE=$(xget com.atproto.sync.getLatestCommit "did=$A" "" | jq -r .rev)
# Every blob of every account: its CID and the hash of its bytes.
blob_sums() {
  for who in alice bob; do
    for c in $(xget com.atproto.sync.listBlobs "did=${DIDS[$who]}&limit=100" "" | jq -r '.cids[]'); do
      echo "${DIDS[$who]} $c $(curl -sS --fail "$BASE/xrpc/com.atproto.sync.getBlob?did=${DIDS[$who]}&cid=$c" | sha256sum | cut -d' ' -f1)"
    done
  done
}
blob_sums >"$WORK/blobs.before"
[[ $(wc -l <"$WORK/blobs.before") == 3 ]] || die "blobs at the reference: $(cat "$WORK/blobs.before")"
xpost com.atproto.server.deactivateAccount '{}' "${TOKENS[bob]}" >/dev/null
admin com.atproto.admin.updateSubjectStatus '{"subject":{"$type":"com.atproto.admin.defs#repoRef","did":"'$C'"},"takedown":{"applied":true,"ref":"ticket-1"}}' >/dev/null
log "alice $A, bob $B (deactivated), carol $C (taken down); app password, preferences, invites $INVITE and $SPARE"

# While the reference runs, --check reads it (and says so); the takeover itself is refused.
"$WORK/pdsgo" takeover --from "$REF" --env "$REF/pds.env" --to "$WORK/ours" --check >"$WORK/running-check.out" 2>"$WORK/running-check.log" ||
  die "takeover --check of the running reference: $(cat "$WORK/running-check.log")"
grep -q "the reference is running (process $REF_PID)" "$WORK/running-check.out" || die "running check: $(cat "$WORK/running-check.out")"
grep -qE "accounts +3 \(1 deactivated, 1 taken down\)" "$WORK/running-check.out" || die "running check: $(cat "$WORK/running-check.out")"
[[ ! -e $WORK/ours ]] || die "--check wrote $WORK/ours"
admin com.atproto.server.createInviteCode '{"useCount":1}' >/dev/null || die "the reference does not write after the check"
if "$WORK/pdsgo" takeover --from "$REF" --env "$REF/pds.env" --to "$WORK/ours" >"$WORK/running.out" 2>&1; then
  die "takeover accepted a running reference"
fi
grep -q "is open in process $REF_PID" "$WORK/running.out" || die "running reference: $(cat "$WORK/running.out")"
[[ ! -e $WORK/ours ]] || die "the refused takeover wrote $WORK/ours"
log "a running reference: --check reads it ($(grep -c . "$WORK/running-check.out") lines of report), the takeover is refused: $(tail -n1 "$WORK/running.out")"

# The relay has everything the reference sequenced (carol's takedown is the last event). Its cursor for the
# host may trail the last event it handled by one: it records an event's seq as done after the handler that
# records the cursor returns, so the last one is recorded with the next event (it re-reads one event after a
# reconnection; its handling is idempotent).
REF_SEQ=$(grep -E '^[0-9]+ ' "$WORK/sub1.events" | tail -n1 | cut -d' ' -f1)
relay_seq() { relay_get com.atproto.sync.getHostStatus "hostname=$HOST" | jq -r .seq; }
for _ in $(seq 300); do
  [[ $(relay_get com.atproto.sync.getRepoStatus "did=$C" | jq -r .status) == takendown && $(relay_seq) -ge $((REF_SEQ - 1)) ]] && break
  sleep 0.1
done
hs=$(relay_get com.atproto.sync.getHostStatus "hostname=$HOST")
RELAY_SEQ=$(jq -r .seq <<<"$hs")
((RELAY_SEQ >= REF_SEQ - 1 && RELAY_SEQ <= REF_SEQ)) && [[ $(jq -r .status <<<"$hs") == active ]] || die "the relay's host status $hs, want seq $REF_SEQ (or one less)"
[[ $(relay_get com.atproto.sync.getLatestCommit "did=$A" | jq -r .rev) == "$HEAD_BEFORE" ]] || die "the relay's head of alice"
[[ $(relay_get com.atproto.sync.getRepoStatus "did=$B" | jq -r .status) == deactivated ]] || die "the relay's status of bob"
[[ $(relay_get com.atproto.sync.getRepoStatus "did=$C" | jq -r .status) == takendown ]] || die "the relay's status of carol"
log "the relay follows the reference (its last seq $REF_SEQ): $hs"

kill -TERM $REF_PID
wait $REF_PID 2>/dev/null || true
for _ in $(seq 100); do grep -q closed "$WORK/sub1.events" 2>/dev/null && break; sleep 0.1; done
LAST=$(grep -E '^[0-9]+ ' "$WORK/sub1.events" | tail -n1 | cut -d' ' -f1)
[[ -n $LAST ]] || die "the subscriber saw no event"
log "reference stopped; its subscriber's cursor is $LAST ($(grep -cE '^[0-9]+ ' "$WORK/sub1.events") events)"
(cd "$REF" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$WORK/ref.sha256"

# A directory of an older reference (a migration this version has is not applied), and one with an account's
# key missing: a clear error, nothing written. (Copies: their env file still names $REF, which takeover maps to
# the directory it is given.)
refuse() { # DIR WANT
  for check in --check ""; do
    if "$WORK/pdsgo" takeover --from "$1" --env "$1/pds.env" --to "$1.out" $check >"$1.log" 2>&1; then die "takeover $check of $1 succeeded"; fi
    grep -q "$2" "$1.log" || die "takeover $check of $1: $(cat "$1.log")"
    [[ ! -e $1.out ]] || die "takeover $check of $1 wrote $1.out"
  done
  log "refused: $(tail -n1 "$1.log")"
}
cp -a "$REF" "$WORK/older"
# @atproto/pds 0.4.122 (on the npm registry) has account.sqlite's migrations 001-004; 0.4.217 to 0.5.35 have 001-007.
"$NODE22" -e "require('$REFDIR/node_modules/better-sqlite3')(process.argv[1]).prepare(\"delete from kysely_migration where name >= '005'\").run()" "$WORK/older/account.sqlite"
refuse "$WORK/older" "migrations 005, 006, 007 of @atproto/pds 0.5.35 are not applied: it was written by an older reference PDS"
cp -a "$REF" "$WORK/nokey"
rm "$(find "$WORK/nokey/actors" -path "*/$B/key")"
refuse "$WORK/nokey" "the signing key of $B"

# ---- take over ----
"$WORK/pdsgo" takeover --from "$REF" --env "$REF/pds.env" --to "$WORK/ours" --check >"$WORK/check.out" 2>"$WORK/check.log" || die "takeover --check: $(cat "$WORK/check.log")"
cat "$WORK/check.out" >&2
[[ ! -e $WORK/ours ]] || die "--check wrote $WORK/ours"
"$WORK/pdsgo" takeover --from "$REF" --env "$REF/pds.env" --to "$WORK/ours" >"$WORK/takeover.out" 2>"$WORK/takeover.log" || die "takeover: $(cat "$WORK/takeover.log")"
cat "$WORK/takeover.out" >&2

# ---- this server, same hostname and port ----
(set -a && . "$WORK/ours/pds.env" && set +a && exec "$WORK/pdsgo" serve) >"$WORK/ours.log" 2>&1 &
OURS_PID=$!
PIDS+=($OURS_PID)
wait_http "$BASE/xrpc/com.atproto.server.describeServer" $OURS_PID
log "this PDS serves $BASE from $WORK/ours"

# Logins with the official client: password and app password; the reference's tokens still work.
[[ $("$NODE22" "$HELPER" login "$BASE" alice.test pw-alice) == "$A" ]] || die "login with alice's password"
[[ $("$NODE22" "$HELPER" login "$BASE" alice.test "$APPPW") == "$A" ]] || die "login with alice's app password"
[[ $(xget com.atproto.server.getSession "" "${TOKENS[alice]}" | jq -r .did) == "$A" ]] || die "the reference's access token"
xpost com.atproto.server.refreshSession '' "${REFRESH[alice]}" | jq -e .accessJwt >/dev/null || die "the reference's refresh token"
[[ $("$NODE22" "$HELPER" login "$BASE" bob.test pw-bob) == "$B" ]] || die "login with bob's password"
st=$(xget com.atproto.server.checkAccountStatus "" "$(xpost com.atproto.server.createSession '{"identifier":"bob.test","password":"pw-bob"}' "" | jq -r .accessJwt)")
[[ $(jq -r .activated <<<"$st") == false ]] || die "bob is not deactivated: $st"
out=$(xpost com.atproto.server.createSession '{"identifier":"carol.test","password":"pw-carol"}' "" 2>&1 || true)
grep -q AccountTakedown <<<"$out" || die "carol's takedown: $out"
[[ $(xget app.bsky.actor.getPreferences "" "${TOKENS[alice]}" | jq -r '.preferences[0].enabled') == true ]] || die "alice's preferences"
xpost com.atproto.server.activateAccount '' "${TOKENS[bob]}" >/dev/null || die "bob's reactivation"
admin_get() { curl -sS --fail-with-body -u admin:takeover-admin "$BASE/xrpc/$1?$2"; }
[[ $(admin_get com.atproto.admin.getInviteCodes "limit=10" | jq '[.codes[] | select(.code == "'$INVITE'") | .uses | length] | .[0]') == 3 ]] || die "the invite's uses"
admin_get com.atproto.admin.getInviteCodes "limit=10" | jq -e '.codes[] | select(.code == "'$SPARE'" and .available == 1)' >/dev/null || die "the spare invite"
log "logins (password, app password, old tokens), deactivation (and reactivation), takedown, preferences, invites: OK"

# Every record with the same CID, the blob with the same bytes.
for who in alice bob; do
  for coll in app.bsky.feed.post app.bsky.graph.follow app.bsky.actor.profile; do
    xget com.atproto.repo.listRecords "repo=${DIDS[$who]}&collection=$coll&limit=100" "${TOKENS[$who]}" | jq -c '[.records[] | {uri, cid}]'
  done
done >"$WORK/records.after"
cmp -s "$WORK/records.before" "$WORK/records.after" || die "records differ: $(diff "$WORK/records.before" "$WORK/records.after" | head)"
curl -sS --fail -o "$WORK/avatar.out" "$BASE/xrpc/com.atproto.sync.getBlob?did=$A&cid=$BLOB" || die "getBlob"
cmp -s "$WORK/avatar.out" "$WORK/avatar.png" || die "blob bytes differ"
blob_sums >"$WORK/blobs.after"
cmp -s "$WORK/blobs.before" "$WORK/blobs.after" || die "blobs differ: $(diff "$WORK/blobs.before" "$WORK/blobs.after")"
[[ $BLOBSTORE != s3 || ! -e $WORK/ours/blobs ]] || die "the S3 blobs were copied to $WORK/ours/blobs"
log "$(jq -s 'map(length) | add' "$WORK/records.after") records and $(wc -l <"$WORK/blobs.after") blobs ($BLOBSTORE): same CIDs and bytes"

# getRepo verifies against the unchanged DID document.
v=$("$NODE22" "$HELPER" verify "$BASE" "$PLC" "$A") || die "getRepo of alice does not verify"
[[ $(cut -d' ' -f2 <<<"$v") == "$HEAD_BEFORE" ]] || die "alice's head rev $v, want $HEAD_BEFORE"
log "getRepo of alice verifies against her DID document: $v"

# The subscriber resumes from its cursor: the next event is the next seq, a commit chained to the old head.
"$NODE22" "$HELPER" sub "ws://localhost:$PORT" "$LAST" "$WORK/sub2.events" 2>"$WORK/sub2.log" &
SUB2=$!
PIDS+=($SUB2)
"$NODE22" "$HELPER" sub "ws://localhost:$PORT" "$((LAST - 3))" "$WORK/sub3.events" 2>"$WORK/sub3.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q open "$WORK/sub2.events" 2>/dev/null && grep -q open "$WORK/sub3.events" 2>/dev/null && break; sleep 0.1; done
post alice "written after the takeover"
for _ in $(seq 100); do grep -qE "^[0-9]+ #commit $A " "$WORK/sub2.events" 2>/dev/null && break; sleep 0.1; done
read -r seq typ repo rev since <<<"$(grep -E "^[0-9]+ #commit $A " "$WORK/sub2.events" | tail -n1)"
[[ $since == "$HEAD_BEFORE" ]] || die "the new write's event: '$seq $typ $repo $rev $since', want a #commit of $A since $HEAD_BEFORE"
# The reference may stop before its subscribers got its last events (they come from the carried log), and bob's
# reactivation above added events: every seq after the cursor comes, in order, with no gap.
got=$(grep -E '^[0-9]+ ' "$WORK/sub2.events" | cut -d' ' -f1 | tr '\n' ' ')
[[ $got == "$(seq -s ' ' $((LAST + 1)) "$seq") " ]] || die "resumed stream from $LAST: seqs $got, want $((LAST + 1))..$seq"
replayed=$(grep -E '^[0-9]+ ' "$WORK/sub3.events" | head -n4 | cut -d' ' -f1 | tr '\n' ' ')
[[ $replayed == "$((LAST - 2)) $((LAST - 1)) $LAST $((LAST + 1)) " ]] || die "replay from $((LAST - 3)): $replayed"
v=$("$NODE22" "$HELPER" verify "$BASE" "$PLC" "$A") || die "getRepo of alice after the new write does not verify"
log "firehose resumed from cursor $LAST: seqs $got(the new commit $seq since $HEAD_BEFORE); replay from $((LAST - 3)) gave $replayed; getRepo verifies: $v"

# The relay followed on by itself (no requestCrawl since): same host row, its cursor continued past the
# reference's last seq, the new commit accepted (chained to the head it had), bob's reactivation seen, no account
# out of sync, no verification failure in its log.
NEWREV=$(xget com.atproto.sync.getLatestCommit "did=$A" "" | jq -r .rev)
for _ in $(seq 900); do
  [[ $(relay_get com.atproto.sync.getLatestCommit "did=$A" | jq -r .rev) == "$NEWREV" && $(relay_seq) -ge $((seq - 1)) ]] && break
  sleep 0.1
done
hs=$(relay_get com.atproto.sync.getHostStatus "hostname=$HOST")
n=$(jq -r .seq <<<"$hs")
((n > REF_SEQ && n >= seq - 1 && n <= seq)) && [[ $(jq -r .status <<<"$hs") == active ]] ||
  die "the relay's host status after the takeover: $hs, want its seq past the reference's $REF_SEQ, at $seq (or one less)"
[[ $(relay_get com.atproto.sync.getLatestCommit "did=$A" | jq -r .rev) == "$NEWREV" ]] || die "the relay did not take alice's new commit"
st=$(relay_get com.atproto.sync.getRepoStatus "did=$A")
[[ $(jq -r .active <<<"$st") == true && $(jq -r .rev <<<"$st") == "$NEWREV" ]] || die "the relay's status of alice: $st"
[[ $(relay_get com.atproto.sync.getRepoStatus "did=$B" | jq -r .active) == true ]] || die "the relay's status of bob: $(relay_get com.atproto.sync.getRepoStatus "did=$B")"
[[ $(relay_get com.atproto.sync.listHosts "limit=10" | jq '.hosts | length') == 1 ]] || die "the relay's hosts: $(relay_get com.atproto.sync.listHosts "limit=10")"
grep -qE "^[0-9]+ #commit $A $NEWREV $HEAD_BEFORE\$" "$WORK/relayfeed.events" || die "the relay's firehose lacks the new commit since $HEAD_BEFORE"
if relay_get com.atproto.sync.listRepos "limit=100" | jq -e '.repos[] | select(.status == "desynchronized")' >/dev/null; then
  die "the relay marks an account desynchronized: $(relay_get com.atproto.sync.listRepos "limit=100")"
fi
for m in "failed strict validation" "commit message failed verification" "miss-matching prevData" "miss-matching since" \
  "failed to invert commit MST" "dropping commit with old rev" "invalid account event" "sync message failed" "future cursor"; do
  ! grep -qi "$m" "$WORK/relay.log" || die "the relay's log: $(grep -i "$m" "$WORK/relay.log" | head -n3)"
done
log "the relay followed on without a re-sync: $hs (it had $RELAY_SEQ); alice at $NEWREV (since $HEAD_BEFORE) on its firehose"

# Nothing in the reference's directory changed.
(cd "$REF" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | cmp -s - "$WORK/ref.sha256" || die "the reference's directory changed"
log "the reference's directory is unchanged ($(wc -l <"$WORK/ref.sha256") files)"
log "PASS: reference PDS taken over in place"
