#!/bin/sh
# Runs indigo's relay against this PDS on loopback (pds/relay_integration_test.go): the relay subscribes to the
# PDS's firehose, the test writes a few thousand mixed commits, and the relay must report no verification
# failure and agree with the PDS (getLatestCommit, getRepoStatus, listRepos, its own firehose).
#
# Needs Go, a C compiler (the relay's SQLite driver is cgo) and Node.js (the test PLC directory). The relay is
# built by scripts/build-relay.sh (cached; its comment says what it patches for loopback).
#
#   scripts/relay-integration.sh                             # 10 accounts, 3000 commits
#   RELAY_COMMITS=10000 RELAY_ACCOUNTS=20 scripts/relay-integration.sh
#   RELAY_BIN=/tmp/relay scripts/relay-integration.sh        # use that relay binary (no build)
set -eu
cd "$(dirname "$0")/.."
RELAY_BIN=${RELAY_BIN:-$(scripts/build-relay.sh)}
go test ./pds -run '^TestRelayIntegration$' -count=1 -v -timeout 20m \
	-relay="$RELAY_BIN" -relay.commits="${RELAY_COMMITS:-3000}" -relay.accounts="${RELAY_ACCOUNTS:-10}"
