package takeover

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/pdsgo/pds/pds"
	"github.com/pdsgo/pds/takeover/refpds"
)

// The reference's secrets go to the data directory's secrets.json, where pds.LoadConfig reads what the
// environment does not set; the field names are pds's secretsFile's.
type secretsFile struct {
	JWTSecret      string `json:"jwtSecret"`
	AdminPassword  string `json:"adminPassword"`
	RotationKeyHex string `json:"plcRotationKeyK256PrivateKeyHex"`
}

var secretNames = map[string]bool{
	"PDS_JWT_SECRET":                            true,
	"PDS_ADMIN_PASSWORD":                        true,
	"PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX": true,
}

// pathNames are the reference's locations: this server keeps everything under its own data directory.
var pathNames = map[string]bool{
	"PDS_DATA_DIRECTORY":              true,
	"PDS_ACCOUNT_DB_LOCATION":         true,
	"PDS_SEQUENCER_DB_LOCATION":       true,
	"PDS_DID_CACHE_DB_LOCATION":       true,
	"PDS_ACTOR_STORE_DIRECTORY":       true,
	"PDS_BLOBSTORE_DISK_LOCATION":     true,
	"PDS_BLOBSTORE_DISK_TMP_LOCATION": true,
}

// settings is what goes into the new directory's pds.env and secrets.json.
type settings struct {
	env     [][2]string // PDS_* settings this server reads, in name order (PDS_DATA_DIRECTORY first)
	secrets secretsFile
	dropped []string // the reference's PDS_* names not carried (this server does not read them, or its own layout replaces them)
	kms     bool     // the rotation key is in AWS KMS: not carried
}

// planSettings decides the new directory's settings from the reference's env file, and checks that they load
// in this server: pds.LoadConfig runs on them (in a scratch directory) and says which names it reads.
func planSettings(env refpds.Env, to string) (*settings, error) {
	s := &settings{secrets: secretsFile{
		JWTSecret:      env["PDS_JWT_SECRET"],
		AdminPassword:  env["PDS_ADMIN_PASSWORD"],
		RotationKeyHex: env["PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX"],
	}}
	if env["PDS_HOSTNAME"] == "" {
		return nil, fmt.Errorf("the env file sets no PDS_HOSTNAME")
	}
	if s.secrets.JWTSecret == "" {
		return nil, fmt.Errorf("the env file sets no PDS_JWT_SECRET (the reference needs one: is it the right file?)")
	}
	if s.secrets.RotationKeyHex == "" && env["PDS_PLC_ROTATION_KEY_KMS_KEY_ID"] != "" {
		s.kms = true
	}
	scratch, err := os.MkdirTemp("", "pds-takeover-config-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	var mu sync.Mutex
	read := map[string]bool{}
	getenv := func(name string) string {
		mu.Lock()
		read[name] = true
		mu.Unlock()
		switch {
		case name == "PDS_DATA_DIRECTORY":
			return scratch
		case pathNames[name]:
			return ""
		}
		return env[name]
	}
	if _, err := pds.LoadConfig(getenv); err != nil {
		return nil, fmt.Errorf("the reference's settings do not load in this server: %w", err)
	}
	abs, err := filepath.Abs(to)
	if err != nil {
		return nil, err
	}
	s.env = append(s.env, [2]string{"PDS_DATA_DIRECTORY", abs})
	var names []string
	for k := range env {
		if strings.HasPrefix(k, "PDS_") {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		switch {
		case secretNames[k]:
		case k == "PDS_DATA_DIRECTORY":
		case pathNames[k] || !read[k]:
			s.dropped = append(s.dropped, k)
		default:
			s.env = append(s.env, [2]string{k, env[k]})
		}
	}
	return s, nil
}

// write writes pds.env and secrets.json into dir (mode 0600: both hold secrets).
func (s *settings) write(dir string) error {
	var b strings.Builder
	b.WriteString("# Written by `pds takeover` from the reference PDS's env file. Secrets are in secrets.json.\n")
	b.WriteString("# Start the server with these settings: set -a; . ./pds.env; set +a; pds serve\n")
	for _, kv := range s.env {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], quoteEnv(kv[1]))
	}
	if err := os.WriteFile(filepath.Join(dir, "pds.env"), []byte(b.String()), 0o600); err != nil {
		return err
	}
	sec := s.secrets
	j, err := json.MarshalIndent(sec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "secrets.json"), j, 0o600)
}

// quoteEnv quotes a value that a shell would otherwise split or expand.
func quoteEnv(v string) string {
	if v != "" && strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:/@%+=") == "" {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}
