#!/bin/sh
# Runs indigo's relay against this PDS on loopback (pds/relay_integration_test.go): the relay subscribes to the
# PDS's firehose, the test writes a few thousand mixed commits, and the relay must report no verification
# failure and agree with the PDS (getLatestCommit, getRepoStatus, listRepos, its own firehose).
#
# Needs Go, a C compiler (the relay's SQLite driver is cgo) and Node.js (the test PLC directory). The relay is
# built from the Go module proxy, at the indigo version go.mod pins, in a temporary module.
#
# One patch, on a copy of the indigo module in the temporary directory (the module cache is untouched): the
# relay's HostClient (the HTTP client for describeServer at requestCrawl and getRepoStatus for new accounts)
# always uses indigo's SSRF transport, which refuses loopback addresses and ports other than 80/443, so a relay
# cannot reach any PDS on localhost:PORT. The patch swaps that transport for the default one; the firehose
# connection itself is unpatched (the relay already skips SSRF checks for non-TLS hosts).
#
#   scripts/relay-integration.sh                             # 10 accounts, 3000 commits
#   RELAY_COMMITS=10000 RELAY_ACCOUNTS=20 scripts/relay-integration.sh
#   RELAY_KEEP=/tmp/relay scripts/relay-integration.sh       # keep the built relay binary there
#   RELAY_BIN=/tmp/relay scripts/relay-integration.sh        # reuse it (no build)
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)

if [ -z "${RELAY_BIN:-}" ]; then
	version=$(go list -m -f '{{.Version}}' github.com/bluesky-social/indigo)
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	echo "building github.com/bluesky-social/indigo/cmd/relay@$version (first build: several minutes) ..."
	cd "$work"
	GOFLAGS=-mod=mod go mod download -json "github.com/bluesky-social/indigo@$version" > dl.json
	src=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' dl.json)
	cp -r "$src" indigo
	chmod -R u+w indigo
	f=indigo/cmd/relay/relay/host_checker.go
	grep -q 'Transport: ssrf.PublicOnlyTransport(),' "$f" || { echo "relay host_checker.go changed: update the patch" >&2; exit 1; }
	sed -i 's|Transport: ssrf.PublicOnlyTransport(),|Transport: http.DefaultTransport, // loopback PDS (scripts/relay-integration.sh)|' "$f"
	echo 'var _ = ssrf.PublicOnlyTransport' >> "$f"
	cat > go.mod <<MOD
module relaybuild

go 1.26

require github.com/bluesky-social/indigo $version

replace github.com/bluesky-social/indigo => ./indigo
MOD
	CGO_ENABLED=1 GOFLAGS=-mod=mod go build -o "$work/relay" github.com/bluesky-social/indigo/cmd/relay
	RELAY_BIN="$work/relay"
	if [ -n "${RELAY_KEEP:-}" ]; then cp "$RELAY_BIN" "$RELAY_KEEP"; echo "relay binary kept at $RELAY_KEEP"; fi
	cd "$root"
fi

go test ./pds -run '^TestRelayIntegration$' -count=1 -v -timeout 20m \
	-relay="$RELAY_BIN" -relay.commits="${RELAY_COMMITS:-3000}" -relay.accounts="${RELAY_ACCOUNTS:-10}"
