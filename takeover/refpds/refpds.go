package refpds

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	_ "modernc.org/sqlite" // driver "sqlite"

	"github.com/pdsgo/pds/internal/sqlitedb"
)

// Version is the reference release whose schema this package reads.
const Version = "@atproto/pds 0.5.35"

// KnownMigrations are the Kysely migrations (table kysely_migration) each database of Version has, in order.
// Of the releases on the npm registry, 0.4.217 to 0.5.35 have exactly these; 0.4.122 has account.sqlite's
// 001-004 only (no OAuth account management, permission sets or lexicon index), and is refused.
var KnownMigrations = map[string][]string{
	"account.sqlite":   {"001", "002", "003", "004", "005", "006", "007"},
	"sequencer.sqlite": {"001"},
	"store.sqlite":     {"001"},
}

var (
	// ErrMissing: a file or directory the reference keeps is not there.
	ErrMissing = errors.New("missing from the reference data directory")
	// ErrSchema: a database was not written by the schema this package reads.
	ErrSchema = errors.New("unknown reference schema")
	// ErrRunning: the reference seems to be running (or did not stop cleanly).
	ErrRunning = errors.New("the reference PDS is not stopped")
)

// Env is the reference's pds.env: PDS_* settings and secrets.
type Env map[string]string

// ReadEnv reads an env file: KEY=VALUE lines, blank lines and # comments, values optionally quoted, an optional
// leading "export ".
func ReadEnv(path string) (Env, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", path, ErrMissing)
		}
		return nil, err
	}
	defer f.Close()
	return parseEnv(f, path)
}

