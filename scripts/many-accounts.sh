#!/usr/bin/env bash
# The "100k accounts on the data dir" figure of issue 9 (docs/performance.md, "Many accounts (100k)"). For each
# size it seeds a data directory with `pdsbench seed` (accounts, repos with signed genesis commits and firehose
# events written straight into the directory, as a clean stop of a server leaves them), then starts the real
# binary on it RUNS times with `pdsbench startup`: time from exec to the first 200 from /xrpc/_health, the
# server's CPU time, open descriptors and RSS when idle; on the last start it reads TOUCH distinct accounts and
# writes a record as WRITERS of them (logged in with the seeded password), sampling the open descriptors. With
# strace installed, one more start per size is traced and the files it opens under actors/ are counted (0: no
# per-account work at start).
#
#   scripts/many-accounts.sh                          # sizes 0 1000 10000 100000, 5 starts each
#   SIZES="0 1000" RUNS=3 scripts/many-accounts.sh    # a quick look
#
# Environment:
#   SIZES="0 1000 10000 100000"    accounts per data directory
#   RUNS=5                          starts per size (medians are quoted: the machine is shared)
#   TOUCH=2000 WRITERS=10           accounts read, and written, on the last start of each size
#   IDLE_WAIT=35s                   after touching, wait this long and count descriptors again (0s: skip)
#   DATA_ROOT=/tmp/pdsgo-many-accounts   the seeded directories, kept and reused (seeding tops them up): 100k
#                                   accounts take ~5 GB and 5-10 minutes to seed on a 2-core machine
#   OUT=bench-results/many-accounts-<date>-<time>   results: startup-<size>.json, table.md, logs
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SIZES=${SIZES:-"0 1000 10000 100000"}
RUNS=${RUNS:-5}
TOUCH=${TOUCH:-2000}
WRITERS=${WRITERS:-10}
IDLE_WAIT=${IDLE_WAIT:-35s}
DATA_ROOT=${DATA_ROOT:-/tmp/pdsgo-many-accounts}
OUT=${OUT:-$ROOT/bench-results/many-accounts-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/bin" "$DATA_ROOT"
export PDS_HOSTNAME=localhost # seed and server must agree on the handle domain (.test)

log() { echo "many-accounts: $*" >&2; }

log "building cmd/pds and cmd/pdsbench"
go build -o "$OUT/bin/pds" ./cmd/pds
go build -o "$OUT/bin/pdsbench" ./cmd/pdsbench

# strace_start DATA OUTFILE: one traced start (until the first 200 from /xrpc/_health) and clean stop; prints
# how many files under actors/ the server opened.
strace_start() {
  local data=$1 trace=$2 port pid i
  command -v pgrep >/dev/null || { echo -; return 0; }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PDS_DATA_DIRECTORY=$data PDS_PORT=$port PDS_DID_PLC_URL=http://127.0.0.1:9 PDS_RATE_LIMITS_ENABLED=false \
    strace -f -qq -e trace=open,openat,openat2 -o "$trace" "$OUT/bin/pds" serve >>"$OUT/strace-server.log" 2>&1 &
  pid=$!
  for i in $(seq 600); do
    curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$port/xrpc/_health" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { log "traced server exited"; return 1; }
    sleep 0.1
  done
  # strace (-o FILE PROG) blocks fatal signals itself: stop the traced server, and strace ends with it.
  kill -TERM "$(pgrep -P "$pid")"
  wait "$pid" || true
  grep -c '/actors/' "$trace" || true
}

echo "| accounts | start-up to first answer, median (min–max) | server CPU at first answer | files opened under actors/ at start | open fds idle | touching: fds peak / after / after idle | repo files open at most | RSS idle / after reads / after writes / after idle |" >"$OUT/table.md"
echo "|---|---|---|---|---|---|---|---|" >>"$OUT/table.md"
load_min=99 load_max=0
for n in $SIZES; do
  data=$DATA_ROOT/accounts-$n
  log "seeding $data with $n accounts (existing ones are kept)"
  "$OUT/bin/pdsbench" seed -q -data "$data" -accounts "$n" | tee -a "$OUT/seed.log" >&2
  opened=-
  if command -v strace >/dev/null && command -v python3 >/dev/null; then
    opened=$(strace_start "$data" "$OUT/strace-$n.txt")
    log "$n accounts: the traced start opened $opened files under actors/"
  fi
  log "$n accounts: $RUNS starts"
  "$OUT/bin/pdsbench" startup -bin "$OUT/bin/pds" -data "$data" -accounts "$n" -runs "$RUNS" -touch "$TOUCH" \
    -writers "$WRITERS" -idle-wait "$IDLE_WAIT" -log "$OUT/server-$n.log" -out "$OUT/startup-$n.json"
  jq -r --arg opened "$opened" '
    def mb: . / 1024 | . * 10 | round / 10 | tostring;
    def r1: . * 10 | round / 10;
    def idle($t; f): if $t.idle_wait_seconds > 0 then ($t | f) else "-" end;
    [.runs[].ready_ms] as $r | .runs[-1].touch as $t |
    "| \(.accounts) | \(.ready_ms_median | r1) ms (\($r | min | r1)–\($r | max | r1)) | \([.runs[].cpu_ms] | sort | .[length/2|floor] | round) ms | \($opened) | \(.fds_median) | " +
    (if $t then "\($t.fds_peak) / \($t.fds_after_writes) / \(idle($t; .fds_after_idle)) (\($t.accounts) read, \($t.writers) wrote, \($t.errors) errors) | \($t.repo_files_peak) | \(.rss_kb_median | mb) / \($t.rss_kb_after_reads | mb) / \($t.rss_kb_after | mb) / \(idle($t; .rss_kb_after_idle | mb)) MB |"
     else "- | - | \(.rss_kb_median | mb) MB idle |" end)' "$OUT/startup-$n.json" >>"$OUT/table.md"
  for l in $(jq -r '.machine.load_avg_start, .machine.load_avg_end' "$OUT/startup-$n.json"); do
    load_min=$(awk -v a="$load_min" -v b="$l" 'BEGIN { print (b < a ? b : a) }')
    load_max=$(awk -v a="$load_max" -v b="$l" 'BEGIN { print (b > a ? b : a) }')
  done
done
echo >>"$OUT/table.md"
echo "$(date -u +%Y-%m-%d), $RUNS starts per size; 1-minute load average $load_min–$load_max during the runs; $(nproc) CPUs." >>"$OUT/table.md"
cat "$OUT/table.md"
log "results in $OUT"
