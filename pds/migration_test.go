package pds_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atcrypto"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/internal/testplc"
	"github.com/pdsgo/pds/internal/testsmtp"
	"github.com/pdsgo/pds/migrate"
)

// mailedPDS is a test PDS whose mail goes to its own SMTP server.
type mailedPDS struct {
	*testpds.PDS
	mail *testsmtp.Server
}

func startMailed(t *testing.T, plcURL string) *mailedPDS {
	t.Helper()
	m := testsmtp.Start(t, testsmtp.Options{})
	p := testpds.Start(t, testpds.Options{PLCURL: plcURL, Env: map[string]string{
		"PDS_EMAIL_SMTP_URL":     m.URL(),
		"PDS_EMAIL_FROM_ADDRESS": "pds@localhost.test",
	}})
	return &mailedPDS{p, m}
}

// accountSnapshot is what must survive a migration.
type accountSnapshot struct {
	records map[string]string // at-uri -> record CID
	data    string            // MST root of the head commit
	prefs   string            // preferences JSON
}

func snapshotAccount(t *testing.T, p *testpds.PDS, did, token string) accountSnapshot {
	t.Helper()
	s := accountSnapshot{records: map[string]string{}}
	for _, coll := range []string{"app.bsky.feed.post", "app.bsky.actor.profile"} {
		cursor := ""
		for {
			params := url.Values{"repo": {did}, "collection": {coll}, "limit": {"100"}}
			if cursor != "" {
				params.Set("cursor", cursor)
			}
			var page struct {
				Cursor  string `json:"cursor"`
				Records []struct {
					URI string `json:"uri"`
					CID string `json:"cid"`
				} `json:"records"`
			}
			r := p.Query("com.atproto.repo.listRecords", params, token)
			testpds.WantStatus(t, r, 200, "")
			json.Unmarshal(r.Body, &page)
			for _, rec := range page.Records {
				s.records[rec.URI] = rec.CID
			}
			if page.Cursor == "" {
				break
			}
			cursor = page.Cursor
		}
	}
	c, _ := testpds.CARCommit(t, testpds.GetRepoCAR(t, p, did, token))
	s.data = c.Data.String()
	s.prefs = string(testpds.MustOK(t, p.Query("app.bsky.actor.getPreferences", nil, token))["preferences"].([]any)[0].(map[string]any)["$type"].(string))
	return s
}

func plcDocument(t *testing.T, plcURL, did string) *plc.Data {
	t.Helper()
	d, err := (&plc.Client{URL: plcURL}).GetDocumentData(context.Background(), did)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pngBytes is a distinct small "PNG" (the signature makes the content sniffed as image/png).
func pngBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return append([]byte("\x89PNG\r\n\x1a\n"), b...)
}

func uploadPNG(t *testing.T, p *testpds.PDS, token string, data []byte) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.URL+"/xrpc/com.atproto.repo.uploadBlob", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "image/png")
	return testpds.MustOK(t, p.Do(req, token))["blob"].(map[string]any)
}

