package blobstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/pds/blobstore"
)

const (
	alice = "did:plc:aliceaaaaaaaaaaaaaaaaaaa"
	bob   = "did:plc:bobbbbbbbbbbbbbbbbbbbbbb"
)

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// store puts data as did's blob and returns its CID.
func store(t *testing.T, b blobstore.Backend, did syntax.DID, data []byte) cid.Cid {
	t.Helper()
	ctx := context.Background()
	// Half the time with the length announced (an HTTP Content-Length), half without (chunked).
	size := int64(-1)
	if len(data)%2 == 0 {
		size = int64(len(data))
	}
	tmp, err := blobstore.Put(ctx, b, bytes.NewReader(data), size, -1)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if want := blobstore.CIDOf(data); !tmp.CID.Equals(want) {
		t.Fatalf("Put CID %s, want %s", tmp.CID, want)
	}
	if tmp.Size != int64(len(data)) {
		t.Fatalf("Put size %d, want %d", tmp.Size, len(data))
	}
	if err := b.Promote(ctx, tmp.Key, did, tmp.CID); err != nil {
		t.Fatalf("Promote: %v", err)
	}
	return tmp.CID
}

func readAll(t *testing.T, b blobstore.Backend, did syntax.DID, c cid.Cid) []byte {
	t.Helper()
	obj, err := b.Open(context.Background(), did, c)
	if err != nil {
		t.Fatalf("Open %s: %v", c, err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("reading %s: %v", c, err)
	}
	if obj.Size() != int64(len(data)) {
		t.Fatalf("Size() %d, read %d bytes", obj.Size(), len(data))
	}
	return data
}

func list(t *testing.T, b blobstore.Backend) []blobstore.Entry {
	t.Helper()
	var out []blobstore.Entry
	if err := b.List(context.Background(), func(e blobstore.Entry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].DID != out[j].DID {
			return out[i].DID < out[j].DID
		}
		return out[i].CID.String() < out[j].CID.String()
	})
	return out
}

