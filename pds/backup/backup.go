package backup

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
	"github.com/klauspost/compress/zstd"

	"github.com/pdsgo/pds/internal/sqlitedb"
	"github.com/pdsgo/pds/pds/blobstore"
	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/repo"
)

// The service-wide files of a data directory that a round copies (SQLite ones as snapshots).
const (
	FileAccounts  = "account.sqlite"
	FileSequencer = "sequencer.sqlite"
	FileBlobGC    = "blobgc.sqlite"
	FileSecrets   = "secrets.json"
)

const idFormat = "20060102T150405.000Z"

// Manifest is one round: what it holds and where. Restore needs nothing else (and the key).
type Manifest struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	// Seq is the firehose head the round's copy of the log holds: the next round copies the accounts with
	// events after it.
	Seq      int64                 `json:"seq"`
	Files    map[string]FileRef    `json:"files"`    // FileAccounts, FileBlobGC, FileSecrets
	Log      *LogRef               `json:"log"`      // FileSequencer
	Accounts map[string]AccountRef `json:"accounts"` // by DID
	// Blobs is the number of blob objects the round's accounts refer to (restore's progress total).
	Blobs     int   `json:"blobs"`
	BlobBytes int64 `json:"blobBytes"`
}

// FileRef names an object by the SHA-256 of its plaintext (its key is objects/<SHA256>, with the codec's
// suffix when compressed).
type FileRef struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"` // of the plaintext
	// Codec is how the plaintext was compressed before encryption: CodecZstd, or "" (stored as is: rounds
	// made before compression).
	Codec string `json:"codec,omitempty"`
}

// CodecZstd: the object is the plaintext compressed with zstd, then encrypted. SQLite snapshots compress well
// (a snapshot of an account's repository, mostly page slack and indexes, 49 KB to ~1.3 KB; account.sqlite
// 3.5x), and encryption makes compression impossible later.
const CodecZstd = "zstd"

// Key is the object's key in the store. The codec is part of the name, so the same plaintext stored both ways
// (by an older round and a newer one) is two objects that never stand in for each other.
func (f FileRef) Key() string {
	if f.Codec == CodecZstd {
		return "objects/" + f.SHA256 + ".zst"
	}
	return "objects/" + f.SHA256
}

// LogRef is the firehose log: a copy of the whole log and the segments of events (and recovery state) since.
type LogRef struct {
	Base     FileRef   `json:"base"`
	Segments []FileRef `json:"segments,omitempty"`
}

// maxSegments bounds a log's chain (a day of rounds at the default interval): then the whole log is copied
// again, as when the segments outgrow the copy.
const maxSegments = 1440

// AccountRef is one account's repository in a round: its snapshot, the head's rev, the round that copied it.
type AccountRef struct {
	Rev    string   `json:"rev"`
	Repo   FileRef  `json:"repo"`
	Blobs  []string `json:"blobs,omitempty"` // CIDs of its stored blobs (blobs/<cid>)
	Copied string   `json:"copied"`          // ID of the round that uploaded Repo
}

// RoundInfo is a round as listed (from its key, without decrypting the manifest).
type RoundInfo struct {
	ID   string
	Time time.Time
	Size int64
}

// Stats is what a round cost.
type Stats struct {
	Accounts     int   // accounts in the round
	Copied       int   // repositories copied (changed since the previous round)
	Objects      int   // objects uploaded (manifest included)
	Bytes        int64 // encrypted bytes uploaded
	Blobs        int   // blobs uploaded
	FullScan     bool  // the previous round could not bound the changes (first round, or its events were pruned)
	Duration     time.Duration
	ManifestSize int64
}

// Source is the data directory a round copies.
type Source struct {
	DataDirectory string
	// BlobDirectory is the disk blob store's directory (PDS_BLOBSTORE_DISK_LOCATION); "" when blobs are in S3
	// (not backed up: the bucket has its own durability and versioning).
	BlobDirectory string
}

