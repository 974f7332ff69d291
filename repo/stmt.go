package repo

import (
	"context"
	"database/sql"
	"fmt"
)

// The hot statements, prepared once per open repository (stmtCache). Callers use these constants, so a text
// cannot drift from its prepared twin.
const (
	sqlGetBlock       = "SELECT data FROM blocks WHERE cid = ?"
	sqlHead           = "SELECT commit_cid, rev, data_cid FROM head WHERE id = 1"
	sqlGetRecord      = "SELECT r.cid, b.data FROM records r JOIN blocks b ON b.cid = r.cid WHERE r.collection = ? AND r.rkey = ?"
	sqlListRecords    = "SELECT r.rkey, r.cid, b.data FROM records r JOIN blocks b ON b.cid = r.cid WHERE r.collection = ?"
	sqlInsertBlock    = "INSERT INTO blocks (cid, rev, data) VALUES (?, ?, ?) ON CONFLICT (cid) DO NOTHING"
	sqlDeleteBlock    = "DELETE FROM blocks WHERE cid = ?"
	sqlDeleteRecBlock = "DELETE FROM blocks WHERE cid = ?1 AND NOT EXISTS (SELECT 1 FROM records WHERE cid = ?1)"
	sqlUpsertRecord   = `INSERT INTO records (collection, rkey, cid, rev) VALUES (?, ?, ?, ?)
		ON CONFLICT (collection, rkey) DO UPDATE SET cid = excluded.cid, rev = excluded.rev`
	sqlDeleteRecord = "DELETE FROM records WHERE collection = ? AND rkey = ?"
	sqlUpsertHead   = `INSERT INTO head (id, commit_cid, rev, data_cid) VALUES (1, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET commit_cid = excluded.commit_cid, rev = excluded.rev, data_cid = excluded.data_cid`
	sqlTrimOutbox    = "DELETE FROM outbox WHERE rev <= ?"
	sqlInsertOutbox  = "INSERT INTO outbox (rev, event) VALUES (?, ?)"
	sqlPendingEvents = "SELECT rev, event FROM outbox WHERE rev > ? ORDER BY rev"
)

// listRecordsSQL is ListRecords' query: descending or ascending, with or without a cursor.
func listRecordsSQL(reverse, cursor bool) string {
	cmp, order := "<", "DESC"
	if reverse {
		cmp, order = ">", "ASC"
	}
	q := sqlListRecords
	if cursor {
		q += " AND r.rkey " + cmp + " ?"
	}
	return q + " ORDER BY r.rkey " + order + " LIMIT ?"
}

func cachedSQL() []string {
	qs := []string{sqlGetBlock, sqlHead, sqlGetRecord, sqlInsertBlock, sqlDeleteBlock, sqlDeleteRecBlock,
		sqlUpsertRecord, sqlDeleteRecord, sqlUpsertHead, sqlTrimOutbox, sqlInsertOutbox, sqlPendingEvents}
	qs = append(qs, sqlCollections, sqlCollectionRecords, sqlSharedRecordCIDs)
	for _, n := range inBatchSizes {
		qs = append(qs, blocksInSQL(n))
	}
	for _, rev := range []bool{false, true} {
		for _, cur := range []bool{false, true} {
			qs = append(qs, listRecordsSQL(rev, cur))
		}
	}
	return qs
}

// stmtCache holds the prepared hot statements of one repository database. Without it modernc's driver parses
// and plans every statement on every call (a tenth of a write's CPU, a fifth of a read's). database/sql
// prepares a *sql.Stmt once on each connection that runs it. They are all prepared when the database is
// opened, never later: preparing on the *sql.DB while holding a transaction would wait for a free connection,
// which may never come (a single-connection database, or every connection in a transaction). Other SQL runs
// unprepared.
type stmtCache struct {
	db *sql.DB
	m  map[string]*sql.Stmt // read-only once built
}

func newStmtCache(ctx context.Context, db *sql.DB) (*stmtCache, error) {
	c := &stmtCache{db: db, m: map[string]*sql.Stmt{}}
	for _, q := range cachedSQL() {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("preparing %q: %w", q, err)
		}
		c.m[q] = st
	}
	return c, nil
}

func (c *stmtCache) get(query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	return c.m[query]
}

func (c *stmtCache) close() {
	if c == nil {
		return
	}
	for _, st := range c.m {
		st.Close()
	}
}

// cachedDB runs statements on the database through the cache. It is a querier.
type cachedDB struct {
	c  *stmtCache
	db *sql.DB
}

func (q cachedDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = sqlContext(ctx)
	if st := q.c.get(query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.db.QueryRowContext(ctx, query, args...)
}

func (q cachedDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = sqlContext(ctx)
	if st := q.c.get(query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.db.QueryContext(ctx, query, args...)
}

func (q cachedDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = sqlContext(ctx)
	if st := q.c.get(query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.db.ExecContext(ctx, query, args...)
}

// cachedTx runs statements inside tx through the cache: each cached statement is bound to the transaction
// once (tx.StmtContext prepares on the transaction's own connection, or reuses what that connection already
// prepared). It is a querier.
type cachedTx struct {
	c     *stmtCache
	tx    *sql.Tx
	bound map[string]*sql.Stmt
}

func (r *Repo) cachedTx(tx *sql.Tx) *cachedTx {
	return &cachedTx{c: r.stmts, tx: tx, bound: map[string]*sql.Stmt{}}
}

func (q *cachedTx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st, ok := q.bound[query]; ok {
		return st
	}
	st := q.c.get(query)
	if st == nil {
		return nil
	}
	st = q.tx.StmtContext(ctx, st)
	q.bound[query] = st
	return st
}

func (q *cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = sqlContext(ctx)
	if st := q.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.tx.QueryRowContext(ctx, query, args...)
}

func (q *cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = sqlContext(ctx)
	if st := q.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.tx.QueryContext(ctx, query, args...)
}

func (q *cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = sqlContext(ctx)
	if st := q.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.tx.ExecContext(ctx, query, args...)
}