// noTemps checks that no temporary object is left behind.
func noTemps(t *testing.T, b blobstore.Backend) {
	t.Helper()
	n, err := b.CleanTemp(context.Background(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d temporary objects were left behind", n)
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// testBackend is the suite every backend passes.
func testBackend(t *testing.T, newBackend func(t *testing.T) blobstore.Backend) {
	ctx := context.Background()

	t.Run("PutOpenStat", func(t *testing.T) {
		b := newBackend(t)
		data := randomBytes(1, 3000)
		c := store(t, b, alice, data)
		if got := readAll(t, b, alice, c); !bytes.Equal(got, data) {
			t.Fatal("content differs")
		}
		if n, err := b.Stat(ctx, alice, c); err != nil || n != 3000 {
			t.Fatalf("Stat = %d, %v", n, err)
		}
		// Blobs belong to an account.
		if _, err := b.Open(ctx, bob, c); !errors.Is(err, blobstore.ErrNotFound) {
			t.Fatalf("other account's Open: %v, want ErrNotFound", err)
		}
		if _, err := b.Stat(ctx, bob, c); !errors.Is(err, blobstore.ErrNotFound) {
			t.Fatalf("other account's Stat: %v, want ErrNotFound", err)
		}
		noTemps(t, b)
	})

	t.Run("HeadAndEmpty", func(t *testing.T) {
		b := newBackend(t)
		data := randomBytes(2, 2000)
		tmp, err := blobstore.Put(ctx, b, bytes.NewReader(data), -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tmp.Head, data[:blobstore.SniffLen]) {
			t.Fatalf("Head is %d bytes, not the first %d of the content", len(tmp.Head), blobstore.SniffLen)
		}
		if err := b.DeleteTemp(ctx, tmp.Key); err != nil {
			t.Fatal(err)
		}
		noTemps(t, b)

		c := store(t, b, alice, nil)
		if c.String() != "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku" {
			t.Fatalf("empty blob CID %s", c)
		}
		if got := readAll(t, b, alice, c); len(got) != 0 {
			t.Fatalf("empty blob read %d bytes", len(got))
		}
	})

	t.Run("LimitAndReaderFailure", func(t *testing.T) {
		b := newBackend(t)
		data := randomBytes(3, 100)
		if _, err := blobstore.Put(ctx, b, bytes.NewReader(data), -1, 99); !errors.Is(err, blobstore.ErrTooLarge) {
			t.Fatalf("over the limit: %v, want ErrTooLarge", err)
		}
		if tmp, err := blobstore.Put(ctx, b, bytes.NewReader(data), -1, 100); err != nil || tmp.Size != 100 {
			t.Fatalf("at the limit: %v", err)
		} else {
			b.DeleteTemp(ctx, tmp.Key)
		}
		if _, err := blobstore.Put(ctx, b, bytes.NewReader(data), 100, 99); !errors.Is(err, blobstore.ErrTooLarge) {
			t.Fatalf("announced over the limit: %v, want ErrTooLarge", err)
		}
		var be *blobstore.BodyError
		if _, err := blobstore.Put(ctx, b, bytes.NewReader(data), 101, -1); !errors.As(err, &be) {
			t.Fatalf("shorter than announced: %v, want a BodyError", err)
		}
		if _, err := blobstore.Put(ctx, b, bytes.NewReader(data), 99, -1); !errors.As(err, &be) {
			t.Fatalf("longer than announced: %v, want a BodyError", err)
		}
		boom := errors.New("client went away")
		_, err := blobstore.Put(ctx, b, &failingReader{data: data, err: boom}, -1, -1)
		if !errors.Is(err, boom) || !errors.As(err, &be) {
			t.Fatalf("failing reader: %v, want a BodyError wrapping it", err)
		}
		noTemps(t, b)
	})

	t.Run("SeekAndServeRange", func(t *testing.T) {
		b := newBackend(t)
		data := randomBytes(4, 100_000)
		c := store(t, b, alice, data)
		obj, err := b.Open(ctx, alice, c)
		if err != nil {
			t.Fatal(err)
		}
		defer obj.Close()
		head := make([]byte, 10)
		if _, err := io.ReadFull(obj, head); err != nil || !bytes.Equal(head, data[:10]) {
			t.Fatalf("first read: %v", err)
		}
		if pos, err := obj.Seek(50_000, io.SeekStart); err != nil || pos != 50_000 {
			t.Fatalf("Seek: %d, %v", pos, err)
		}
		mid := make([]byte, 1000)
		if _, err := io.ReadFull(obj, mid); err != nil || !bytes.Equal(mid, data[50_000:51_000]) {
			t.Fatalf("read after seek: %v", err)
		}
		if pos, err := obj.Seek(-10, io.SeekEnd); err != nil || pos != 99_990 {
			t.Fatalf("Seek end: %d, %v", pos, err)
		}
		tail, err := io.ReadAll(obj)
		if err != nil || !bytes.Equal(tail, data[99_990:]) {
			t.Fatalf("tail: %v", err)
		}

		obj2, err := b.Open(ctx, alice, c)
		if err != nil {
			t.Fatal(err)
		}
		defer obj2.Close()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Range", "bytes=1000-1999")
		rec := httptest.NewRecorder()
		http.ServeContent(rec, req, "", time.Time{}, obj2)
		if rec.Code != http.StatusPartialContent || rec.Header().Get("Content-Range") != "bytes 1000-1999/100000" {
			t.Fatalf("ServeContent range: %d %q", rec.Code, rec.Header().Get("Content-Range"))
		}
		if !bytes.Equal(rec.Body.Bytes(), data[1000:2000]) {
			t.Fatal("ranged body differs")
		}
	})

	t.Run("PromoteTwiceStoresOnce", func(t *testing.T) {
		b := newBackend(t)
		data := randomBytes(5, 5000)
		c1 := store(t, b, alice, data)
		c2 := store(t, b, alice, data)
		if !c1.Equals(c2) {
			t.Fatal("same content, different CIDs")
		}
		store(t, b, bob, data)
		entries := list(t, b)
		if len(entries) != 2 || entries[0].DID != alice || entries[1].DID != bob || entries[0].Size != 5000 {
			t.Fatalf("List = %+v, want one blob per account", entries)
		}
		if err := b.Promote(ctx, "0123456789abcdef0123456789abcdef", alice, c1); !errors.Is(err, blobstore.ErrNotFound) {
			t.Fatalf("Promote of an unknown temporary key: %v", err)
		}
		noTemps(t, b)
	})

	t.Run("ConcurrentSameContent", func(t *testing.T) {
		b := newBackend(t)
		data := randomBytes(6, 20_000)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tmp, err := blobstore.Put(ctx, b, bytes.NewReader(data), -1, -1)
				if err == nil {
					err = b.Promote(ctx, tmp.Key, alice, tmp.CID)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := readAll(t, b, alice, blobstore.CIDOf(data)); !bytes.Equal(got, data) {
			t.Fatal("content differs after concurrent writes")
		}
		if n := len(list(t, b)); n != 1 {
			t.Fatalf("%d blobs listed, want 1", n)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		b := newBackend(t)
		c := store(t, b, alice, randomBytes(7, 100))
		keep := store(t, b, alice, randomBytes(8, 100))
		if err := b.Delete(ctx, alice, c); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Open(ctx, alice, c); !errors.Is(err, blobstore.ErrNotFound) {
			t.Fatalf("Open after Delete: %v", err)
		}
		if err := b.Delete(ctx, alice, c); err != nil {
			t.Fatalf("deleting twice: %v", err)
		}
		readAll(t, b, alice, keep)
	})

	t.Run("QuarantineRestore", func(t *testing.T) {
		b := newBackend(t)
		data := randomBytes(9, 700)
		c := store(t, b, alice, data)
		if err := b.Quarantine(ctx, alice, c); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Open(ctx, alice, c); !errors.Is(err, blobstore.ErrNotFound) {
			t.Fatalf("Open of a quarantined blob: %v, want ErrNotFound", err)
		}
		if _, err := b.Stat(ctx, alice, c); !errors.Is(err, blobstore.ErrNotFound) {
			t.Fatalf("Stat of a quarantined blob: %v, want ErrNotFound", err)
		}
		q, err := b.OpenQuarantined(ctx, alice, c)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(q)
		q.Close()
		if !bytes.Equal(got, data) {
			t.Fatal("quarantined content differs")
		}
		if err := b.Quarantine(ctx, alice, c); err != nil {
			t.Fatalf("quarantining twice: %v", err)
		}
		if e := list(t, b); len(e) != 1 || !e[0].Quarantined {
			t.Fatalf("List = %+v, want the blob marked quarantined", e)
		}
		if err := b.Restore(ctx, alice, c); err != nil {
			t.Fatal(err)
		}
		if err := b.Restore(ctx, alice, c); err != nil {
			t.Fatalf("restoring twice: %v", err)
		}
		if got := readAll(t, b, alice, c); !bytes.Equal(got, data) {
			t.Fatal("restored content differs")
		}
		missing := blobstore.CIDOf([]byte("never stored"))
		if err := b.Quarantine(ctx, alice, missing); !errors.Is(err, blobstore.ErrNotFound) {
			t.Fatalf("quarantining a missing blob: %v", err)
		}
		if err := b.Restore(ctx, alice, missing); !errors.Is(err, blobstore.ErrNotFound) {
			t.Fatalf("restoring a missing blob: %v", err)
		}
		// Delete removes a quarantined blob too.
		if err := b.Quarantine(ctx, alice, c); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(ctx, alice, c); err != nil {
			t.Fatal(err)
		}
		if e := list(t, b); len(e) != 0 {
			t.Fatalf("List after deleting a quarantined blob = %+v", e)
		}
	})

	t.Run("DeleteAll", func(t *testing.T) {
		b := newBackend(t)
		for i := range 3 {
			store(t, b, alice, randomBytes(uint64(10+i), 100))
		}
		q := store(t, b, alice, randomBytes(20, 100))
		if err := b.Quarantine(ctx, alice, q); err != nil {
			t.Fatal(err)
		}
		kept := store(t, b, bob, randomBytes(21, 100))
		if err := b.DeleteAll(ctx, alice); err != nil {
			t.Fatal(err)
		}
		e := list(t, b)
		if len(e) != 1 || e[0].DID != bob || !e[0].CID.Equals(kept) {
			t.Fatalf("List after DeleteAll = %+v", e)
		}
	})

	t.Run("CleanTemp", func(t *testing.T) {
		b := newBackend(t)
		key, err := b.PutTemp(ctx, bytes.NewReader([]byte("abandoned upload")), -1)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := b.CleanTemp(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
			t.Fatalf("CleanTemp of recent uploads removed %d, %v", n, err)
		}
		if n, err := b.CleanTemp(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("CleanTemp removed %d, %v; want 1", n, err)
		}
		if err := b.Promote(ctx, key, alice, blobstore.CIDOf([]byte("abandoned upload"))); !errors.Is(err, blobstore.ErrNotFound) {
			t.Fatalf("Promote after CleanTemp: %v, want ErrNotFound", err)
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		b := newBackend(t)
		c := blobstore.CIDOf([]byte("x"))
		for _, did := range []syntax.DID{"", "../etc", "did:plc:a/b", "alice"} {
			if _, err := b.Open(ctx, did, c); !errors.Is(err, blobstore.ErrInvalidKey) {
				t.Errorf("Open(%q): %v, want ErrInvalidKey", did, err)
			}
			if err := b.Delete(ctx, did, c); !errors.Is(err, blobstore.ErrInvalidKey) {
				t.Errorf("Delete(%q): %v, want ErrInvalidKey", did, err)
			}
		}
		for _, key := range []string{"", "../../x", "0123456789abcdef0123456789abcdeZ"} {
			if err := b.Promote(ctx, key, alice, c); !errors.Is(err, blobstore.ErrInvalidKey) {
				t.Errorf("Promote(%q): %v, want ErrInvalidKey", key, err)
			}
		}
	})

	t.Run("Large", func(t *testing.T) {
		// Larger than the S3 part size, so the multipart path is taken.
		b := newBackend(t)
		data := randomBytes(30, 12<<20+123)
		c := store(t, b, alice, data)
		got := readAll(t, b, alice, c)
		if sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatal("large blob content differs")
		}
		noTemps(t, b)
	})
}

func TestDiskBackend(t *testing.T) {
	testBackend(t, func(t *testing.T) blobstore.Backend {
		d, err := blobstore.NewDisk(t.TempDir(), "")
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func TestDiskLayoutAndCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := blobstore.NewDisk(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello blob")
	c := store(t, d, alice, data)
	h := sha256.Sum256([]byte(alice))
	want := filepath.Join(dir, fmt.Sprintf("%x", h[:1]), alice, c.String())
	if got, err := os.ReadFile(want); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob not at %s: %v", want, err)
	}
	// What a crash can leave: a temporary upload, and a half-copied file beside a blob (cross-device Promote).
	// Neither is ever a blob.
	if err := os.WriteFile(filepath.Join(dir, "tmp", "0123456789abcdef0123456789abcdef"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(want+".tmp-0123", []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if e := list(t, d); len(e) != 1 || !e[0].CID.Equals(c) {
		t.Fatalf("List = %+v, want only the blob", e)
	}
	if n, err := d.CleanTemp(ctx, time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("CleanTemp: %d, %v", n, err)
	}
}

// TestDiskCrossDevice puts the temporary directory on another file system (/dev/shm, a tmpfs), so Promote cannot
// rename and must copy into the destination directory.
func TestDiskCrossDevice(t *testing.T) {
	dir := t.TempDir()
	shm, err := os.MkdirTemp("/dev/shm", "blobtmp")
	if err != nil {
		t.Fatalf("this test needs a writable /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	var a, b syscall.Stat_t
	if err := syscall.Stat(dir, &a); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(shm, &b); err != nil {
		t.Fatal(err)
	}
	if a.Dev == b.Dev {
		t.Fatalf("/dev/shm is on the same device as %s: the cross-device path would not be exercised", dir)
	}
	d, err := blobstore.NewDisk(dir, shm)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(40, 300_000)
	c := store(t, d, alice, data)
	if got := readAll(t, d, alice, c); !bytes.Equal(got, data) {
		t.Fatal("content differs after a cross-device promote")
	}
	left, _ := os.ReadDir(shm)
	if len(left) != 0 {
		t.Fatalf("%d files left in the temporary directory", len(left))
	}
}

func TestDetectMIME(t *testing.T) {
	ftyp := func(brand string) []byte {
		b := []byte("\x00\x00\x00\x18ftyp" + brand + "\x00\x00\x00\x00isommp41")
		return b
	}
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	cases := []struct {
		head []byte
		want string
	}{
		{png, "image/png"},
		{[]byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), "image/jpeg"},
		{[]byte("GIF89a......"), "image/gif"},
		{[]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), "image/webp"},
		{ftyp("isom"), "video/mp4"},
		{ftyp("mp42"), "video/mp4"},
		{ftyp("qt  "), "video/quicktime"},
		{ftyp("avif"), "image/avif"},
		{ftyp("heic"), "image/heic"},
		{ftyp("mif1"), "image/heif"},
		{ftyp("M4V "), "video/x-m4v"},
		{ftyp("3gp5"), "video/3gpp"},
		{[]byte("\x1a\x45\xdf\xa3\x01\x00\x00\x00"), "video/webm"},
		{[]byte("II*\x00\x08\x00\x00\x00"), "image/tiff"},
		{[]byte("%PDF-1.7\n"), "application/pdf"},
		// Text is never sniffed: the declared type is kept.
		{[]byte(`<svg xmlns="http://www.w3.org/2000/svg"></svg>`), ""},
		{[]byte(`<?xml version="1.0"?><svg/>`), ""},
		{[]byte(`{"a": 1}`), ""},
		{[]byte("<html><body>hi</body></html>"), ""},
		{[]byte("plain words"), ""},
		{nil, ""},
		{[]byte{0x00, 0x01, 0x02, 0x03, 0x99}, ""},
	}
	for _, tc := range cases {
		if got := blobstore.DetectMIME(tc.head); got != tc.want {
			t.Errorf("DetectMIME(%q) = %q, want %q", tc.head, got, tc.want)
		}
	}
	for in, want := range map[string]string{
		"image/PNG":                 "image/png",
		"text/plain; charset=utf-8": "text/plain",
		"*/*":                       "",
		"image/*":                   "",
		"":                          "",
		"garbage":                   "",
	} {
		if got := blobstore.NormalizeMIME(in); got != want {
			t.Errorf("NormalizeMIME(%q) = %q, want %q", in, got, want)
		}
	}
	if !strings.HasPrefix(blobstore.CIDOf(png).String(), "bafkrei") {
		t.Error("blob CIDs are CIDv1 raw sha2-256 (bafkrei...)")
	}
}
