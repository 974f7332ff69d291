// Package npminstall installs the test harnesses' Node projects (a folder with package.json and a committed
// package-lock.json) with `npm ci`, once per lock file.
//
// go test runs packages in parallel processes, and several of them may need the same project on their first run:
// the install is serialized with an exclusive flock, and a marker file in node_modules holding the sha256 of
// package-lock.json tells later runs (and waiters) that the current lock file is installed.
package npminstall

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Timeout bounds one `npm ci`.
const Timeout = 5 * time.Minute

// markerName is the file written into node_modules after a successful install.
const markerName = ".pdsgo-installed"

// Project is a Node project to install.
type Project struct {
	// Dir is the absolute path of the folder holding package.json and package-lock.json.
	Dir string
	// Sentinel is a path relative to node_modules that exists once the install is complete (for example
	// "@did-plc/server/package.json"); a marker without it (a half-deleted node_modules) reinstalls.
	Sentinel string
}

// Ensure runs `npm ci` in p.Dir unless node_modules already holds an install of the current package-lock.json.
// It is idempotent and safe to call concurrently from several processes.
func (p Project) Ensure() error {
	want, err := lockHash(p.Dir)
	if err != nil {
		return err
	}
	if p.installed(want) {
		return nil
	}

	lockPath := filepath.Join(os.TempDir(), "pdsgo-npm-"+shortHash(p.Dir)+".lock")
	lf, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return fmt.Errorf("npminstall: open install lock: %w", err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("npminstall: flock %s: %w", lockPath, err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN) //nolint:errcheck

	// Another process may have finished the install while we waited.
	if p.installed(want) {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("npminstall: npm not found on PATH (Node.js 20 with npm is required to install %s): %w", p.Dir, err)
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = p.Dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("npminstall: start npm ci: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(Timeout):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		err = fmt.Errorf("timed out after %s", Timeout)
	}
	if err != nil {
		return fmt.Errorf("npminstall: npm ci in %s failed: %w\n%s", p.Dir, err, tail(out.Bytes(), 4096))
	}
	if err := os.WriteFile(filepath.Join(p.Dir, "node_modules", markerName), []byte(want+"\n"), 0o644); err != nil {
		return fmt.Errorf("npminstall: write install marker: %w", err)
	}
	return nil
}

func (p Project) installed(want string) bool {
	b, err := os.ReadFile(filepath.Join(p.Dir, "node_modules", markerName))
	if err != nil || strings.TrimSpace(string(b)) != want {
		return false
	}
	_, err = os.Stat(filepath.Join(p.Dir, "node_modules", p.Sentinel))
	return err == nil
}

func lockHash(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return "", fmt.Errorf("npminstall: read package-lock.json: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
