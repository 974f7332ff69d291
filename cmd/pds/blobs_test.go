package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"

	"github.com/pdsgo/pds/pds/blobstore"
)

// TestCLIBlobsMigrate moves a data directory's blobs to an S3 bucket and back to another directory with
// `pds blobs migrate`, interrupted-free and then resumed (a second run copies nothing).
func TestCLIBlobsMigrate(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	s3srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(s3srv.Close)
	env := map[string]string{
		"PDS_DATA_DIRECTORY":                 data,
		"PDS_BLOBSTORE_S3_BUCKET":            "migrated",
		"PDS_BLOBSTORE_S3_ENDPOINT":          s3srv.URL,
		"PDS_BLOBSTORE_S3_FORCE_PATH_STYLE":  "true",
		"PDS_BLOBSTORE_S3_ACCESS_KEY_ID":     "k",
		"PDS_BLOBSTORE_S3_SECRET_ACCESS_KEY": "s",
	}
	s3, err := blobstore.NewS3(blobstore.S3Config{Bucket: "migrated", Endpoint: s3srv.URL, ForcePathStyle: true, AccessKeyID: "k", SecretAccessKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.Client().MakeBucket(ctx, "migrated", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}

	disk, err := blobstore.NewDisk(filepath.Join(data, "blobs"), "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for i := range 6 {
		content := []byte(strings.Repeat(fmt.Sprint("blob ", i, " "), 1000+i))
		did := syntax.DID(fmt.Sprintf("did:plc:account%018d", i%2))
		tmp, err := blobstore.Put(ctx, disk, bytes.NewReader(content), -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		if err := disk.Promote(ctx, tmp.Key, did, tmp.CID); err != nil {
			t.Fatal(err)
		}
		want[did.String()+"/"+tmp.CID.String()] = content
	}

	out, progress, code := pdsCLI(t, env, "", "blobs", "migrate", "disk", "s3")
	t.Logf("progress output:\n%s", progress)
	if code != 0 || !strings.Contains(progress, "[##############################] 100% 6/6 blobs") {
		t.Fatalf("first run: exit %d, progress %q", code, progress)
	}
	if !strings.Contains(out, "6 blobs") || !strings.Contains(out, "6 copied, 0 already there, 0 failed") {
		t.Fatalf("first run: %s", out)
	}
	out = mustCLI(t, env, "blobs", "migrate", "disk", "s3", "--verify")
	if !strings.Contains(out, "0 copied, 6 already there") {
		t.Fatalf("second run: %s", out)
	}
	back := filepath.Join(t.TempDir(), "back")
	mustCLI(t, env, "blobs", "migrate", "s3", "disk:"+back)
	backStore, _ := blobstore.NewDisk(back, "")
	n := 0
	if err := backStore.List(ctx, func(e blobstore.Entry) error {
		obj, err := backStore.Open(ctx, e.DID, e.CID)
		if err != nil {
			return err
		}
		defer obj.Close()
		var buf bytes.Buffer
		buf.ReadFrom(obj)
		if !bytes.Equal(buf.Bytes(), want[e.DID.String()+"/"+e.CID.String()]) {
			return fmt.Errorf("blob %s differs after disk -> s3 -> disk", e.CID)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Fatalf("%d blobs arrived, want 6", n)
	}

	// Mistakes are refused before anything is copied.
	for _, args := range [][]string{
		{"blobs", "migrate", "disk"},
		{"blobs", "migrate", "disk", "disk"},
		{"blobs", "migrate", "disk", "ftp"},
	} {
		if _, _, code := pdsCLI(t, env, "", args...); code == 0 {
			t.Errorf("pds %s succeeded", strings.Join(args, " "))
		}
	}
	noS3 := map[string]string{"PDS_DATA_DIRECTORY": data}
	if _, errOut, code := pdsCLI(t, noS3, "", "blobs", "migrate", "disk", "s3"); code == 0 || !strings.Contains(errOut, "PDS_BLOBSTORE_S3_BUCKET") {
		t.Errorf("s3 without a bucket: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(data, "blobs")); err != nil {
		t.Fatal(err)
	}
}
