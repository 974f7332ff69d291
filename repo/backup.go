package repo

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

// Backups (pds/backup) copy one account's database file as a snapshot and put it back at restore: the layout
// and the reading of a snapshot file (not an open repo) are here, with the schema.

// PathIn is where a store rooted at dir keeps did's database.
func PathIn(dir string, did syntax.DID) string {
	h := sha256.Sum256([]byte(did))
	return filepath.Join(dir, hex.EncodeToString(h[:1]), did.String(), repoFileName)
}

// SnapshotState is what a backup records of a repository snapshot.
type SnapshotState struct {
	Rev   string   // the head's rev
	Blobs []string // CIDs of the blobs whose bytes are stored (state ready)
}

// ReadSnapshot reads a repository database file that no store has open (a backup's snapshot copy).
func ReadSnapshot(ctx context.Context, path string) (*SnapshotState, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?"+url.Values{"mode": {"ro"}}.Encode())
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st := &SnapshotState{}
	if err := db.QueryRowContext(ctx, "SELECT rev FROM head WHERE id = 1").Scan(&st.Rev); err != nil {
		return nil, fmt.Errorf("repo snapshot head: %w", err)
	}
	rows, err := db.QueryContext(ctx, "SELECT cid FROM blobs WHERE state = ? ORDER BY cid", BlobReady)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		st.Blobs = append(st.Blobs, c)
	}
	return st, rows.Err()
}

// HeadRev reads the head's rev of the repository database at path, which a store may have open (a read
// transaction beside its writers).
func HeadRev(ctx context.Context, path string) (string, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?"+url.Values{"_pragma": {"busy_timeout(10000)"}}.Encode())
	if err != nil {
		return "", err
	}
	defer db.Close()
	var rev string
	if err := db.QueryRowContext(ctx, "SELECT rev FROM head WHERE id = 1").Scan(&rev); err != nil {
		return "", fmt.Errorf("repo head: %w", err)
	}
	return rev, nil
}
