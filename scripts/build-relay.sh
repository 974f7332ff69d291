#!/bin/sh
# Builds indigo's relay (github.com/bluesky-social/indigo/cmd/relay, at the version go.mod pins) for the tests
# that run it against this server on loopback, and prints the binary's path. scripts/relay-integration.sh and
# scripts/takeover-reference.sh use it. The binary is cached in $RELAY_CACHE (default ~/.cache/pdsgo-relay),
# one per indigo version; the first build takes several minutes (the relay's SQLite driver is cgo: it needs a
# C compiler).
#
# One patch, on a copy of the indigo module in a temporary directory (the module cache is untouched): the
# relay's HostClient (the HTTP client for describeServer at requestCrawl and getRepoStatus for new accounts)
# always uses indigo's SSRF transport, which refuses loopback addresses and ports other than 80/443, so a relay
# cannot reach any PDS on localhost:PORT. The patch swaps that transport for the default one; the firehose
# connection itself is unpatched (the relay already skips SSRF checks for non-TLS hosts).
set -eu
cd "$(dirname "$0")/.."
version=$(go list -m -f '{{.Version}}' github.com/bluesky-social/indigo)
cache=${RELAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pdsgo-relay}
bin=$cache/relay-$version
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "building github.com/bluesky-social/indigo/cmd/relay@$version (first build: several minutes) ..." >&2
cd "$work"
GOFLAGS=-mod=mod go mod download -json "github.com/bluesky-social/indigo@$version" >dl.json
src=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' dl.json)
cp -r "$src" indigo
chmod -R u+w indigo
f=indigo/cmd/relay/relay/host_checker.go
grep -q 'Transport: ssrf.PublicOnlyTransport(),' "$f" || { echo "relay host_checker.go changed: update the patch" >&2; exit 1; }
sed -i 's|Transport: ssrf.PublicOnlyTransport(),|Transport: http.DefaultTransport, // loopback PDS (scripts/build-relay.sh)|' "$f"
echo 'var _ = ssrf.PublicOnlyTransport' >>"$f"
cat >go.mod <<MOD
module relaybuild

go 1.26

require github.com/bluesky-social/indigo $version

replace github.com/bluesky-social/indigo => ./indigo
MOD
CGO_ENABLED=1 GOFLAGS=-mod=mod go build -o "$bin.tmp" github.com/bluesky-social/indigo/cmd/relay
mv "$bin.tmp" "$bin"
echo "$bin"
