package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// parseEnvFile reads the reference PDS's pds.env format (what its installer writes and its compose file loads
// with env_file): KEY=VALUE lines, blank lines and # comments, an optional "export ", values optionally in
// single quotes (taken literally) or double quotes (\n, \", \\ escapes), and " #" starting a comment after an
// unquoted value.
func parseEnvFile(r io.Reader) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || !envKey.MatchString(k) {
			return nil, fmt.Errorf("line %d: want KEY=VALUE, got %q", n, sc.Text())
		}
		v = strings.TrimSpace(v)
		switch {
		case len(v) >= 2 && v[0] == '\'' && strings.IndexByte(v[1:], '\'') == len(v)-2:
			v = v[1 : len(v)-1]
		case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
			v = strings.NewReplacer(`\n`, "\n", `\"`, `"`, `\\`, `\`).Replace(v[1 : len(v)-1])
		case strings.HasPrefix(v, "'") || strings.HasPrefix(v, `"`):
			return nil, fmt.Errorf("line %d: unterminated quote", n)
		default:
			if i := strings.Index(v, " #"); i >= 0 {
				v = strings.TrimSpace(v[:i])
			}
		}
		env[k] = v
	}
	return env, sc.Err()
}

// envLookup is the environment a command sees: the process environment, then the env file (--env-file, else
// PDS_ENV_FILE) for what the environment does not set. A variable set in the environment wins, even if empty.
func (cl *cli) envLookup(envFile string) (func(string) (string, bool), error) {
	lookup := cl.lookupenv
	if lookup == nil {
		getenv := cl.getenv // the current one: withEnvFile replaces cl.getenv
		lookup = func(k string) (string, bool) { v := getenv(k); return v, v != "" }
	}
	if envFile == "" {
		envFile, _ = lookup("PDS_ENV_FILE")
	}
	if envFile == "" {
		return lookup, nil
	}
	f, err := os.Open(envFile)
	if err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	defer f.Close()
	file, err := parseEnvFile(f)
	if err != nil {
		return nil, fmt.Errorf("env file %s: %w", envFile, err)
	}
	return func(k string) (string, bool) {
		if v, ok := lookup(k); ok {
			return v, true
		}
		v, ok := file[k]
		return v, ok
	}, nil
}

// withEnvFile makes the command's environment the process environment plus the env file (see envLookup).
func (cl *cli) withEnvFile(envFile string) error {
	lookup, err := cl.envLookup(envFile)
	if err != nil {
		return err
	}
	cl.lookupenv = lookup
	cl.getenv = func(k string) string { v, _ := lookup(k); return v }
	return nil
}
