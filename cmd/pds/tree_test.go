package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// TestCLITree goes over the whole command tree: every command and group answers -h, --help and
// `pds help ...` on stdout with exit 0 and does nothing else (no request to the server, no file written);
// an unknown flag or command is a usage error (exit 2, one line on stderr naming the help); a runtime error
// exits 1; completion scripts and completion answers come from the tree.
func TestCLITree(t *testing.T) {
	var requests atomic.Int32
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "no", http.StatusTeapot)
	}))
	defer server.Close()
	data := t.TempDir()
	env := map[string]string{"PDS_ADMIN_SERVER_URL": server.URL, "PDS_ADMIN_PASSWORD": "x", "PDS_DATA_DIRECTORY": data,
		"PDS_EMBEDDED_PLC_ADDR": "127.0.0.1:0", "PDS_PORT": "1"}
	cwdBefore := listDir(t, ".")

	var leaves, groups [][]string
	seen := map[string]bool{}
	for _, c := range commands {
		words := strings.Fields(c.name)
		leaves = append(leaves, words)
		for i := 1; i < len(words); i++ {
			if g := strings.Join(words[:i], " "); !seen[g] {
				seen[g] = true
				groups = append(groups, words[:i])
			}
		}
	}
	all := append(append([][]string{nil}, groups...), leaves...) // nil: the root

	for _, path := range all {
		name := strings.TrimSpace("pds " + strings.Join(path, " "))
		for _, h := range [][]string{{"--help"}, {"-h"}} {
			out, errOut, code := pdsCLI(t, env, "", append(slices.Clone(path), h...)...)
			if code != 0 || errOut != "" || !strings.Contains(out, "USAGE:") || !strings.Contains(out, name) {
				t.Errorf("%s %s: exit %d, stderr %q, stdout:\n%s", name, h[0], code, errOut, out)
			}
		}
		out, errOut, code := pdsCLI(t, env, "", append([]string{"help"}, path...)...)
		if code != 0 || errOut != "" || !strings.Contains(out, name) {
			t.Errorf("pds help %s: exit %d, stderr %q, stdout:\n%s", strings.Join(path, " "), code, errOut, out)
		}
	}
	// Usage errors: one line on stderr, exit 2, nothing on stdout.
	usage := func(args ...string) {
		t.Helper()
		out, errOut, code := pdsCLI(t, env, "", args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "--help')") {
			t.Errorf("pds %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
	}
	for _, path := range leaves {
		usage(append(slices.Clone(path), "--no-such-flag")...)
	}
	for _, path := range append([][]string{nil}, groups...) {
		usage(path...) // a group (or pds) without a command
		usage(append(slices.Clone(path), "no-such-command")...)
	}
	usage("health", "extra-argument")
	usage("account", "takedown")                      // no account named
	usage("account", "untakedown", "x", "--ref", "r") // untakedown takes no reference

	if n := requests.Load(); n != 0 {
		t.Fatalf("help or usage errors sent %d requests to the server", n)
	}
	if ents, _ := os.ReadDir(data); len(ents) != 0 {
		t.Fatalf("help or usage errors wrote to the data directory: %v", ents)
	}
	if after := listDir(t, "."); !slices.Equal(cwdBefore, after) {
		t.Fatalf("help or usage errors wrote to the working directory: %v -> %v", cwdBefore, after)
	}

	// A runtime error exits 1.
	if _, errOut, code := pdsCLI(t, env, "", "account", "list"); code != 1 || !strings.HasPrefix(errOut, "pds account list: ") {
		t.Errorf("runtime error: exit %d %q", code, errOut)
	}
	// Version, completion.
	if out := mustCLI(t, nil, "--version"); !strings.Contains(out, "0.") {
		t.Errorf("--version: %q", out)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if out := mustCLI(t, nil, "completion", sh); !strings.Contains(out, "pds") || len(out) < 200 {
			t.Errorf("completion %s: %q", sh, out)
		}
	}
	out := mustCLI(t, nil, "account", "--generate-shell-completion")
	for _, sub := range []string{"list", "create", "takedown", "export"} {
		if !strings.Contains(out, sub) {
			t.Errorf("completion of `pds account` lacks %s:\n%s", sub, out)
		}
	}
	if out := mustCLI(t, nil, "account", "list", "--", "--generate-shell-completion"); out == "" {
		_ = out // completion after "--" is the shell's business; it must not run the command
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
