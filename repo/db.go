package repo

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strconv"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"

	_ "modernc.org/sqlite" // driver "sqlite"

	"github.com/pdsgo/pds/internal/sqlitedb"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// cborPrefix is the CID prefix of every block in a repository (CIDv1, dag-cbor, sha2-256).
var cborPrefix = cid.NewPrefixV1(cid.DagCBOR, multihash.SHA2_256)

// pageCacheKiB is SQLite's page cache per connection of a repository file (its default is 2 MB): with up to
// MaxConnsPerRepo connections for each of MaxOpenRepos repositories, the default would let caches grow to
// gigabytes. Repository files are small and the OS caches them too.
const pageCacheKiB = 256

// connMaxIdle is how long an unused connection of a repository file stays open. A connection holds ~0.5 MB of
// SQLite memory (page cache, lookaside, schema, prepared statements) and reopening one costs ~0.4 ms (open, the
// pragmas, the schema, re-preparing): an account's burst of requests (a session's writes and reads) keeps its
// connections, an account that went quiet gives the memory back within seconds instead of holding it for every
// account a burst touched. Closing an account's last connection checkpoints its WAL and removes the -wal and
// -shm files (SQLite does that on the last close), off the request path. (The reference PDS opens an account's
// database for each request.)
const connMaxIdle = 2 * time.Second

// Synchronous levels of a repository file's connections (SQLite's PRAGMA synchronous).
const (
	syncFull   = "FULL"   // every commit is fsynced
	syncNormal = "NORMAL" // WAL: commits are not fsynced; the WAL is at checkpoints
)

// sqlContext is ctx without its cancellation, for SQLite calls on the request paths. Given a context that can
// end, modernc's driver starts a goroutine per statement to interrupt SQLite when it does, and database/sql one
// per result set and per transaction: ~5% of the server's CPU under getRecord load. These statements take
// microseconds, a commit's transaction must not be cut short by a client hanging
// up (its event may already be in the log), and an export stops at its next write to a closed connection.
func sqlContext(ctx context.Context) context.Context {
	if ctx.Done() == nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// openDB opens (creating if needed) the SQLite file at path with every connection at the synchronous level
// sync, and migrates it. An open repository's pool runs NORMAL: its commits are made durable by the caller's
// log (WriteRequest.DeferSync), and the writes that must be durable on their own switch their connection to
// FULL (durableConn).
func openDB(ctx context.Context, path string, maxConns int, busy time.Duration, sync string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", sqlitedb.AutoCheckpointOff) // checkpoints run in the background: checkpoint.go
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "cache_size(-"+strconv.Itoa(pageCacheKiB)+")")
	// A plain path (no "file:" prefix) so a DID's ':' and '%' are not read as URI syntax.
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(connMaxIdle)
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// migrate brings the schema up to date with the embedded migrations (see internal/sqlitedb).
func migrate(ctx context.Context, db *sql.DB) error {
	migrations, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		return err
	}
	return sqlitedb.Migrate(ctx, db, migrations)
}

// querier is the read side shared by *sql.DB and *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// blockSource reads blocks for mst.LoadTreeFromStore. A missing block must be
// ipld.ErrNotFound: LoadTreeFromStore treats that as a partial tree, any other error aborts.
type blockSource struct{ q querier }

func (b blockSource) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	data, err := getBlock(ctx, b.q, c)
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

func getBlock(ctx context.Context, q querier, c cid.Cid) ([]byte, error) {
	var data []byte
	err := q.QueryRowContext(ctx, sqlGetBlock, c.Bytes()).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return nil, err
	}
	return data, nil
}

func cidFromBytes(b []byte) (cid.Cid, error) {
	_, c, err := cid.CidFromBytes(b)
	return c, err
}

// headRow reads the head inside q; ErrRepoNotFound if the repository has no commit yet.
func headRow(ctx context.Context, q querier) (Head, error) {
	var cb, db []byte
	var h Head
	err := q.QueryRowContext(ctx, sqlHead).Scan(&cb, &h.Rev, &db)
	if errors.Is(err, sql.ErrNoRows) {
		return Head{}, ErrRepoNotFound
	}
	if err != nil {
		return Head{}, err
	}
	if h.Commit, err = cidFromBytes(cb); err != nil {
		return Head{}, fmt.Errorf("corrupt head commit cid: %w", err)
	}
	if h.Data, err = cidFromBytes(db); err != nil {
		return Head{}, fmt.Errorf("corrupt head data cid: %w", err)
	}
	return h, nil
}