// Backup is an open backup location with its key.
type Backup struct {
	cfg  *Config
	st   Store
	keys *keyring
	log  *slog.Logger

	mu    sync.Mutex      // one round (or prune) at a time
	known map[string]bool // object and blob keys known to exist (listed once, then kept up to date)
	last  *Manifest
	tmp   string // the round's scratch directory
	// checked: b.last is this process's own round, so the log alone says what changed since.
	checked bool
}

// TempDirName is the data directory's scratch space for rounds: snapshots are as large as the databases, so
// they go on the data directory's file system, not in /tmp (often RAM).
const TempDirName = "backup-tmp"

// roundTemp makes a round's scratch directory, removing those a killed process left (over an hour old: a
// `pds backup now` beside the server may be using its own).
func roundTemp(dataDir string) (string, error) {
	base := filepath.Join(dataDir, TempDirName)
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", err
	}
	if ents, err := os.ReadDir(base); err == nil {
		for _, e := range ents {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
				os.RemoveAll(filepath.Join(base, e.Name()))
			}
		}
	}
	return os.MkdirTemp(base, "round-")
}

// Open opens the backup location. create allows making the passphrase key object (a first round); restore and
// verify pass false, so a wrong URL fails instead of starting a new backup.
func Open(ctx context.Context, cfg *Config, log *slog.Logger, create bool) (*Backup, error) {
	if log == nil {
		log = slog.Default()
	}
	st, err := OpenStore(cfg)
	if err != nil {
		return nil, err
	}
	k, err := openKeyring(ctx, st, cfg.Key, create)
	if err != nil {
		return nil, err
	}
	return &Backup{cfg: cfg, st: st, keys: k, log: log}, nil
}

// Store is the location (tests count and tamper with its objects).
func (b *Backup) Store() Store { return b.st }

