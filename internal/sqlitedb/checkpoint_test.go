package sqlitedb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// A writer that commits without pause outruns every background checkpoint: the WAL must still start over
// now and then instead of growing with everything ever written (it did: 165 MB in 9 s of benchmark writes).
func TestCheckpointerBoundsWALUnderSteadyWrites(t *testing.T) {
	const every, txs, rowBytes = 50, 3000, 3000
	const frameBytes = 4096 + 24
	for _, restart := range []int{0, 1500} {
		t.Run(fmt.Sprintf("restart=%d", restart), func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "t.sqlite")
			migrations := fstest.MapFS{"001_init.sql": {Data: []byte("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL);")}}
			db, err := Open(ctx, path, migrations, 4, AutoCheckpointOff)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ckpt := NewCheckpointer(db, every, restart)

			payload := make([]byte, rowBytes)
			var largest int64
			for i := range txs {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				payload[0], payload[1] = byte(i), byte(i>>8)
				if _, err := tx.ExecContext(ctx, "INSERT INTO t (id, v) VALUES (?, ?)", i, payload); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				ckpt.Wrote(1)
				if fi, err := os.Stat(path + "-wal"); err == nil {
					largest = max(largest, fi.Size())
				}
			}
			ckpt.Close()

			// Everything written is ~2 WAL frames a transaction, ~25 MB. The WAL may reach the restart
			// threshold, plus what is written while the checkpoint that crosses it runs (a few intervals).
			written := int64(txs) * 2 * frameBytes
			limit := int64(restart+4*every*2+512) * frameBytes
			if largest > limit {
				t.Fatalf("the WAL grew to %d bytes (limit %d, %d written in all): it is not starting over", largest, limit, written)
			}
			var n int
			var sum int64
			if err := db.QueryRowContext(ctx, "SELECT count(*), sum(length(v)) FROM t").Scan(&n, &sum); err != nil {
				t.Fatal(err)
			}
			if n != txs || sum != txs*rowBytes {
				t.Fatalf("rows %d (%d bytes), want %d (%d)", n, sum, txs, txs*rowBytes)
			}
			var check string
			if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
				t.Fatalf("integrity_check: %q, %v", check, err)
			}
			t.Logf("largest WAL %d bytes (limit %d) for %d bytes written", largest, limit, written)
		})
	}
}
