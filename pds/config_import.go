package pds

import (
	"fmt"
	"strconv"
)

const defaultMaxRepoImportSize = 1 << 30

// loadImportConfig reads the import settings (called by LoadConfig).
func (c *Config) loadImportConfig(getenv Getenv) error {
	var err error
	if c.AcceptingRepoImports, err = boolEnv(getenv, "PDS_ACCEPTING_REPO_IMPORTS", true); err != nil {
		return err
	}
	c.MaxRepoImportSize = defaultMaxRepoImportSize
	if v := getenv("PDS_MAX_REPO_IMPORT_SIZE"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("PDS_MAX_REPO_IMPORT_SIZE: not a byte count: %q", v)
		}
		c.MaxRepoImportSize = n
	}
	return nil
}