func parseEnv(r io.Reader, name string) (Env, error) {
	env := Env{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		s = strings.TrimPrefix(s, "export ")
		k, v, ok := strings.Cut(s, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\"'") {
			return nil, fmt.Errorf("%s:%d: not a KEY=VALUE line", name, line)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		env[k] = v
	}
	return env, sc.Err()
}

// Dir is an open reference data directory.
type Dir struct {
	Root string // the directory given (--from)
	Env  Env

	// Where the reference keeps things, resolved from Env against Root (see Open).
	AccountDB, SequencerDB, DIDCacheDB, ActorsDir string
	// Disk blobs: BlobDisk/<did>/<cid>, taken-down ones BlobQuarantine/<did>/<cid>, uploads in progress under
	// BlobTmp. All "" when the blobs are in S3 (S3Bucket).
	BlobDisk, BlobTmp, BlobQuarantine string
	S3Bucket                          string

	// RunningPID is the process that has the reference's databases open (0: none, the reference is stopped).
	// Only Open with Options.WhileRunning returns a Dir of a running reference.
	RunningPID int

	opts         Options
	account, seq *sql.DB
	tmp          string // copies of databases whose write-ahead log had to be replayed
}

// Options say how Open may read the directory.
type Options struct {
	// WhileRunning reads a reference that is running (a dry run) instead of refusing it: each database the
	// reference has open is read as a concurrent reader in SQLite's locking protocol (read-only, never
	// checkpointed, never blocking its writer); the others as for a stopped reference, and each read of an
	// account's store is checked for a write of the reference that raced it (ActorStore.Changed).
	WhileRunning bool
}

// Open opens the reference data directory root with the settings of envFile, checking that everything needed is
// there and of the known schema. Without opts.WhileRunning it refuses a running reference (ErrRunning).
func Open(ctx context.Context, root, envFile string, opts Options) (*Dir, error) {
	fi, err := os.Stat(root)
	if err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s: the reference data directory: %w", root, ErrMissing)
	}
	env, err := ReadEnv(envFile)
	if err != nil {
		return nil, err
	}
	d := &Dir{Root: root, Env: env, opts: opts}
	dataDir := env["PDS_DATA_DIRECTORY"]
	// A path of the env file names the reference's view of the directory (/pds in the official container);
	// below PDS_DATA_DIRECTORY it is taken relative to root, which may be a copy or a mount elsewhere.
	resolve := func(p string) string {
		switch {
		case p == "":
			return ""
		case dataDir != "" && (p == dataDir || strings.HasPrefix(p, strings.TrimRight(dataDir, "/")+"/")):
			rel, _ := filepath.Rel(dataDir, p)
			return filepath.Join(root, rel)
		case !filepath.IsAbs(p):
			return filepath.Join(root, p)
		}
		return p
	}
	pick := func(name, def string) string {
		if v := env[name]; v != "" {
			return resolve(v)
		}
		return filepath.Join(root, def)
	}
	d.AccountDB = pick("PDS_ACCOUNT_DB_LOCATION", "account.sqlite")
	d.SequencerDB = pick("PDS_SEQUENCER_DB_LOCATION", "sequencer.sqlite")
	d.DIDCacheDB = pick("PDS_DID_CACHE_DB_LOCATION", "did_cache.sqlite")
	d.ActorsDir = pick("PDS_ACTOR_STORE_DIRECTORY", "actors")
	d.S3Bucket = env["PDS_BLOBSTORE_S3_BUCKET"]
	if loc := env["PDS_BLOBSTORE_DISK_LOCATION"]; loc != "" {
		if d.S3Bucket != "" {
			return nil, fmt.Errorf("%s sets both PDS_BLOBSTORE_S3_BUCKET and PDS_BLOBSTORE_DISK_LOCATION (the reference refuses that too)", envFile)
		}
		d.BlobDisk = resolve(loc)
		d.BlobTmp = resolve(env["PDS_BLOBSTORE_DISK_TMP_LOCATION"])
		if d.BlobTmp == "" {
			d.BlobTmp = filepath.Join(d.BlobDisk, "tempt")
		}
		d.BlobQuarantine = filepath.Join(d.BlobDisk, "quarantine")
	} else if d.S3Bucket == "" {
		return nil, fmt.Errorf("%s sets neither PDS_BLOBSTORE_DISK_LOCATION nor PDS_BLOBSTORE_S3_BUCKET: where are the blobs?", envFile)
	}

	for _, p := range []string{d.AccountDB, d.SequencerDB} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s: %w", p, ErrMissing)
		}
	}
	if fi, err := os.Stat(d.ActorsDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s (the account repositories): %w", d.ActorsDir, ErrMissing)
	}
	if d.BlobDisk != "" {
		if fi, err := os.Stat(d.BlobDisk); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%s (PDS_BLOBSTORE_DISK_LOCATION, the blobs): %w", d.BlobDisk, ErrMissing)
		}
	}
	// A running reference keeps its service-wide databases open (and would go on writing them): refuse, unless
	// only reading (a dry run). A stopped one leaves their write-ahead logs behind (it never closes
	// sequencer.sqlite), which is fine.
	if err := d.CheckStopped(); err != nil {
		if !opts.WhileRunning {
			return nil, err
		}
		d.RunningPID = d.runningPID()
	}
	if d.account, _, err = d.openDB(ctx, d.AccountDB, "account.sqlite"); err != nil {
		d.Close()
		return nil, err
	}
	if d.seq, _, err = d.openDB(ctx, d.SequencerDB, "sequencer.sqlite"); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// CheckStopped returns ErrRunning if a process has account.sqlite or sequencer.sqlite open: the reference keeps
// both open for as long as it runs, in WAL mode, and every SQLite connection to a WAL database holds a shared
// lock on a byte of its -shm file (see heldOpen) that the kernel drops when the process exits, even by a crash.
// The takeover checks again just before it puts the new directory in place.
func (d *Dir) CheckStopped() error {
	for _, p := range []string{d.AccountDB, d.SequencerDB} {
		if pid, ok := heldOpen(p); ok {
			return fmt.Errorf("%s is open in process %d: %w; stop it first (only --check reads a running reference)", p, pid, ErrRunning)
		}
	}
	return nil
}

func (d *Dir) runningPID() int {
	for _, p := range []string{d.AccountDB, d.SequencerDB} {
		if pid, ok := heldOpen(p); ok {
			return pid
		}
	}
	return 0
}

// Close closes the databases and removes temporary copies.
func (d *Dir) Close() error {
	for _, db := range []*sql.DB{d.account, d.seq} {
		if db != nil {
			db.Close()
		}
	}
	if d.tmp != "" {
		os.RemoveAll(d.tmp)
	}
	return nil
}

