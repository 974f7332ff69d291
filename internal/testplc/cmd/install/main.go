// Command install installs the reference PLC directory that the tests start (npm ci of internal/testplc/node).
// The test harness does the same on first use; CI runs it up front so an install failure is reported as such.
package main

import (
	"fmt"
	"os"

	"github.com/pdsgo/pds/internal/testplc"
)

func main() {
	if err := testplc.EnsureInstalled(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("PLC directory installed in", testplc.NodeDir())
}
