package repo

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkSQLiteBlockWrite: storing one commit's blocks (10 blocks, ~2.5 KB: commit, MST nodes, record) in a
// repo file with WAL and synchronous=FULL, as a commit does, without the MST and signing work. "commits=1" is one
// transaction (one fsync) per commit; "commits=8" stores 8 commits per transaction, what group commit would do:
// ns/op is per commit in both, so the ratio is the fsync share of a write.
func BenchmarkSQLiteBlockWrite(b *testing.B) {
	for _, per := range []int{1, 8} {
		b.Run(fmt.Sprintf("commits=%d", per), func(b *testing.B) {
			ctx := context.Background()
			db, err := openDB(ctx, filepath.Join(b.TempDir(), "repo.sqlite"), 1, 5*time.Second, syncFull)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			sizes := []int{300, 250, 250, 250, 250, 250, 250, 250, 250, 150}
			n := 0
			newBlocks := func() []block {
				blks := make([]block, len(sizes))
				for i, sz := range sizes {
					data := make([]byte, sz)
					rand.Read(data)
					blks[i] = block{cidOf(b, data), data}
				}
				return blks
			}
			b.ResetTimer()
			for n < b.N {
				batch := min(per, b.N-n)
				commits := make([][]block, batch)
				b.StopTimer()
				for i := range commits {
					commits[i] = newBlocks()
				}
				b.StartTimer()
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				ins, err := tx.PrepareContext(ctx, "INSERT INTO blocks (cid, rev, data) VALUES (?, ?, ?) ON CONFLICT (cid) DO NOTHING")
				if err != nil {
					b.Fatal(err)
				}
				for i, blks := range commits {
					rev := fmt.Sprintf("3lbench%07d", n+i)
					for _, blk := range blks {
						if _, err := ins.ExecContext(ctx, blk.cid.Bytes(), rev, blk.data); err != nil {
							b.Fatal(err)
						}
					}
				}
				ins.Close()
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				n += batch
			}
		})
	}
}
