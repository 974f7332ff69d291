package repo

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/repo/mst"
	"github.com/ipfs/go-cid"
)

type commitProofFixture struct {
	Comment          string   `json:"comment"`
	LeafValue        string   `json:"leafValue"`
	Keys             []string `json:"keys"`
	Adds             []string `json:"adds"`
	Dels             []string `json:"dels"`
	RootBeforeCommit string   `json:"rootBeforeCommit"`
	RootAfterCommit  string   `json:"rootAfterCommit"`
	BlocksInProof    []string `json:"blocksInProof"`
}

// TestInteropCommitProofs runs the sync 1.1 vectors through applyTreeOps, the function
// the write path uses to mutate the tree and collect the event's MST blocks.
func TestInteropCommitProofs(t *testing.T) {
	raw, err := os.ReadFile("testdata/interop/firehose/commit-proof-fixtures.json")
	if err != nil {
		t.Fatal(err)
	}
	var fixtures []commitProofFixture
	if err := json.Unmarshal(raw, &fixtures); err != nil {
		t.Fatal(err)
	}
	if len(fixtures) < 6 {
		t.Fatalf("only %d fixtures", len(fixtures))
	}
	ctx := context.Background()
	for _, f := range fixtures {
		t.Run(f.Comment, func(t *testing.T) {
			leaf, err := cid.Decode(f.LeafValue)
			if err != nil {
				t.Fatal(err)
			}
			tree := completeTree(mst.NewEmptyTree())
			var setup []treeOp
			for _, k := range f.Keys {
				setup = append(setup, treeOp{path: k, value: &leaf})
			}
			d, err := applyTreeOps(ctx, &tree, setup)
			if err != nil {
				t.Fatal(err)
			}
			if d.root.String() != f.RootBeforeCommit {
				t.Fatalf("root before %s, want %s", d.root, f.RootBeforeCommit)
			}
			var ops []treeOp
			for _, k := range f.Dels {
				ops = append(ops, treeOp{path: k})
			}
			for _, k := range f.Adds {
				ops = append(ops, treeOp{path: k, value: &leaf})
			}
			d, err = applyTreeOps(ctx, &tree, ops)
			if err != nil {
				t.Fatal(err)
			}
			if d.root.String() != f.RootAfterCommit {
				t.Fatalf("root after %s, want %s", d.root, f.RootAfterCommit)
			}
			have := map[string]bool{}
			for _, b := range d.nodes {
				have[b.cid.String()] = true
			}
			for _, c := range f.BlocksInProof {
				if !have[c] {
					t.Errorf("proof block %s missing from the diff (%d blocks)", c, len(d.nodes))
				}
			}
			for i, op := range d.ops {
				if (ops[i].value == nil) != (op.Prev != nil) {
					t.Errorf("op %s: prev %v", op.Path, op.Prev)
				}
			}
		})
	}
}

func TestInteropMSTKeyHeights(t *testing.T) {
	raw, err := os.ReadFile("testdata/interop/mst/key_heights.json")
	if err != nil {
		t.Fatal(err)
	}
	var vecs []struct {
		Key    string `json:"key"`
		Height int    `json:"height"`
	}
	if err := json.Unmarshal(raw, &vecs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vecs {
		if got := mst.HeightForKey([]byte(v.Key)); got != v.Height {
			t.Errorf("height(%q) = %d, want %d", v.Key, got, v.Height)
		}
	}
	raw, err = os.ReadFile("testdata/interop/mst/common_prefix.json")
	if err != nil {
		t.Fatal(err)
	}
	var pre []struct {
		Left, Right string
		Len         int
	}
	if err := json.Unmarshal(raw, &pre); err != nil {
		t.Fatal(err)
	}
	for _, v := range pre {
		if got := mst.CountPrefixLen([]byte(v.Left), []byte(v.Right)); got != v.Len {
			t.Errorf("prefix(%q, %q) = %d, want %d", v.Left, v.Right, got, v.Len)
		}
	}
	// example_keys.txt: "<letter><height>/..." keys have the height in the name.
	fh, err := os.Open("testdata/interop/mst/example_keys.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	n := 0
	for sc.Scan() {
		k := strings.TrimSpace(sc.Text())
		if len(k) < 2 {
			continue
		}
		if got, want := mst.HeightForKey([]byte(k)), int(k[1]-'0'); got != want {
			t.Errorf("height(%q) = %d, want %d", k, got, want)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no example keys")
	}
}
