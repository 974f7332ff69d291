package pds

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultMemoryLimit is PDS_MEMORY_LIMIT's default: the Go runtime's soft memory limit, applied by cmd/pds.
const DefaultMemoryLimit = 64 << 20

// loadMemoryLimit reads PDS_MEMORY_LIMIT (called by LoadConfig): a byte count with an optional IEC unit, as
// GOMEMLIMIT takes it ("64MiB", "1GiB", "67108864"); "off" or 0 sets none.
func (c *Config) loadMemoryLimit(getenv Getenv) error {
	c.MemoryLimit = DefaultMemoryLimit
	v := strings.TrimSpace(getenv("PDS_MEMORY_LIMIT"))
	if v == "" {
		return nil
	}
	if strings.EqualFold(v, "off") {
		c.MemoryLimit = 0
		return nil
	}
	n, err := parseByteSize(v)
	if err != nil {
		return fmt.Errorf("PDS_MEMORY_LIMIT: %w", err)
	}
	c.MemoryLimit = n
	return nil
}

// parseByteSize parses a non-negative byte count with an optional unit: B, KiB, MiB, GiB or TiB.
func parseByteSize(v string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	num, shift := v, uint(0)
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			num, shift = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<63-1)>>shift {
		return 0, fmt.Errorf("not a byte count (e.g. 64MiB, 1GiB, 67108864): %q", v)
	}
	return n << shift, nil
}
