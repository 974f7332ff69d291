package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/url"
	"os"
)

// Snapshot writes a transactionally consistent copy of the database at src to dst (which must not exist) with
// `VACUUM INTO`: one read transaction, so writers of other connections and processes go on (WAL mode) and the
// copy is the database as of one commit, compacted (no free pages, no WAL). Backups use it.
func Snapshot(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return err // never create an empty database where there was none
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	db, err := sql.Open("sqlite", "file:"+src+"?"+q.Encode())
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("snapshot of %s: %w", src, err)
	}
	return nil
}

// CopyFile copies the file src (a database, or its write-ahead log) to dst, which must not exist, byte for
// byte. Unlike Snapshot it needs no SQLite connection to src: what no process has open (a stopped server's
// files, a backup's copy) is copied as it lies, log included, for a connection to the copy to replay.
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
