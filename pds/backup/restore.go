package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
	"github.com/klauspost/compress/zstd"

	"github.com/pdsgo/pds/pds/blobstore"
	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/repo"
)

// RestoredMarkerFile, in a restored data directory, makes the next start continue the firehose above every
// seq ever served and announce every account's head with #sync (pds.New), then it is removed.
const RestoredMarkerFile = "restored-from-backup.json"

// RestoredMarker is the content of RestoredMarkerFile.
type RestoredMarker struct {
	Round    string    `json:"round"`
	Seq      int64     `json:"seq"` // the round's firehose head
	Restored time.Time `json:"restored"`
}

// ReadRestoredMarker reports whether dataDir was restored and not started since.
func ReadRestoredMarker(dataDir string) (*RestoredMarker, error) {
	raw, err := os.ReadFile(filepath.Join(dataDir, RestoredMarkerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m RestoredMarker
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", RestoredMarkerFile, err)
	}
	return &m, nil
}

// ClearRestoredMarker removes the marker once the start it asked for is done.
func ClearRestoredMarker(dataDir string) error {
	err := os.Remove(filepath.Join(dataDir, RestoredMarkerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Progress is told how many objects (files, repositories, blobs) of how many a restore has written.
type Progress func(done, total int)

// Restore writes round id into dir (a new or empty directory) as a data directory: the service-wide files,
// actors/ (repositories), blobs/ (the disk blob store), and RestoredMarkerFile. Every object is checked
// against its manifest entry: a wrong key, a missing or a changed object fails the restore.
func (b *Backup) Restore(ctx context.Context, id, dir string, progress Progress) (*Manifest, error) {
	m, err := b.Manifest(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if ents, err := os.ReadDir(dir); err != nil {
		return nil, err
	} else if len(ents) > 0 {
		return nil, fmt.Errorf("%s is not empty: restore into a new directory", dir)
	}
	if m.Log == nil {
		return nil, fmt.Errorf("round %s: %w: no firehose log", id, ErrCorrupt)
	}
	total := len(m.Files) + len(m.Accounts) + 1 + len(m.Log.Segments)
	for _, a := range m.Accounts {
		total += len(a.Blobs)
	}
	done := 0
	report := func() {
		done++
		if progress != nil {
			progress(done, total)
		}
	}
	for name, f := range m.Files {
		if err := b.fetchFile(ctx, f, filepath.Join(dir, name)); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		report()
	}
	if err := b.restoreLog(ctx, m.Log, dir, report); err != nil {
		return nil, err
	}
	actors := filepath.Join(dir, "actors")
	disk, err := blobstore.NewDisk(filepath.Join(dir, "blobs"), "")
	if err != nil {
		return nil, err
	}
	for did, a := range m.Accounts {
		d, err := syntax.ParseDID(did)
		if err != nil {
			return nil, fmt.Errorf("%w: manifest account %q", ErrCorrupt, did)
		}
		path := repo.PathIn(actors, d)
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, err
		}
		if err := b.fetchFile(ctx, a.Repo, path); err != nil {
			return nil, fmt.Errorf("account %s: %w", did, err)
		}
		report()
		for _, c := range a.Blobs {
			if err := b.fetchBlob(ctx, disk, d, c); err != nil {
				return nil, fmt.Errorf("account %s blob %s: %w", did, c, err)
			}
			report()
		}
	}
	raw, _ := json.Marshal(RestoredMarker{Round: m.ID, Seq: m.Seq, Restored: time.Now().UTC()})
	if err := os.WriteFile(filepath.Join(dir, RestoredMarkerFile), raw, 0o600); err != nil {
		return nil, err
	}
	return m, nil
}

// restoreLog writes the firehose log: its copy, with the segments since applied (sequencer.Rebuild).
func (b *Backup) restoreLog(ctx context.Context, l *LogRef, dir string, report func()) error {
	tmp := filepath.Join(dir, TempDirName)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	base := filepath.Join(tmp, "log-base.sqlite")
	if err := b.fetchFile(ctx, l.Base, base); err != nil {
		return fmt.Errorf("%s: %w", FileSequencer, err)
	}
	report()
	var segs []string
	for i, s := range l.Segments {
		p := filepath.Join(tmp, fmt.Sprintf("log-segment-%06d.sqlite", i))
		if err := b.fetchFile(ctx, s, p); err != nil {
			return fmt.Errorf("%s segment %d: %w", FileSequencer, i, err)
		}
		segs = append(segs, p)
		report()
	}
	if err := sequencer.Rebuild(ctx, filepath.Join(dir, FileSequencer), base, segs); err != nil {
		return fmt.Errorf("%s: %w", FileSequencer, err)
	}
	return nil
}

// fetchFile decrypts (and decompresses) an object into path and checks its SHA-256 and size.
func (b *Backup) fetchFile(ctx context.Context, f FileRef, path string) error {
	rc, err := b.st.Get(ctx, f.Key())
	if err != nil {
		return err
	}
	defer rc.Close()
	d, err := b.keys.decrypt(rc)
	if err != nil {
		return err
	}
	switch f.Codec {
	case "":
	case CodecZstd:
		zr, err := zstd.NewReader(d, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return err
		}
		defer zr.Close()
		d = zr
	default:
		return fmt.Errorf("%w: %s has an unknown codec %q", ErrCorrupt, f.Key(), f.Codec)
	}
	out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), d)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 || n != f.Size {
		os.Remove(path)
		return fmt.Errorf("%w: %s has content %s (%d bytes)", ErrCorrupt, f.Key(), got, n)
	}
	return nil
}

// fetchBlob decrypts a blob into the disk store; the store checks its content against its CID.
func (b *Backup) fetchBlob(ctx context.Context, disk *blobstore.Disk, did syntax.DID, c string) error {
	want, err := cid.Decode(c)
	if err != nil {
		return fmt.Errorf("%w: blob name %q", ErrCorrupt, c)
	}
	if _, err := disk.Stat(ctx, did, want); err == nil {
		return nil
	}
	rc, err := b.st.Get(ctx, "blobs/"+c)
	if err != nil {
		return err
	}
	defer rc.Close()
	d, err := b.keys.decrypt(rc)
	if err != nil {
		return err
	}
	tmp, err := blobstore.Put(ctx, disk, d, -1, -1)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if !tmp.CID.Equals(want) {
		disk.DeleteTemp(ctx, tmp.Key)
		return fmt.Errorf("%w: blobs/%s has the content of %s", ErrCorrupt, c, tmp.CID)
	}
	return disk.Promote(ctx, tmp.Key, did, want)
}
