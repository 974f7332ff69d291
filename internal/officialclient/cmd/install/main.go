// Command install installs the official-client test project (npm ci of internal/officialclient/node: @atproto/api,
// @atproto/repo and a Node 22 binary). The test does the same on first use; CI runs it up front so an install
// failure is reported as such.
package main

import (
	"fmt"
	"os"

	"github.com/pdsgo/pds/internal/officialclient"
)

func main() {
	if err := officialclient.EnsureInstalled(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("official clients installed in", officialclient.NodeDir())
}
