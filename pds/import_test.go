package pds_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car"
	carutil "github.com/ipld/go-car/util"

	"github.com/pdsgo/pds/internal/testpds"
)

// importCAR posts a CAR to importRepo.
func importCAR(t *testing.T, p *testpds.PDS, token string, body []byte, contentType string) *testpds.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.URL+"/xrpc/com.atproto.repo.importRepo", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return p.Do(req, token)
}

// carBlocks splits a CAR into its root and blocks, in order.
func carBlocks(t *testing.T, b []byte) (cid.Cid, []carBlock) {
	t.Helper()
	rd, err := car.NewCarReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var out []carBlock
	for {
		blk, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, carBlock{blk.Cid(), blk.RawData()})
	}
	return rd.Header.Roots[0], out
}

type carBlock struct {
	cid  cid.Cid
	data []byte
}

func writeCAR(t *testing.T, root cid.Cid, blocks []carBlock) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := car.WriteHeader(&car.CarHeader{Roots: []cid.Cid{root}, Version: 1}, &buf); err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if err := carutil.LdWrite(&buf, b.cid.Bytes(), b.data); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestImportRepoHTTP: importRepo over HTTP on one server: an account re-imports its own repository (its
// DID document names its own key). Refusals are 400s with a clear message (413 beyond the size limit), and
// leave the repository exactly as it was.
func TestImportRepoHTTP(t *testing.T) {
	p := testpds.Start(t, testpds.Options{Env: map[string]string{"PDS_MAX_REPO_IMPORT_SIZE": "200000"}})
	alice := p.CreateAccount("alice")
	bob := p.CreateAccount("bob")
	for i := 0; i < 25; i++ {
		testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.feed.post", "record": testpds.Post(fmt.Sprintf("post %d", i))}, alice.AccessJwt), 200, "")
	}
	testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": bob.DID, "collection": "app.bsky.feed.post", "record": testpds.Post("bob's")}, bob.AccessJwt), 200, "")
	good := testpds.GetRepoCAR(t, p, alice.DID, alice.AccessJwt)
	bobCAR := testpds.GetRepoCAR(t, p, bob.DID, bob.AccessJwt)

	// Active accounts cannot import; nor can app-password sessions, nor anonymous callers.
	r := importCAR(t, p, alice.AccessJwt, good, "application/vnd.ipld.car")
	testpds.WantStatus(t, r, 400, "InvalidRequest")
	if !strings.Contains(r.JSON()["message"].(string), "deactivated") {
		t.Fatalf("import into an active account: %s", r)
	}
	testpds.WantStatus(t, importCAR(t, p, "", good, "application/vnd.ipld.car"), 401, "AuthMissing")
	ap := testpds.MustOK(t, p.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": "app"}, alice.AccessJwt))
	apSession := testpds.MustOK(t, testpds.Login(t, p, alice.Handle, ap["password"].(string)))
	testpds.WantStatus(t, importCAR(t, p, apSession["accessJwt"].(string), good, "application/vnd.ipld.car"), 400, "InvalidToken")

	testpds.WantStatus(t, p.Procedure("com.atproto.server.deactivateAccount", map[string]any{}, alice.AccessJwt), 200, "")
	status := func() map[string]any {
		t.Helper()
		return testpds.MustOK(t, p.Query("com.atproto.server.checkAccountStatus", nil, alice.AccessJwt))
	}
	before := status()
	if before["indexedRecords"].(float64) != 25 {
		t.Fatalf("status before: %v", before)
	}

	root, blocks := carBlocks(t, good)
	var recordIdx int
	for i, b := range blocks {
		if b.cid != root && i > 0 {
			recordIdx = i // some non-commit block; the last one is a record
		}
	}
	tampered := append([]carBlock(nil), blocks...)
	tampered[recordIdx] = carBlock{blocks[recordIdx].cid, append(append([]byte{}, blocks[recordIdx].data...), 0)}
	otherKey, _ := atcrypto.GeneratePrivateKeyK256()
	c, _ := testpds.CARCommit(t, good)
	forged := *c
	if err := forged.Sign(otherKey); err != nil {
		t.Fatal(err)
	}
	var fb bytes.Buffer
	forged.MarshalCBOR(&fb)
	forgedCID := cidFor(t, fb.Bytes())
	forgedBlocks := append([]carBlock{{forgedCID, fb.Bytes()}}, blocks[1:]...)

	for _, tc := range []struct {
		name, contentType string
		body              []byte
		status            int
		errName, msg      string
	}{
		{"no content type", "", good, 400, "InvalidRequest", "Content-Type"},
		{"JSON", "application/json", []byte(`{}`), 400, "InvalidRequest", "Wrong request encoding"},
		{"truncated", "application/vnd.ipld.car", good[:len(good)-1], 400, "InvalidRequest", "truncated"}, // mid-block (half the CAR could end on a block boundary)
		{"wrong root", "application/vnd.ipld.car", writeCAR(t, cidFor(t, []byte("x")), blocks), 400, "InvalidRequest", "not in the CAR"},
		{"hash mismatch", "application/vnd.ipld.car", writeCAR(t, root, tampered), 400, "InvalidRequest", "do not match its CID"},
		{"another account's repository", "application/vnd.ipld.car", bobCAR, 400, "InvalidRequest", "not for this account"},
		{"bad signature", "application/vnd.ipld.car", writeCAR(t, forgedCID, forgedBlocks), 400, "InvalidRequest", "signature"},
		{"huge block", "application/vnd.ipld.car", append(writeCAR(t, root, blocks[:1]), 0x80, 0x80, 0x80, 0x20), 400, "InvalidRequest", "too large"},
		{"over PDS_MAX_REPO_IMPORT_SIZE", "application/vnd.ipld.car", append(good, make([]byte, 200000)...), 413, "PayloadTooLarge", "import limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := importCAR(t, p, alice.AccessJwt, tc.body, tc.contentType)
			testpds.WantStatus(t, r, tc.status, tc.errName)
			if msg, _ := r.JSON()["message"].(string); !strings.Contains(msg, tc.msg) {
				t.Fatalf("want a message with %q, got %s", tc.msg, r)
			}
			after := status()
			for _, k := range []string{"repoCommit", "repoRev", "repoBlocks", "indexedRecords"} {
				if after[k] != before[k] {
					t.Fatalf("%s changed by a refused import: %v -> %v", k, before[k], after[k])
				}
			}
		})
	}

	// The account's own repository imports: same records and data root, a new head signed with its key.
	testpds.WantStatus(t, importCAR(t, p, alice.AccessJwt, good, "application/vnd.ipld.car"), 200, "")
	after := status()
	if after["indexedRecords"] != before["indexedRecords"] || after["repoRev"].(string) <= before["repoRev"].(string) ||
		after["repoCommit"] == before["repoCommit"] {
		t.Fatalf("after import: %v (before %v)", after, before)
	}
	nc, _ := testpds.CARCommit(t, testpds.GetRepoCAR(t, p, alice.DID, alice.AccessJwt))
	if nc.Data != c.Data || nc.Rev != after["repoRev"] {
		t.Fatalf("imported head: data %s rev %s, want data %s", nc.Data, nc.Rev, c.Data)
	}
}

func cidFor(t *testing.T, b []byte) cid.Cid {
	t.Helper()
	c, err := cid.NewPrefixV1(cid.DagCBOR, 0x12).Sum(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
