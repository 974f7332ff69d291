package sequencer

import (
	"crypto/rand"
	"testing"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	lexutil "github.com/bluesky-social/indigo/lex/util"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// BenchmarkEncodeFrame: serializing a one-op #commit as the firehose sends it (header + body). The CAR slice is
// ~2.5 KB, the size of a one-record commit in a repo of a few thousand records (commit + ~8 MST nodes + record).
func BenchmarkEncodeFrame(b *testing.B) {
	sum := func(data []byte) cid.Cid {
		c, err := cid.NewPrefixV1(cid.DagCBOR, multihash.SHA2_256).Sum(data)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	blocks := make([]byte, 2500)
	rand.Read(blocks)
	commit, rec, prevData := sum([]byte("commit")), sum([]byte("record")), sum([]byte("prev"))
	since := "3lbenchsince22"
	evt := &comatproto.SyncSubscribeRepos_Commit{
		Repo:     "did:plc:ewvi7nxzyoun6zhxrhs64oiz",
		Rev:      "3lbenchrev2222",
		Since:    &since,
		Seq:      123456789,
		Commit:   lexutil.LexLink(commit),
		Blocks:   blocks,
		Ops:      []*comatproto.SyncSubscribeRepos_RepoOp{{Action: "create", Path: "app.bsky.feed.post/3lbenchrkey22", Cid: (*lexutil.LexLink)(&rec)}},
		PrevData: (*lexutil.LexLink)(&prevData),
		Time:     "2026-11-26T00:00:00.000Z",
		Blobs:    []lexutil.LexLink{},
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(blocks)))
	for b.Loop() {
		if _, err := EncodeFrame(TypeCommit, evt); err != nil {
			b.Fatal(err)
		}
	}
}
