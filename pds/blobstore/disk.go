package blobstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
)

// Disk stores blobs as files:
//
//	<dir>/<first 2 hex of sha256(did)>/<did>/<cid>               blobs (sharded like the repositories)
//	<dir>/quarantine/<first 2 hex of sha256(did)>/<did>/<cid>    taken-down blobs
//	<tmp>/<random key>                                           uploads in progress (default <dir>/tmp)
//
// A temporary file is fsynced before it is renamed to its final name and the directory is fsynced after, so a
// crash leaves either the complete blob or none (plus, at worst, a temporary file that CleanTemp removes). When
// the temporary directory is on another file system, Promote copies into the destination directory and renames
// there, keeping the same guarantee.
type Disk struct {
	dir string
	tmp string
}

// NewDisk opens (creating) a disk store in dir; tmpDir "" means <dir>/tmp.
func NewDisk(dir, tmpDir string) (*Disk, error) {
	if tmpDir == "" {
		tmpDir = filepath.Join(dir, "tmp")
	}
	for _, d := range []string{dir, tmpDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("blobstore: %w", err)
		}
	}
	return &Disk{dir: dir, tmp: tmpDir}, nil
}

const quarantineDir = "quarantine"

func shard(did syntax.DID) string {
	h := sha256.Sum256([]byte(did))
	return hex.EncodeToString(h[:1])
}

func (d *Disk) accountDir(did syntax.DID) string {
	return filepath.Join(d.dir, shard(did), did.String())
}
func (d *Disk) quarantineAccountDir(did syntax.DID) string {
	return filepath.Join(d.dir, quarantineDir, shard(did), did.String())
}
func (d *Disk) path(did syntax.DID, c cid.Cid) string {
	return filepath.Join(d.accountDir(did), c.String())
}
func (d *Disk) quarantinePath(did syntax.DID, c cid.Cid) string {
	return filepath.Join(d.quarantineAccountDir(did), c.String())
}

func newTempKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (d *Disk) tempPath(key string) (string, error) {
	if len(key) != 32 || strings.Trim(key, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: temporary key %q", ErrInvalidKey, key)
	}
	return filepath.Join(d.tmp, key), nil
}

func (d *Disk) PutTemp(ctx context.Context, r io.Reader, size int64) (string, error) {
	key := newTempKey()
	path := filepath.Join(d.tmp, key)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return "", err
	}
	_, err = copyBuffered(f, ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", err
	}
	return key, nil
}

// ctxReader stops a copy when the request is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (d *Disk) Promote(ctx context.Context, key string, did syntax.DID, c cid.Cid) error {
	if err := checkDID(did); err != nil {
		return err
	}
	src, err := d.tempPath(key)
	if err != nil {
		return err
	}
	dst := d.path(did, c)
	if err := mkdirAllSync(filepath.Dir(dst)); err != nil {
		return err
	}
	err = os.Rename(src, dst)
	if errors.Is(err, syscall.EXDEV) {
		err = copyThenRename(src, dst)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: temporary object %s", ErrNotFound, key)
		}
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// copyThenRename moves src to dst across file systems: copy into a temporary file beside dst, fsync, rename.
func copyThenRename(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp-" + newTempKey()
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	_, err = copyBuffered(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Remove(src)
}

func (d *Disk) DeleteTemp(ctx context.Context, key string) error {
	path, err := d.tempPath(key)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (d *Disk) CleanTemp(ctx context.Context, cutoff time.Time) (int, error) {
	entries, err := os.ReadDir(d.tmp)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || info.IsDir() || !info.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(d.tmp, e.Name())); err == nil {
			n++
		}
	}
	return n, nil
}

// diskObject is an open blob file.
type diskObject struct {
	*os.File
	size int64
}

func (o diskObject) Size() int64 { return o.size }

func (d *Disk) Open(ctx context.Context, did syntax.DID, c cid.Cid) (Object, error) {
	if err := checkDID(did); err != nil {
		return nil, err
	}
	return openFile(d.path(did, c))
}

func (d *Disk) OpenQuarantined(ctx context.Context, did syntax.DID, c cid.Cid) (Object, error) {
	if err := checkDID(did); err != nil {
		return nil, err
	}
	return openFile(d.quarantinePath(did, c))
}

func openFile(path string) (Object, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return diskObject{File: f, size: info.Size()}, nil
}

func (d *Disk) Stat(ctx context.Context, did syntax.DID, c cid.Cid) (int64, error) {
	if err := checkDID(did); err != nil {
		return 0, err
	}
	info, err := os.Stat(d.path(did, c))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

func (d *Disk) Delete(ctx context.Context, did syntax.DID, c cid.Cid) error {
	if err := checkDID(did); err != nil {
		return err
	}
	for _, p := range []string{d.path(did, c), d.quarantinePath(did, c)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (d *Disk) DeleteAll(ctx context.Context, did syntax.DID) error {
	if err := checkDID(did); err != nil {
		return err
	}
	for _, p := range []string{d.accountDir(did), d.quarantineAccountDir(did)} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

func (d *Disk) Quarantine(ctx context.Context, did syntax.DID, c cid.Cid) error {
	if err := checkDID(did); err != nil {
		return err
	}
	return moveBlob(d.path(did, c), d.quarantinePath(did, c))
}

func (d *Disk) Restore(ctx context.Context, did syntax.DID, c cid.Cid) error {
	if err := checkDID(did); err != nil {
		return err
	}
	return moveBlob(d.quarantinePath(did, c), d.path(did, c))
}

// moveBlob renames from to to; done already (to exists, from does not) is success.
func moveBlob(from, to string) error {
	if err := mkdirAllSync(filepath.Dir(to)); err != nil {
		return err
	}
	err := os.Rename(from, to)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(to); serr == nil {
			return nil
		}
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(to)); err != nil {
		return err
	}
	return syncDir(filepath.Dir(from))
}

func (d *Disk) List(ctx context.Context, fn func(Entry) error) error {
	if err := d.list(ctx, d.dir, false, fn); err != nil {
		return err
	}
	return d.list(ctx, filepath.Join(d.dir, quarantineDir), true, fn)
}

// list walks root/<shard>/<did>/<cid>; names that are not shards, DIDs or CIDs (tmp, quarantine, leftovers of an
// interrupted cross-device copy) are skipped.
func (d *Disk) list(ctx context.Context, root string, quarantined bool, fn func(Entry) error) error {
	shards, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, s := range shards {
		if !s.IsDir() || len(s.Name()) != 2 {
			continue
		}
		accounts, err := os.ReadDir(filepath.Join(root, s.Name()))
		if err != nil {
			return err
		}
		for _, a := range accounts {
			did, err := syntax.ParseDID(a.Name())
			if !a.IsDir() || err != nil || shard(did) != s.Name() {
				continue
			}
			files, err := os.ReadDir(filepath.Join(root, s.Name(), did.String()))
			if err != nil {
				return err
			}
			for _, f := range files {
				if err := ctx.Err(); err != nil {
					return err
				}
				c, err := cid.Decode(f.Name())
				if err != nil || !f.Type().IsRegular() {
					continue
				}
				info, err := f.Info()
				if err != nil {
					continue // deleted meanwhile
				}
				if err := fn(Entry{DID: did, CID: c, Size: info.Size(), Quarantined: quarantined}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// mkdirAllSync creates dir and its missing parents, fsyncing each parent whose entries changed, so a new
// directory survives a crash together with the file renamed into it.
func mkdirAllSync(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSync(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
