package testpds

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// Processes and waiting: servers a test runs as binaries (the pds binary in benchmarks, indigo's relay), and
// polling for what happens in the background.

// StopProcess interrupts a started command and waits for it to exit, killing it after 10 s.
func StopProcess(cmd *exec.Cmd) {
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// WaitUntil polls ok every 100 ms, failing the test after d.
func WaitUntil(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
