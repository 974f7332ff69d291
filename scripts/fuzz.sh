#!/bin/sh
# Runs every fuzz target for a given time each (default 10m), one after the other, one worker each (the
# machine is shared). Usage: scripts/fuzz.sh [duration] [target-regexp]
# Found crashers are written to <package>/testdata/fuzz/<target>/ by go test; keep them (the plain
# `go test` run replays them) and fix the code. Record the run in docs/testing.md.
# -fuzzminimizetime: go test minimizes every input that finds new coverage, for up to 60 s by default; with the
# multi-kilobyte CAR seeds that took nearly all of a run (0 execs/s in the report while the worker minimizes).
# 100 executions per input (FUZZ_MINIMIZE overrides it) keeps the corpus useful and the run fuzzing.
set -eu
cd "$(dirname "$0")/.."
time=${1:-10m}
only=${2:-.}
targets='
./xrpc FuzzRecordJSON
./xrpc FuzzRecordCBOR
./xrpc FuzzQueryParams
./xrpc FuzzStringSchema
./xrpc FuzzNSID
./xrpc FuzzRecordKey
./xrpc FuzzDID
./xrpc FuzzHandle
./xrpc FuzzAtIdentifier
./xrpc FuzzTID
./xrpc FuzzDatetime
./xrpc FuzzCID
./xrpc FuzzLanguage
./xrpc FuzzATURI
./repo FuzzImportCAR
./repo FuzzMSTOps
./repo/car FuzzCARReader
./repo/car FuzzVerifyCAR
./repo/car FuzzImportRecordBlock
./pds/sequencer/frame FuzzDecodeFrame
./pds/auth FuzzSessionJWT
./pds/auth FuzzServiceAuthJWT
./pds/oauth/dpop FuzzVerify
'
echo "$targets" | while read -r pkg target; do
	[ -n "$pkg" ] || continue
	echo "$target" | grep -Eq "$only" || continue
	echo "== $pkg $target ($time)"
	dir=$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$target
	before=$(ls "$dir" 2>/dev/null | wc -l)
	out=$(go test "$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "$time" -fuzzminimizetime "${FUZZ_MINIMIZE:-100x}" \
		-parallel 1 2>&1 || true)
	echo "$out" | grep -E '^(fuzz: elapsed|--- FAIL|    |ok|FAIL|PASS)' | tail -n 12
	after=$(ls "$dir" 2>/dev/null | wc -l)
	# Go 1.26's fuzzing coordinator can report "context deadline exceeded" when -fuzztime ends while a worker
	# is mid-execution (golang/go#75804, fixed in Go 1.27): that is a clean stop, not a crasher. A crasher is
	# an input written to testdata/fuzz/<target>/.
	if [ "$after" -gt "$before" ]; then
		echo "!! $target: $((after - before)) new failing input(s) in $dir"
	elif echo "$out" | grep -q 'context deadline exceeded'; then
		echo "   $target: stopped at -fuzztime by golang/go#75804 (no input written): not a crasher"
	fi
done
