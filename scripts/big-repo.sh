#!/usr/bin/env bash
# The "1M-record repo: write latency within 2x of an empty repo's" figure of issue 9, over HTTP against the real
# binary (docs/performance.md, "Large repositories (1M records)", "Over HTTP").
#
# Seeds a data directory with `pdsbench seed -records N` (account seed0000000 holds N records, announced with
# one #sync; accounts seed0000001.. are fresh, with only their genesis commit), cached under DATA_ROOT by N, and
# works on a copy of it. Then RUNS times, alternating which goes first: starts the binary, logs in as the big
# account with `pdsbench -login` and runs createRecord from one client (its first write, before any warm-up,
# is the cold one: the server just started and has not opened the repository), stops the server; the same
# with a fresh account (a different one each run). Prints the medians side by side and their ratio.
#
#   scripts/big-repo.sh                        # 1M records (seeding takes ~2 minutes the first time), 5 runs
#   RECORDS=20000 RUNS=3 scripts/big-repo.sh   # a quick look
#   PPROF=1 scripts/big-repo.sh                # also a CPU profile of the server per run (pprof-*.pprof)
#
# Environment:
#   RECORDS=1000000          records in the big repository
#   RUNS=5                   measurements of each account (medians are quoted: the machine is shared)
#   DURATION=10s WARMUP=50   length of each createRecord run, and unmeasured writes before it (after the cold one)
#   PPROF=0                  1: PDS_PPROF_ADDR on the server, a CPU profile of each run
#   DATA_ROOT=/tmp/pdsgo-big-repo   seeded directories (records-<N>/, kept: ~630 MB for 1M) and the work copy
#   OUT=bench-results/big-repo-<date>-<time>   results: big-<i>.json, fresh-<i>.json, summary.md, server logs
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

RECORDS=${RECORDS:-1000000}
RUNS=${RUNS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-50}
PPROF=${PPROF:-0}
DATA_ROOT=${DATA_ROOT:-/tmp/pdsgo-big-repo}
OUT=${OUT:-$ROOT/bench-results/big-repo-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/bin" "$DATA_ROOT"
export PDS_HOSTNAME=localhost # seed and server agree on the handle domain (.test)
PASSWORD=seed-password

log() { echo "big-repo: $*" >&2; }

log "building cmd/pds and cmd/pdsbench"
go build -o "$OUT/bin/pds" ./cmd/pds
go build -o "$OUT/bin/pdsbench" ./cmd/pdsbench

cache=$DATA_ROOT/records-$RECORDS
log "seeding $cache: $((RUNS + 1)) accounts, $RECORDS records in seed0000000 (kept and reused)"
"$OUT/bin/pdsbench" seed -data "$cache" -accounts $((RUNS + 1)) -records "$RECORDS" | tee -a "$OUT/seed.log" >&2

work=$DATA_ROOT/work-$$
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
log "copying it to $work (each script run starts from the same repositories)"
cp -a --reflink=auto "$cache" "$work"
du -sh "$work/actors" >&2

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pprof_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# measure NAME HANDLE RUN: starts the server, runs pdsbench as HANDLE, stops the server (clean stop, exit 0).
measure() {
  local name=$1 handle=$2 i=$3 extra=() i2
  local env=(PDS_DATA_DIRECTORY="$work" PDS_PORT="$port" PDS_BIND_ADDRESS=127.0.0.1 PDS_RATE_LIMITS_ENABLED=false
    PDS_DID_PLC_URL=http://127.0.0.1:9) # nothing here resolves a DID
  if [[ $PPROF == 1 ]]; then
    env+=(PDS_PPROF_ADDR=127.0.0.1:$pprof_port)
    extra=(-pprof "http://127.0.0.1:$pprof_port" -pprof-dir "$OUT")
  fi
  env "${env[@]}" "$OUT/bin/pds" serve >>"$OUT/server-$name-$i.log" 2>&1 &
  server_pid=$!
  for i2 in $(seq 600); do
    curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$port/xrpc/_health" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { log "the server exited (see $OUT/server-$name-$i.log)"; exit 1; }
    sleep 0.05
  done
  "$OUT/bin/pdsbench" -url "http://127.0.0.1:$port" -pid "$server_pid" -name "$name-$i" -login "$handle.test:$PASSWORD" \
    -scenarios create_1 -duration "$DURATION" -warmup "$WARMUP" "${extra[@]}" -out "$OUT/$name-$i.json"
  kill -TERM "$server_pid"
  wait "$server_pid" || { log "the server did not stop cleanly"; exit 1; }
  server_pid=
}

for i in $(seq "$RUNS"); do
  fresh=$(printf 'seed%07d' "$i") # a different empty repository each run
  if ((i % 2 == 1)); then
    measure big seed0000000 "$i"
    measure fresh "$fresh" "$i"
  else
    measure fresh "$fresh" "$i"
    measure big seed0000000 "$i"
  fi
done

# Medians over the runs of each side, and big/fresh.
jq -rs --arg records "$RECORDS" '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r2: . * 100 | round / 100;
  def side($p): [.[] | select(.target.name | startswith($p))];
  def fig($runs; f): [$runs[] | f] | median;
  def row($what; f; $unit): (fig(side("big-"); f)) as $b | (fig(side("fresh-"); f)) as $f |
    "| \($what) | \($f | r2)\($unit) | \($b | r2)\($unit) | \(if $f > 0 then ($b / $f | r2 | tostring) + "x" else "-" end) |";
  def c1: .scenarios[] | select(.name == "create_1");
  "| createRecord, 1 client (median of \(side("big-") | length) runs) | fresh account | \($records | tonumber) records | ratio |",
  "|---|---|---|---|",
  row("p50"; c1.latency_ms.p50; " ms"),
  row("p99"; c1.latency_ms.p99; " ms"),
  row("mean"; c1.latency_ms.mean; " ms"),
  row("rate"; c1.rate; "/s"),
  row("server CPU per write"; c1.server_cpu_per_op_ms; " ms"),
  row("first write after the server started (cold)"; .setup.first_write_ms; " ms"),
  row("server RSS idle (at start)"; .server.idle_rss_kb / 1024; " MB"),
  row("server RSS after the run"; .server.after_rss_kb / 1024; " MB"),
  row("server peak RSS (VmHWM)"; .server.peak_rss_kb / 1024; " MB"),
  "",
  "1-minute load average \([.[].machine.load_avg_start, .[].machine.load_avg_end] | min)–\([.[].machine.load_avg_start, .[].machine.load_avg_end] | max) during the runs; \(.[0].machine.cpus) CPUs; \(.[0].config.duration_ns / 1e9)s runs after \(.[0].config.warmup) warm-up writes."
' "$OUT"/big-*.json "$OUT"/fresh-*.json >"$OUT/summary.md"
echo "per run (p50 / p99 / mean ms, cold first write ms):" >>"$OUT/summary.md"
for f in "$OUT"/big-*.json "$OUT"/fresh-*.json; do
  jq -r '(.scenarios[] | select(.name == "create_1")) as $c |
    "  \(.target.name): \($c.latency_ms.p50 * 100 | round / 100) / \($c.latency_ms.p99 * 100 | round / 100) / \($c.latency_ms.mean * 100 | round / 100), \($c.ops) writes, cold \(.setup.first_write_ms * 100 | round / 100)"' "$f" >>"$OUT/summary.md"
done
cat "$OUT/summary.md"
log "results in $OUT"