// Rounds lists the rounds, oldest first.
func (b *Backup) Rounds(ctx context.Context) ([]RoundInfo, error) {
	var out []RoundInfo
	err := b.st.List(ctx, "rounds/", func(o Object) error {
		id := strings.TrimPrefix(o.Key, "rounds/")
		t, err := time.Parse(idFormat, id)
		if err != nil {
			return nil // not ours
		}
		out = append(out, RoundInfo{ID: id, Time: t, Size: o.Size})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// Find picks a round: the newest one at or before at (zero: the newest of all).
func (b *Backup) Find(ctx context.Context, at time.Time) (string, error) {
	rounds, err := b.Rounds(ctx)
	if err != nil {
		return "", err
	}
	for i := len(rounds) - 1; i >= 0; i-- {
		if at.IsZero() || !rounds[i].Time.After(at) {
			return rounds[i].ID, nil
		}
	}
	if at.IsZero() {
		return "", errors.New("the backup has no rounds")
	}
	return "", fmt.Errorf("the backup has no round at or before %s", at.UTC().Format(time.RFC3339))
}

// Manifest reads and decrypts a round's manifest.
func (b *Backup) Manifest(ctx context.Context, id string) (*Manifest, error) {
	rc, err := b.st.Get(ctx, "rounds/"+id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	d, err := b.keys.decrypt(rc)
	if err != nil {
		return nil, fmt.Errorf("round %s: %w", id, err)
	}
	zr, err := gzip.NewReader(d)
	if err != nil {
		return nil, fmt.Errorf("round %s: %w: %v", id, ErrCorrupt, err)
	}
	var m Manifest
	if err := json.NewDecoder(zr).Decode(&m); err != nil {
		return nil, fmt.Errorf("round %s: %w: %v", id, ErrCorrupt, err)
	}
	if m.ID != id {
		return nil, fmt.Errorf("round %s: %w: the manifest says it is round %s", id, ErrCorrupt, m.ID)
	}
	return &m, nil
}

// loadState lists what the location holds and reads the newest manifest, once per process.
func (b *Backup) loadState(ctx context.Context) error {
	if b.known != nil {
		return nil
	}
	known := map[string]bool{}
	for _, p := range []string{"objects/", "blobs/"} {
		if err := b.st.List(ctx, p, func(o Object) error { known[o.Key] = true; return nil }); err != nil {
			return err
		}
	}
	rounds, err := b.Rounds(ctx)
	if err != nil {
		return err
	}
	if len(rounds) > 0 {
		m, err := b.Manifest(ctx, rounds[len(rounds)-1].ID)
		if err != nil {
			return fmt.Errorf("newest round: %w", err)
		}
		b.last = m
	}
	b.known = known
	return nil
}

// Round backs the data directory up once: the service-wide files, the repositories of the accounts that
// changed since the previous round and their new blobs, then the manifest.
func (b *Backup) Round(ctx context.Context, src Source) (*Manifest, *Stats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	start := time.Now()
	if err := b.loadState(ctx); err != nil {
		return nil, nil, err
	}
	tmp, err := roundTemp(src.DataDirectory)
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	b.tmp = tmp
	st := &Stats{}
	now := time.Now().UTC()
	if b.last != nil && !now.After(b.last.Time) {
		now = b.last.Time.Add(time.Millisecond) // IDs stay increasing if the clock stepped back
	}
	m := &Manifest{Version: 1, ID: now.Format(idFormat), Time: now, Files: map[string]FileRef{}, Accounts: map[string]AccountRef{}}
	dataDir := src.DataDirectory

	// Order matters. account.sqlite first: an account in it has its repository (created before the row).
	// Then the log: its head bounds the changes this round copies, and every account with events after the
	// previous round's head (or new and not in a round yet) is copied after it, so the copies hold at least
	// what the log's copy says was acknowledged.
	if err := b.copySQLite(ctx, m, st, tmp, filepath.Join(dataDir, FileAccounts), FileAccounts, true); err != nil {
		return nil, nil, err
	}
	head, changed, dirty, complete, err := b.copyLog(ctx, m, st, tmp, filepath.Join(dataDir, FileSequencer))
	if err != nil {
		return nil, nil, err
	}
	if err := b.copySQLite(ctx, m, st, tmp, filepath.Join(dataDir, FileBlobGC), FileBlobGC, false); err != nil {
		return nil, nil, err
	}
	if err := b.copyFile(ctx, m, st, filepath.Join(dataDir, FileSecrets), FileSecrets); err != nil {
		return nil, nil, err
	}
	m.Seq = head
	actors := filepath.Join(dataDir, "actors")
	var dids []string
	switch {
	case b.last == nil || !complete:
		st.FullScan = true
		if dids, err = listRepos(actors); err != nil {
			return nil, nil, err
		}
	case !b.checked:
		// The first round of this process continues a round it did not make (an earlier run, `pds backup
		// now`, a server restored from an older round): every repository on disk is compared with the
		// manifest by its head's rev (one read each) and copied only if it differs; accounts gone from disk
		// leave the manifest.
		st.FullScan = true
		all, err := listRepos(actors)
		if err != nil {
			return nil, nil, err
		}
		for _, did := range all {
			if ref, ok := b.last.Accounts[did]; ok {
				if rev, err := repo.HeadRev(ctx, repo.PathIn(actors, syntax.DID(did))); err == nil && rev == ref.Rev {
					m.Accounts[did] = ref
					continue
				}
			}
			dids = append(dids, did)
		}
	default:
		for did, ref := range b.last.Accounts {
			m.Accounts[did] = ref
		}
		for _, did := range changed {
			dids = append(dids, did.String())
		}
		// A dirty account stays dirty until a clean stop: copy it only if no round has it yet (a new signup;
		// its events may not be in the log's copy, its account row already is).
		for _, did := range dirty {
			if _, ok := b.last.Accounts[did.String()]; !ok && !slices.Contains(changed, did) {
				dids = append(dids, did.String())
			}
		}
	}
	var blobs *blobstore.Disk
	if src.BlobDirectory != "" {
		if blobs, err = blobstore.NewDisk(src.BlobDirectory, filepath.Join(tmp, "blobtmp")); err != nil {
			return nil, nil, err
		}
	}
	for _, did := range dids {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		d, err := syntax.ParseDID(did)
		if err != nil {
			continue
		}
		ref, err := b.copyRepo(ctx, st, tmp, actors, d, blobs, m.ID)
		if errors.Is(err, fs.ErrNotExist) {
			delete(m.Accounts, did) // deleted (or a signup that never finished)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("account %s: %w", did, err)
		}
		m.Accounts[did] = *ref
		st.Copied++
	}
	for _, a := range m.Accounts {
		m.Blobs += len(a.Blobs)
	}
	st.Accounts = len(m.Accounts)
	if err := b.putManifest(ctx, m, st); err != nil {
		return nil, nil, err
	}
	b.last, b.checked = m, true
	st.Duration = time.Since(start)
	return m, st, nil
}

// copyLog backs the firehose log up: the events since the previous round as a segment
// (sequencer.ExportSince, one read transaction on the live log), or a whole copy when there is no previous
// round, its events were pruned meanwhile, or the chain has grown past the copy. It returns what the log says
// changed since the previous round.
func (b *Backup) copyLog(ctx context.Context, m *Manifest, st *Stats, tmp, path string) (head int64, changed, dirty []syntax.DID, complete bool, err error) {
	if last := b.last; last != nil && last.Log != nil && len(last.Log.Segments) < maxSegments {
		var chain int64
		for _, s := range last.Log.Segments {
			chain += s.Size
		}
		if chain < last.Log.Base.Size {
			dst := filepath.Join(tmp, "log-segment.sqlite")
			seg, err := sequencer.ExportSince(ctx, path, dst, last.Seq)
			if err != nil {
				return 0, nil, nil, false, fmt.Errorf("log segment: %w", err)
			}
			if seg.Complete && seg.Events == 0 && seg.Head == last.Seq {
				// Nothing was logged since: the log's chain is unchanged (a dirty mark set meanwhile goes with
				// the account's first event).
				m.Log = last.Log
				return seg.Head, nil, seg.Dirty, true, nil
			}
			if seg.Complete {
				ref, err := b.putFile(ctx, st, dst)
				if err != nil {
					return 0, nil, nil, false, fmt.Errorf("log segment: %w", err)
				}
				m.Log = &LogRef{Base: last.Log.Base, Segments: append(slices.Clone(last.Log.Segments), ref)}
				return seg.Head, seg.DIDs, seg.Dirty, true, nil
			}
		}
	}
	copyPath := filepath.Join(tmp, FileSequencer)
	if err := sqlitedb.Snapshot(ctx, path, copyPath); err != nil {
		return 0, nil, nil, false, fmt.Errorf("%s: %w", FileSequencer, err)
	}
	ref, err := b.putFile(ctx, st, copyPath)
	if err != nil {
		return 0, nil, nil, false, fmt.Errorf("%s: %w", FileSequencer, err)
	}
	m.Log = &LogRef{Base: ref}
	after := int64(0)
	if b.last != nil {
		after = b.last.Seq
	}
	head, changed, dirty, complete, err = sequencer.ChangedSince(ctx, copyPath, after)
	if err != nil {
		return 0, nil, nil, false, fmt.Errorf("reading the log's copy: %w", err)
	}
	return head, changed, dirty, complete, nil
}

// listRepos lists every DID with a repository under actors (<shard>/<did>/repo.sqlite).
func listRepos(actors string) ([]string, error) {
	shards, err := os.ReadDir(actors)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range shards {
		if !s.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(actors, s.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() && strings.HasPrefix(e.Name(), "did:") {
				out = append(out, e.Name())
			}
		}
	}
	return out, nil
}

// copyRepo snapshots one account's repository and uploads it and the blobs it lists that the backup lacks.
func (b *Backup) copyRepo(ctx context.Context, st *Stats, tmp, actors string, did syntax.DID, blobs *blobstore.Disk, round string) (*AccountRef, error) {
	path := repo.PathIn(actors, did)
	snap := filepath.Join(tmp, "repo-"+hex.EncodeToString([]byte(did))[:16]+".sqlite")
	defer os.Remove(snap)
	if err := sqlitedb.Snapshot(ctx, path, snap); err != nil {
		return nil, err
	}
	state, err := repo.ReadSnapshot(ctx, snap)
	if err != nil {
		return nil, err
	}
	f, err := b.putFile(ctx, st, snap)
	if err != nil {
		return nil, err
	}
	ref := &AccountRef{Rev: state.Rev, Repo: f, Copied: round}
	for _, c := range state.Blobs {
		if blobs == nil {
			break
		}
		key := "blobs/" + c
		if b.known[key] {
			ref.Blobs = append(ref.Blobs, c)
			continue
		}
		bc, err := cid.Decode(c)
		if err != nil {
			continue
		}
		o, err := blobs.Open(ctx, did, bc)
		if err != nil {
			continue // quarantined (taken down) or collected meanwhile: not in the backup
		}
		n, err := b.putEncrypted(ctx, key, o)
		o.Close()
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", c, err)
		}
		st.Objects++
		st.Blobs++
		st.Bytes += n
		b.known[key] = true
		ref.Blobs = append(ref.Blobs, c)
	}
	return ref, nil
}

// copySQLite snapshots a service-wide database and records it in m (uploaded only if its content is new).
func (b *Backup) copySQLite(ctx context.Context, m *Manifest, st *Stats, tmp, path, name string, required bool) error {
	dst := filepath.Join(tmp, name)
	if err := sqlitedb.Snapshot(ctx, path, dst); err != nil {
		if !required && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	f, err := b.putFile(ctx, st, dst)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	m.Files[name] = f
	return nil
}

func (b *Backup) copyFile(ctx context.Context, m *Manifest, st *Stats, path, name string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil // secrets all come from the environment
	}
	f, err := b.putFile(ctx, st, path)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	m.Files[name] = f
	return nil
}

// putFile uploads a file, compressed, under the SHA-256 of its content, unless the backup already has it.
func (b *Backup) putFile(ctx context.Context, st *Stats, path string) (FileRef, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileRef{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return FileRef{}, err
	}
	ref := FileRef{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, Codec: CodecZstd}
	if b.known[ref.Key()] {
		return ref, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return FileRef{}, err
	}
	pr, pw := io.Pipe()
	go func() {
		zw, err := zstd.NewWriter(pw, zstd.WithEncoderConcurrency(1))
		if err == nil {
			if _, err = io.Copy(zw, f); err != nil {
				zw.Close()
			} else {
				err = zw.Close()
			}
		}
		pw.CloseWithError(err)
	}()
	enc, err := b.putEncrypted(ctx, ref.Key(), pr)
	pr.Close()
	if err != nil {
		return FileRef{}, err
	}
	st.Objects++
	st.Bytes += enc
	b.known[ref.Key()] = true
	return ref, nil
}

// putEncrypted encrypts r into a temporary file (so the upload knows its size) and uploads it.
func (b *Backup) putEncrypted(ctx context.Context, key string, r io.Reader) (int64, error) {
	t, err := os.CreateTemp(b.tmp, "obj-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(t.Name())
	defer t.Close()
	if err := b.keys.encrypt(t, r); err != nil {
		return 0, err
	}
	size, err := t.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	if _, err := t.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if err := b.st.Put(ctx, key, t, size); err != nil {
		return 0, err
	}
	return size, nil
}

func (b *Backup) putManifest(ctx context.Context, m *Manifest, st *Stats) error {
	pr, pw := io.Pipe()
	go func() {
		zw := gzip.NewWriter(pw)
		err := json.NewEncoder(zw).Encode(m)
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	n, err := b.putEncrypted(ctx, "rounds/"+m.ID, pr)
	pr.Close()
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	st.Objects++
	st.Bytes += n
	st.ManifestSize = n
	return nil
}