// TestMigrationBetweenTwoServers moves an account from A to B with the migrate package (the code of
// `pds migrate`), over HTTP, both servers sharing the real PLC directory, and then back to A.
func TestMigrationBetweenTwoServers(t *testing.T) {
	ctx := context.Background()
	plcURL := testplc.Shared(t)
	a, b := startMailed(t, plcURL), startMailed(t, plcURL)
	alice := a.CreateAccount("alice")

	// Records, blobs (an avatar and two images, one blob shared by two records), preferences, an app password.
	avatarBytes, img1Bytes, img2Bytes := pngBytes(t, 3000), pngBytes(t, 5000), pngBytes(t, 70000)
	avatar, img1, img2 := uploadPNG(t, a.PDS, alice.AccessJwt, avatarBytes), uploadPNG(t, a.PDS, alice.AccessJwt, img1Bytes), uploadPNG(t, a.PDS, alice.AccessJwt, img2Bytes)
	blobs := map[string][]byte{}
	for _, bl := range []struct {
		ref  map[string]any
		data []byte
	}{{avatar, avatarBytes}, {img1, img1Bytes}, {img2, img2Bytes}} {
		blobs[bl.ref["ref"].(map[string]any)["$link"].(string)] = bl.data
	}
	create := func(p *testpds.PDS, token, coll string, rec map[string]any) {
		t.Helper()
		testpds.WantStatus(t, p.Procedure("com.atproto.repo.createRecord", map[string]any{"repo": alice.DID, "collection": coll, "record": rec}, token), 200, "")
	}
	testpds.WantStatus(t, a.Procedure("com.atproto.repo.putRecord", map[string]any{"repo": alice.DID, "collection": "app.bsky.actor.profile", "rkey": "self",
		"record": map[string]any{"$type": "app.bsky.actor.profile", "displayName": "Alice", "avatar": avatar}}, alice.AccessJwt), 200, "")
	for i := 0; i < 40; i++ {
		create(a.PDS, alice.AccessJwt, "app.bsky.feed.post", testpds.Post(fmt.Sprintf("post %d", i)))
	}
	for i, imgs := range [][]any{{img1, img2}, {img2}} {
		rec := testpds.Post(fmt.Sprintf("with images %d", i))
		var images []any
		for _, im := range imgs {
			images = append(images, map[string]any{"alt": "", "image": im})
		}
		rec["embed"] = map[string]any{"$type": "app.bsky.embed.images", "images": images}
		create(a.PDS, alice.AccessJwt, "app.bsky.feed.post", rec)
	}
	testpds.WantStatus(t, a.Procedure("app.bsky.actor.putPreferences", map[string]any{"preferences": []any{
		map[string]any{"$type": "app.bsky.actor.defs#adultContentPref", "enabled": true},
	}}, alice.AccessJwt), 200, "")
	appPassword := testpds.MustOK(t, a.Procedure("com.atproto.server.createAppPassword", map[string]any{"name": "phone"}, alice.AccessJwt))["password"].(string)
	before := snapshotAccount(t, a.PDS, alice.DID, alice.AccessJwt)
	if len(before.records) != 43 {
		t.Fatalf("setup: %d records", len(before.records))
	}

	subA, subB := testpds.Subscribe(t, a.PDS, ""), testpds.Subscribe(t, b.PDS, "")
	statePath := filepath.Join(t.TempDir(), "migration.json")
	opts := migrate.Options{OldPDS: a.URL, NewPDS: b.URL, Identifier: alice.Handle, Password: alice.Password, StateFile: statePath}

	// First run: no way to ask for the emailed token, so it stops there, with everything else done and nothing
	// switched over.
	_, err := migrate.Run(ctx, opts)
	if !errors.Is(err, migrate.ErrPLCTokenNeeded) {
		t.Fatalf("first run: %v", err)
	}
	token := a.mail.Next(t).Token(t)
	bSession := testpds.MustOK(t, testpds.Login(t, b.PDS, alice.DID, alice.Password))
	bToken := bSession["accessJwt"].(string)
	if bSession["active"] != false {
		t.Fatalf("the new account is active before the PLC operation: %v", bSession)
	}
	st := testpds.MustOK(t, b.Query("com.atproto.server.checkAccountStatus", nil, bToken))
	if st["indexedRecords"] != float64(43) || st["expectedBlobs"] != float64(3) || st["importedBlobs"] != float64(3) || st["validDid"] != false {
		t.Fatalf("new account after the first run: %v", st)
	}
	if plcDocument(t, plcURL, alice.DID).PDSEndpoint() != a.URL {
		t.Fatal("the PLC document moved before the token was given")
	}
	// Meanwhile, the user posts once more at the old PDS: the resumed run must notice and copy again.
	create(a.PDS, alice.AccessJwt, "app.bsky.feed.post", testpds.Post("one more, written mid-migration"))
	before = snapshotAccount(t, a.PDS, alice.DID, alice.AccessJwt)

	opts.PLCToken = token
	res, err := migrate.Run(ctx, opts)
	if err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	if res.DID != alice.DID || res.Records != 44 || res.Blobs != 3 {
		t.Fatalf("result %+v", res)
	}

	// The PLC document points at B, with B's signing key for the account and B's rotation key.
	doc := plcDocument(t, plcURL, alice.DID)
	rc := testpds.MustOK(t, b.Query("com.atproto.identity.getRecommendedDidCredentials", nil, bToken))
	bKey := rc["verificationMethods"].(map[string]any)["atproto"].(string)
	bRot, _ := b.Config.RotationKey.PublicKey()
	if doc.PDSEndpoint() != b.URL || doc.SigningKey() != bKey || !slices.Contains(doc.RotationKeys, bRot.DIDKey()) || doc.Handle() != alice.Handle {
		t.Fatalf("PLC document after migration: %+v", doc)
	}
	bPub, err := atcrypto.ParsePublicDIDKey(bKey)
	if err != nil {
		t.Fatal(err)
	}

	// B's firehose: submitPlcOperation's #identity, then activation's #account, #identity, #sync (a head
	// signed with B's key over A's data). Nothing before (creation and import are silent).
	frames := testpds.ExpectEvents(t, subB, alice.DID, "#identity", "#account", "#identity", "#sync")
	if !frames[1].Account.Active {
		t.Fatalf("#account %+v", frames[1].Account)
	}
	syncCommit, _ := testpds.CARCommit(t, frames[3].Sync.Blocks)
	if err := syncCommit.VerifySignature(bPub); err != nil || syncCommit.Data.String() != before.data || frames[3].Sync.Rev != syncCommit.Rev {
		t.Fatalf("#sync commit: %v data %s (want %s)", err, syncCommit.Data, before.data)
	}
	// A's firehose: the account is deactivated there.
	if f := testpds.NextFor(t, subA, "#account", alice.DID); f.Account.Active || testpds.Str(f.Account.Status) != "deactivated" {
		t.Fatalf("old #account %+v", f.Account)
	}
	if j := testpds.MustOK(t, a.Query("com.atproto.server.getSession", nil, alice.AccessJwt)); j["active"] != false {
		t.Fatalf("old account: %v", j)
	}
	testpds.WantStatus(t, a.Query("com.atproto.sync.getRepo", url.Values{"did": {alice.DID}}, ""), 400, "RepoDeactivated")

	// Records, data root, preferences and blobs are identical at B (public reads now that it is active).
	after := snapshotAccount(t, b.PDS, alice.DID, bToken)
	if fmt.Sprint(sortedPairs(after.records)) != fmt.Sprint(sortedPairs(before.records)) || after.data != before.data || after.prefs != before.prefs {
		t.Fatalf("account at B differs:\n%+v\nvs\n%+v", after, before)
	}
	for c, data := range blobs {
		r := b.Query("com.atproto.sync.getBlob", url.Values{"did": {alice.DID}, "cid": {c}}, "")
		testpds.WantStatus(t, r, 200, "")
		if !bytes.Equal(r.Body, data) || r.Header.Get("Content-Type") != "image/png" {
			t.Fatalf("blob %s at B: %d bytes, %s", c, len(r.Body), r.Header.Get("Content-Type"))
		}
	}
	// App passwords do not move (as with the reference PDS: the new server never sees them).
	testpds.WantStatus(t, testpds.Login(t, b.PDS, alice.Handle, appPassword), 401, "AuthenticationRequired")

	// The first write at B is signed with B's key and chains onto the #sync head.
	create(b.PDS, bToken, "app.bsky.feed.post", testpds.Post("hello from B"))
	cm := testpds.ExpectEvents(t, subB, alice.DID, "#commit")[0].Commit
	cc, _ := testpds.CARCommit(t, cm.Blocks)
	if err := cc.VerifySignature(bPub); err != nil || testpds.Str(cm.Since) != syncCommit.Rev || cm.PrevData == nil || cm.PrevData.String() != before.data {
		t.Fatalf("first commit at B: %v since %s prevData %v", err, testpds.Str(cm.Since), cm.PrevData)
	}

	final := snapshotAccount(t, b.PDS, alice.DID, bToken)

	// And back to A, where the deactivated account still is: the migration logs in there instead of creating.
	backState := filepath.Join(t.TempDir(), "back.json")
	res, err = migrate.Run(ctx, migrate.Options{OldPDS: b.URL, NewPDS: a.URL, Identifier: alice.DID, Password: alice.Password, StateFile: backState,
		PromptPLCToken: func(context.Context) (string, error) { return b.mail.Next(t).Token(t), nil }})
	if err != nil {
		t.Fatalf("migration back: %v", err)
	}
	if res.Records != 45 {
		t.Fatalf("back: %+v", res)
	}
	doc = plcDocument(t, plcURL, alice.DID)
	aSession := testpds.MustOK(t, testpds.Login(t, a.PDS, alice.DID, alice.Password))
	aToken := aSession["accessJwt"].(string)
	aKey := testpds.MustOK(t, a.Query("com.atproto.identity.getRecommendedDidCredentials", nil, aToken))["verificationMethods"].(map[string]any)["atproto"].(string)
	if doc.PDSEndpoint() != a.URL || doc.SigningKey() != aKey || aSession["active"] != true {
		t.Fatalf("after migrating back: PLC %+v, session %v", doc, aSession)
	}
	if j := testpds.MustOK(t, b.Query("com.atproto.server.getSession", nil, bToken)); j["active"] != false {
		t.Fatalf("B account after migrating back: %v", j)
	}
	back := snapshotAccount(t, a.PDS, alice.DID, aToken)
	if len(back.records) != 45 || fmt.Sprint(sortedPairs(back.records)) != fmt.Sprint(sortedPairs(final.records)) || back.data != final.data {
		t.Fatalf("records after migrating back: %d, data %s vs %s", len(back.records), back.data, final.data)
	}
	// A announces the account again; its head is signed with A's key.
	f := testpds.NextFor(t, subA, "#sync", alice.DID)
	aPub, _ := atcrypto.ParsePublicDIDKey(aKey)
	if sc, _ := testpds.CARCommit(t, f.Sync.Blocks); sc.VerifySignature(aPub) != nil || sc.Data.String() != final.data {
		t.Fatalf("A's #sync after migrating back")
	}
	create(a.PDS, aToken, "app.bsky.feed.post", testpds.Post("home again"))
}

func sortedPairs(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
