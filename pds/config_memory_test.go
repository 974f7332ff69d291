package pds_test

import (
	"testing"

	"github.com/pdsgo/pds/pds"
)

func TestMemoryLimitConfig(t *testing.T) {
	for _, c := range []struct {
		env  string
		want int64
		bad  bool
	}{
		{"", pds.DefaultMemoryLimit, false},
		{"64MiB", 64 << 20, false},
		{"1GiB", 1 << 30, false},
		{"512 KiB", 512 << 10, false},
		{"123456", 123456, false},
		{"100B", 100, false},
		{"off", 0, false},
		{"0", 0, false},
		{"64MB", 0, true},
		{"-1", 0, true},
		{"lots", 0, true},
		{"9000000TiB", 0, true},
	} {
		env := map[string]string{"PDS_DATA_DIRECTORY": t.TempDir(), "PDS_MEMORY_LIMIT": c.env}
		cfg, err := pds.LoadConfig(func(k string) string { return env[k] })
		if c.bad {
			if err == nil {
				t.Errorf("PDS_MEMORY_LIMIT=%q: accepted as %d", c.env, cfg.MemoryLimit)
			}
			continue
		}
		if err != nil {
			t.Errorf("PDS_MEMORY_LIMIT=%q: %v", c.env, err)
		} else if cfg.MemoryLimit != c.want {
			t.Errorf("PDS_MEMORY_LIMIT=%q: %d, want %d", c.env, cfg.MemoryLimit, c.want)
		}
	}
}
