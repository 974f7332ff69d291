package pds

import (
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pdsgo/pds/pds/blobstore"
)

const (
	defaultBlobUploadLimit = 100 << 20
	defaultBlobTempExpiry  = time.Hour
	defaultBlobGCGrace     = time.Hour
)

// loadBlobConfig reads the blob settings (called by LoadConfig).
func (c *Config) loadBlobConfig(getenv Getenv) error {
	c.BlobUploadLimit = defaultBlobUploadLimit
	if v := getenv("PDS_BLOB_UPLOAD_LIMIT"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("PDS_BLOB_UPLOAD_LIMIT: not a byte count: %q", v)
		}
		c.BlobUploadLimit = n
	}
	c.BlobstoreDisk = or(getenv("PDS_BLOBSTORE_DISK_LOCATION"), filepath.Join(c.DataDirectory, "blobs"))
	c.BlobstoreDiskTmp = or(getenv("PDS_BLOBSTORE_DISK_TMP_LOCATION"), filepath.Join(c.BlobstoreDisk, "tmp"))
	var err error
	if c.BlobTempExpiry, err = msEnv(getenv, "PDS_BLOB_TEMP_EXPIRY_MS", defaultBlobTempExpiry); err != nil {
		return err
	}
	if c.BlobGCGrace, err = msEnv(getenv, "PDS_BLOB_GC_GRACE_MS", defaultBlobGCGrace); err != nil {
		return err
	}
	if bucket := getenv("PDS_BLOBSTORE_S3_BUCKET"); bucket != "" {
		s3 := &blobstore.S3Config{
			Bucket:          bucket,
			Region:          getenv("PDS_BLOBSTORE_S3_REGION"),
			Endpoint:        getenv("PDS_BLOBSTORE_S3_ENDPOINT"),
			AccessKeyID:     getenv("PDS_BLOBSTORE_S3_ACCESS_KEY_ID"),
			SecretAccessKey: getenv("PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY"),
		}
		if s3.ForcePathStyle, err = boolEnv(getenv, "PDS_BLOBSTORE_S3_FORCE_PATH_STYLE", false); err != nil {
			return err
		}
		// The reference bounds a whole upload by 10 s by default, too short for a large video on a slow link.
		if s3.UploadTimeout, err = msEnv(getenv, "PDS_BLOBSTORE_S3_UPLOAD_TIMEOUT_MS", 10*time.Minute); err != nil {
			return err
		}
		c.BlobstoreS3 = s3
	}
	return nil
}

// msEnv reads a duration in milliseconds; unset is def, 0 is allowed (tests collect at once).
func msEnv(getenv Getenv, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: not a number of milliseconds: %q", name, v)
	}
	return time.Duration(n) * time.Millisecond, nil
}

// OpenBlobstore opens the backend the configuration selects: S3 when a bucket is set, else the disk.
func OpenBlobstore(cfg *Config) (blobstore.Backend, error) {
	if cfg.BlobstoreS3 != nil {
		return blobstore.NewS3(*cfg.BlobstoreS3)
	}
	return blobstore.NewDisk(cfg.BlobstoreDisk, cfg.BlobstoreDiskTmp)
}