// openDB opens a reference database without writing anything beside it: immutable (no locks, no -shm) when its
// write-ahead log is empty; read-only with a read-only -shm when there is a log (SQLite then reads the log and
// keeps its index in memory); and, when even that fails (a log without its -shm), from a temporary copy of the
// file and its log. kind names the schema (KnownMigrations) it must have. copyDir is the copy's directory ("" if
// none), for the caller to remove once the database is closed.
//
// With Options.WhileRunning, a database another process has open is opened read-only (mode=ro) as a reader
// among its connections: SQLite then takes the WAL read locks in the shared -shm, sees each query's snapshot
// as of one commit, never checkpoints (a read-only connection cannot) and never blocks the writer. The plain
// read-only open is not used otherwise: on a database nobody has open it would create the -wal and -shm files
// (and leave them), and immutable=1 would be wrong on a database a writer may change under it.
func (d *Dir) openDB(ctx context.Context, path, kind string) (db *sql.DB, copyDir string, err error) {
	if d.opts.WhileRunning {
		if _, held := heldOpen(path); held {
			return d.openURI(ctx, path, path, kind, url.Values{"mode": {"ro"}, "_pragma": {"busy_timeout(5000)"}})
		}
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil || fi.Size() == 0 {
		return d.openURI(ctx, path, path, kind, url.Values{"mode": {"ro"}, "immutable": {"1"}})
	}
	if _, err := os.Stat(path + "-shm"); err == nil {
		db, _, err := d.openURI(ctx, path, path, kind, url.Values{"mode": {"ro"}, "readonly_shm": {"1"}})
		if err == nil || errors.Is(err, ErrSchema) {
			return db, "", err
		}
	}
	if d.tmp == "" {
		if d.tmp, err = os.MkdirTemp("", "pds-takeover-"); err != nil {
			return nil, "", err
		}
	}
	if copyDir, err = os.MkdirTemp(d.tmp, "db-"); err != nil {
		return nil, "", err
	}
	open := filepath.Join(copyDir, filepath.Base(path))
	for _, sfx := range []string{"", "-wal"} {
		if err := sqlitedb.CopyFile(path+sfx, open+sfx); err != nil {
			os.RemoveAll(copyDir)
			return nil, "", err
		}
	}
	if db, _, err = d.openURI(ctx, path, open, kind, url.Values{}); err != nil {
		os.RemoveAll(copyDir)
		return nil, "", err
	}
	return db, copyDir, nil
}

func (d *Dir) openURI(ctx context.Context, path, open, kind string, q url.Values) (*sql.DB, string, error) {
	q.Add("_pragma", "query_only(1)")
	u := url.URL{Scheme: "file", Path: open, RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, "", err
	}
	db.SetMaxOpenConns(1)
	if err := checkSchema(ctx, db, path, kind); err != nil {
		db.Close()
		return nil, "", err
	}
	return db, "", nil
}

// checkSchema compares the database's applied migrations with KnownMigrations[kind].
func checkSchema(ctx context.Context, db *sql.DB, path, kind string) error {
	rows, err := db.QueryContext(ctx, "SELECT name FROM kysely_migration ORDER BY name")
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return fmt.Errorf("%s: %w: no kysely_migration table, so not a database of the reference PDS", path, ErrSchema)
		}
		if strings.Contains(err.Error(), "not a database") || strings.Contains(err.Error(), "malformed") {
			return fmt.Errorf("%s: not a readable SQLite database: %w", path, err)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	defer rows.Close()
	var have []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return err
		}
		have = append(have, n)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	want := KnownMigrations[kind]
	if slices.Equal(have, want) {
		return nil
	}
	var unknown, missing []string
	for _, n := range have {
		if !slices.Contains(want, n) {
			unknown = append(unknown, n)
		}
	}
	for _, n := range want {
		if !slices.Contains(have, n) {
			missing = append(missing, n)
		}
	}
	sort.Strings(unknown)
	switch {
	case len(unknown) > 0:
		return fmt.Errorf("%s: %w: it has migrations %s that %s does not have: it was written by a newer reference PDS; take over with a version of this server that knows it",
			path, ErrSchema, strings.Join(unknown, ", "), Version)
	default:
		return fmt.Errorf("%s: %w: migrations %s of %s are not applied: it was written by an older reference PDS; upgrade the reference to %s, start it once and stop it, then take over",
			path, ErrSchema, strings.Join(missing, ", "), Version, Version)
	}
}

// parseTime reads the reference's ISO 8601 timestamps ("" gives nil).
func parseTime(s sql.NullString) (*time.Time, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s.String)
	if err != nil {
		return nil, fmt.Errorf("timestamp %q: %w", s.String, err)
	}
	return &t, nil
}
