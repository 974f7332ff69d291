package blobstore_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"

	"github.com/pdsgo/pds/pds/blobstore"
)

// s3Target is the S3 server the S3 tests talk to: by default an in-process gofakes3 on a loopback socket; with
// PDS_TEST_S3_ENDPOINT set (scripts/s3-seaweedfs.sh), a real one.
type s3Target struct {
	cfg     blobstore.S3Config
	buckets atomic.Int64
}

func newS3Target(t *testing.T) *s3Target {
	if ep := os.Getenv("PDS_TEST_S3_ENDPOINT"); ep != "" {
		t.Logf("S3 tests against %s", ep)
		return &s3Target{cfg: blobstore.S3Config{
			Endpoint:        ep,
			Bucket:          os.Getenv("PDS_TEST_S3_BUCKET"),
			Region:          os.Getenv("PDS_TEST_S3_REGION"),
			AccessKeyID:     os.Getenv("PDS_TEST_S3_ACCESS_KEY_ID"),
			SecretAccessKey: os.Getenv("PDS_TEST_S3_SECRET_ACCESS_KEY"),
			ForcePathStyle:  true,
		}}
	}
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	return &s3Target{cfg: blobstore.S3Config{
		Endpoint:        srv.URL,
		Bucket:          "pds-test",
		Region:          "us-east-1",
		AccessKeyID:     "test",
		SecretAccessKey: "test-secret",
		ForcePathStyle:  true,
	}}
}

// backend returns an S3 backend on a new, empty bucket.
func (s *s3Target) backend(t *testing.T) *blobstore.S3 {
	t.Helper()
	cfg := s.cfg
	cfg.Bucket = fmt.Sprintf("%s-%d", cfg.Bucket, s.buckets.Add(1))
	b, err := blobstore.NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Client().MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
		t.Fatalf("creating bucket %s: %v", cfg.Bucket, err)
	}
	t.Cleanup(func() {
		// Empty and drop the bucket (matters on a real server).
		b.List(ctx, func(e blobstore.Entry) error { return b.Delete(ctx, e.DID, e.CID) })
		b.CleanTemp(ctx, farFuture)
		b.Client().RemoveBucket(ctx, cfg.Bucket)
	})
	return b
}

func TestS3Backend(t *testing.T) {
	target := newS3Target(t)
	testBackend(t, func(t *testing.T) blobstore.Backend { return target.backend(t) })
}

func TestS3Config(t *testing.T) {
	for _, ep := range []string{"ftp://x", "127.0.0.1:9000", "http://"} {
		if _, err := blobstore.NewS3(blobstore.S3Config{Bucket: "b", Endpoint: ep}); err == nil {
			t.Errorf("endpoint %q accepted", ep)
		}
	}
	if _, err := blobstore.NewS3(blobstore.S3Config{}); err == nil {
		t.Error("no bucket accepted")
	}
	if _, err := blobstore.NewS3(blobstore.S3Config{Bucket: "b", Region: "eu-west-3"}); err != nil {
		t.Errorf("AWS default endpoint: %v", err)
	}
}
