// Package migrate moves an account from one PDS to another over the public XRPC API, with the user's
// credentials, in the steps of the reference migration flow (the same as the official clients and goat):
//
//  1. log in at the old PDS; describeServer of the new one gives its DID;
//  2. getServiceAuth at the old PDS (aud = the new PDS's DID, lxm = com.atproto.server.createAccount), then
//     createAccount at the new PDS with the DID and that token: the account starts deactivated there;
//  3. sync.getRepo from the old PDS (spooled to a temporary file) -> repo.importRepo at the new one;
//  4. repo.listMissingBlobs at the new PDS -> sync.getBlob from the old -> repo.uploadBlob to the new;
//  5. app.bsky.actor.getPreferences -> putPreferences;
//  6. a check that the new PDS holds as many records and blobs as the old one (a write made at the old PDS
//     meanwhile sends the flow back to step 3);
//  7. requestPlcOperationSignature at the old PDS (the user gets a token by email), getRecommendedDidCredentials
//     at the new one, signPlcOperation at the old one, submitPlcOperation at the new one;
//  8. activateAccount at the new PDS, the counts checked once more, then deactivateAccount at the old PDS.
//
// Every step is idempotent or skipped when the new PDS shows it done (the account exists, validDid, active),
// and a state file records the others, so an interrupted migration resumes where it stopped. Nothing is
// deactivated before the new PDS serves the account with the same counts.
package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
)

// ErrPLCTokenNeeded: the old PDS emailed a token for the PLC operation and there is no way to ask for it (no
// Options.PromptPLCToken): run again with Options.PLCToken.
var ErrPLCTokenNeeded = errors.New("the old PDS has emailed a confirmation token for the PLC operation: run again with it")

// Options describe a migration.
type Options struct {
	OldPDS, NewPDS  string // base URLs (https://pds.example.com)
	Identifier      string // handle, DID or email of the account at the old PDS
	Password        string // its password (not an app password: migration needs full access)
	AuthFactorToken string // the old PDS's email 2FA code, if it asks for one

	// The account at the new PDS: defaults are the old handle and email, and the same password.
	NewHandle, NewEmail, NewPassword string
	InviteCode                       string // if the new PDS requires one

	// PLCToken is the token the old PDS emailed for the PLC operation. When empty, one is requested and
	// PromptPLCToken asks for it (nil: Run stops with ErrPLCTokenNeeded, the state saved).
	PLCToken       string
	PromptPLCToken func(ctx context.Context) (string, error)

	StateFile       string       // where progress is kept for a resumed run ("" = not kept)
	Progress        io.Writer    // progress report (nil = none); a terminal gets a live bar
	HTTPClient      *http.Client // nil = a client without an overall timeout (repositories and blobs can be large)
	BlobConcurrency int          // blobs copied at once (default 4)
	TempDir         string       // where the repository CAR is spooled (default os.TempDir())
}

// Result summarizes a completed migration.
type Result struct {
	DID          string
	Handle       string
	Records      int64
	Blobs        int64 // blobs the new PDS has for the account
	BlobsCopied  int   // copied by this run
	BlobsMissing []string
	RepoBytes    int64
	Preferences  int
	// PreferencesNotCopied: preferences the new PDS refused (one without an AppView may not store any).
	PreferencesNotCopied int
	AlreadyActive        bool // the account was already active at the new PDS (a finished migration resumed)
}

// state is the resumable part of a migration.
type state struct {
	OldPDS       string          `json:"oldPds"`
	NewPDS       string          `json:"newPds"`
	DID          string          `json:"did"`
	Done         map[string]bool `json:"done"`
	ImportedRev  string          `json:"importedRev,omitempty"`  // the old repository's rev the import copied
	PLCRequested time.Time       `json:"plcRequested,omitempty"` // when the emailed token was requested
	// MissingAtOld: blobs records reference that the old PDS does not have either (getBlob: BlobNotFound).
	MissingAtOld []string `json:"missingAtOld,omitempty"`
}

const (
	stepCreate      = "create"
	stepRepo        = "repo"
	stepBlobs       = "blobs"
	stepPreferences = "preferences"
	stepPLC         = "plc"
	stepActivate    = "activate"
	stepDeactivate  = "deactivate"
)

type migration struct {
	opts     Options
	old, new *client
	st       *state
	res      Result
	p        *progress
}

// Run performs the migration described by opts.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.OldPDS == "" || opts.NewPDS == "" || opts.Identifier == "" || opts.Password == "" {
		return nil, errors.New("migrate: the old and new PDS, the identifier and the password are required")
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	if opts.BlobConcurrency <= 0 {
		opts.BlobConcurrency = 4
	}
	m := &migration{
		opts: opts,
		old:  &client{base: strings.TrimRight(opts.OldPDS, "/"), http: hc},
		new:  &client{base: strings.TrimRight(opts.NewPDS, "/"), http: hc},
		p:    newProgress(opts.Progress),
	}
	if err := m.run(ctx); err != nil {
		m.p.finish()
		return &m.res, err
	}
	m.p.finish()
	return &m.res, nil
}

func (m *migration) run(ctx context.Context) error {
	m.p.step("logging in at %s", m.old.base)
	oldSess, err := m.old.login(ctx, m.opts.Identifier, m.opts.Password, m.opts.AuthFactorToken)
	if err != nil {
		return fmt.Errorf("login at the old PDS: %w", err)
	}
	m.res.DID, m.res.Handle = oldSess.DID, oldSess.Handle
	if err := m.loadState(oldSess.DID); err != nil {
		return err
	}
	var desc struct {
		DID string `json:"did"`
	}
	if err := m.new.query(ctx, "com.atproto.server.describeServer", nil, &desc); err != nil {
		return fmt.Errorf("describing the new PDS: %w", err)
	}
	if desc.DID == "" {
		return errors.New("the new PDS did not tell its DID (describeServer)")
	}

	newSess, err := m.createAccount(ctx, oldSess, desc.DID)
	if err != nil {
		return err
	}
	if newSess.active() {
		// Created and activated by an earlier run: only the old account may be left to deactivate.
		m.res.AlreadyActive = true
		for _, s := range []string{stepCreate, stepRepo, stepBlobs, stepPreferences, stepPLC, stepActivate} {
			m.st.Done[s] = true
		}
	}
	for attempt := 0; !m.res.AlreadyActive; attempt++ {
		if err := m.copyRepo(ctx); err != nil {
			return err
		}
		if err := m.copyBlobs(ctx); err != nil {
			return err
		}
		if err := m.copyPreferences(ctx); err != nil {
			return err
		}
		stale, err := m.checkCounts(ctx, false)
		if err != nil {
			return err
		}
		if !stale {
			break
		}
		if attempt == 2 {
			return errors.New("the old repository keeps changing: stop writing to the account during the migration")
		}
		m.p.note("the old repository changed since it was copied: copying it again")
		m.st.Done[stepRepo], m.st.Done[stepBlobs] = false, false
	}
	if err := m.updateIdentity(ctx); err != nil {
		return err
	}
	if err := m.activate(ctx); err != nil {
		return err
	}
	if _, err := m.checkCounts(ctx, true); err != nil {
		return err
	}
	return m.deactivateOld(ctx)
}

// ---- state ----

func (m *migration) loadState(did string) error {
	m.st = &state{OldPDS: m.old.base, NewPDS: m.new.base, DID: did, Done: map[string]bool{}}
	if m.opts.StateFile == "" {
		return nil
	}
	raw, err := os.ReadFile(m.opts.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return m.saveState()
	}
	if err != nil {
		return err
	}
	var saved state
	if err := json.Unmarshal(raw, &saved); err != nil {
		return fmt.Errorf("state file %s: %w", m.opts.StateFile, err)
	}
	if saved.DID != did || saved.OldPDS != m.old.base || saved.NewPDS != m.new.base {
		return fmt.Errorf("state file %s is for %s from %s to %s, not this migration", m.opts.StateFile, saved.DID, saved.OldPDS, saved.NewPDS)
	}
	if saved.Done == nil {
		saved.Done = map[string]bool{}
	}
	m.st = &saved
	m.p.note("resuming (state file %s)", m.opts.StateFile)
	return nil
}

func (m *migration) saveState() error {
	if m.opts.StateFile == "" {
		return nil
	}
	raw, err := json.MarshalIndent(m.st, "", "  ")
	if err != nil {
		return err
	}
	tmp := m.opts.StateFile + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, m.opts.StateFile)
}

func (m *migration) done(step string) error {
	m.st.Done[step] = true
	return m.saveState()
}

// ---- 2: the account at the new PDS ----

func (m *migration) createAccount(ctx context.Context, oldSess *session, newDID string) (*session, error) {
	password := or(m.opts.NewPassword, m.opts.Password)
	if m.st.Done[stepCreate] {
		return m.loginNew(ctx, oldSess.DID, password)
	}
	m.p.step("creating the account at %s", m.new.base)
	var tok struct {
		Token string `json:"token"`
	}
	err := m.old.query(ctx, "com.atproto.server.getServiceAuth", url.Values{
		"aud": {newDID}, "lxm": {"com.atproto.server.createAccount"},
	}, &tok)
	if err != nil {
		return nil, fmt.Errorf("service auth from the old PDS: %w", err)
	}
	in := map[string]any{
		"did":      oldSess.DID,
		"handle":   or(m.opts.NewHandle, oldSess.Handle),
		"email":    or(m.opts.NewEmail, oldSess.Email),
		"password": password,
	}
	if m.opts.InviteCode != "" {
		in["inviteCode"] = m.opts.InviteCode
	}
	b, err := jsonBody(in)
	if err != nil {
		return nil, err
	}
	m.new.access = tok.Token
	resp, err := m.new.send(ctx, http.MethodPost, "com.atproto.server.createAccount", nil, b, true)
	m.new.access = ""
	if err != nil {
		// An account of this DID may be there already: an earlier run, or a migration back to a PDS that kept
		// the deactivated account. The password decides.
		sess, lerr := m.loginNew(ctx, oldSess.DID, password)
		if lerr != nil {
			return nil, fmt.Errorf("createAccount at the new PDS: %w", err)
		}
		m.p.note("the account exists at the new PDS already (%s): continuing with it", statusOf(sess))
		return sess, m.done(stepCreate)
	}
	var sess session
	if err := decode(resp, &sess); err != nil {
		return nil, err
	}
	m.new.access, m.new.refresh = sess.AccessJwt, sess.RefreshJwt
	f := false
	sess.Active = &f
	return &sess, m.done(stepCreate)
}

func (m *migration) loginNew(ctx context.Context, did, password string) (*session, error) {
	sess, err := m.new.login(ctx, did, password, "")
	if err != nil {
		return nil, fmt.Errorf("login at the new PDS: %w", err)
	}
	if sess.DID != did {
		return nil, fmt.Errorf("the new PDS logged in %s, not %s", sess.DID, did)
	}
	return sess, nil
}

func statusOf(s *session) string {
	if s.active() {
		return "active"
	}
	return or(s.Status, "deactivated")
}

// ---- 3: repository ----

func (m *migration) copyRepo(ctx context.Context) error {
	if m.st.Done[stepRepo] {
		return nil
	}
	did := m.st.DID
	var latest struct {
		Rev string `json:"rev"`
	}
	if err := m.old.query(ctx, "com.atproto.sync.getLatestCommit", url.Values{"did": {did}}, &latest); err != nil {
		return fmt.Errorf("old repository head: %w", err)
	}
	m.p.step("exporting the repository from %s", m.old.base)
	f, err := os.CreateTemp(m.opts.TempDir, "pds-migrate-*.car")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	resp, err := m.old.do(ctx, http.MethodGet, "com.atproto.sync.getRepo", url.Values{"did": {did}}, nil, true)
	if err != nil {
		return fmt.Errorf("getRepo at the old PDS: %w", err)
	}
	n, err := io.Copy(f, m.p.reader(resp.Body, resp.ContentLength, "repository download"))
	resp.Body.Close()
	m.p.done()
	if err != nil {
		return fmt.Errorf("getRepo at the old PDS: %w", err)
	}
	m.res.RepoBytes = n

	m.p.step("importing the repository (%s) into %s", humanize.IBytes(uint64(n)), m.new.base)
	in := &body{contentType: "application/vnd.ipld.car", length: n, open: func() (io.ReadCloser, error) {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		return io.NopCloser(m.p.reader(f, n, "repository upload")), nil
	}}
	resp, err = m.new.do(ctx, http.MethodPost, "com.atproto.repo.importRepo", nil, in, true)
	m.p.done()
	if err != nil {
		return fmt.Errorf("importRepo at the new PDS: %w", err)
	}
	decode(resp, nil)
	m.st.ImportedRev = latest.Rev
	return m.done(stepRepo)
}

// ---- 4: blobs ----

func (m *migration) copyBlobs(ctx context.Context) error {
	if m.st.Done[stepBlobs] {
		return nil
	}
	m.p.step("listing the blobs %s is missing", m.new.base)
	var missing []string
	for cursor := ""; ; {
		params := url.Values{"limit": {"1000"}}
		if cursor != "" {
			params.Set("cursor", cursor)
		}
		var page struct {
			Cursor string `json:"cursor"`
			Blobs  []struct {
				CID string `json:"cid"`
			} `json:"blobs"`
		}
		if err := m.new.query(ctx, "com.atproto.repo.listMissingBlobs", params, &page); err != nil {
			return fmt.Errorf("listMissingBlobs at the new PDS: %w", err)
		}
		for _, b := range page.Blobs {
			missing = append(missing, b.CID)
		}
		if page.Cursor == "" || len(page.Blobs) == 0 {
			break
		}
		cursor = page.Cursor
	}
	if len(missing) > 0 {
		m.p.step("copying %d blobs", len(missing))
	}
	var (
		mu       sync.Mutex
		failed   []string
		notFound []string
		copied   int
		wg       sync.WaitGroup
		next     = make(chan string)
	)
	m.p.count(0, len(missing), "blobs")
	for i := 0; i < m.opts.BlobConcurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				err := m.copyBlob(ctx, c)
				for try := 1; err != nil && try < 3 && !isAPIError(err, "BlobNotFound") && ctx.Err() == nil; try++ {
					time.Sleep(time.Duration(try) * time.Second)
					err = m.copyBlob(ctx, c)
				}
				mu.Lock()
				switch {
				case err == nil:
					copied++
				case isAPIError(err, "BlobNotFound"):
					notFound = append(notFound, c) // the old PDS does not have it either
				default:
					failed = append(failed, fmt.Sprintf("%s: %v", c, err))
				}
				m.p.count(copied+len(notFound)+len(failed), len(missing), "blobs")
				mu.Unlock()
			}
		}()
	}
	for _, c := range missing {
		select {
		case next <- c:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	m.p.done()
	m.res.BlobsCopied += copied
	m.res.BlobsMissing = notFound
	m.st.MissingAtOld = notFound
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d blobs could not be copied (run again to retry): %s", len(failed), strings.Join(failed, "; "))
	}
	for _, c := range notFound {
		m.p.note("blob %s is referenced by a record but the old PDS does not have it either", c)
	}
	return m.done(stepBlobs)
}

func (m *migration) copyBlob(ctx context.Context, c string) error {
	resp, err := m.old.do(ctx, http.MethodGet, "com.atproto.sync.getBlob", url.Values{"did": {m.st.DID}, "cid": {c}}, nil, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	used := false
	in := &body{contentType: ct, length: resp.ContentLength, open: func() (io.ReadCloser, error) {
		if used {
			return nil, errors.New("blob body already sent")
		}
		used = true
		return io.NopCloser(resp.Body), nil
	}}
	var out struct {
		Blob struct {
			Ref struct {
				Link string `json:"$link"`
			} `json:"ref"`
		} `json:"blob"`
	}
	up, err := m.new.do(ctx, http.MethodPost, "com.atproto.repo.uploadBlob", nil, in, true)
	if err != nil {
		return err
	}
	if err := decode(up, &out); err != nil {
		return err
	}
	if out.Blob.Ref.Link != c {
		return fmt.Errorf("the new PDS stored the blob as %s", out.Blob.Ref.Link)
	}
	return nil
}

// ---- 5: preferences ----

// declaredAgePref is computed by the PDS on read; it is never written.
const declaredAgePref = "app.bsky.actor.defs#declaredAgePref"

func (m *migration) copyPreferences(ctx context.Context) error {
	if m.st.Done[stepPreferences] {
		return nil
	}
	m.p.step("copying preferences")
	var prefs struct {
		Preferences []json.RawMessage `json:"preferences"`
	}
	if err := m.old.query(ctx, "app.bsky.actor.getPreferences", nil, &prefs); err != nil {
		// A PDS without an AppView may not serve preferences at all (the reference): nothing to copy.
		m.p.note("preferences not copied: the old PDS answered %v", err)
		return m.done(stepPreferences)
	}
	keep := []json.RawMessage{}
	for _, p := range prefs.Preferences {
		var head struct {
			Type string `json:"$type"`
		}
		if json.Unmarshal(p, &head) == nil && head.Type == declaredAgePref {
			continue
		}
		keep = append(keep, p)
	}
	if len(keep) == 0 {
		return m.done(stepPreferences)
	}
	if err := m.new.procedure(ctx, "app.bsky.actor.putPreferences", map[string]any{"preferences": keep}, nil); err != nil {
		if !isAPIError(err) {
			return fmt.Errorf("putPreferences at the new PDS: %w", err)
		}
		// A PDS without an AppView may not store preferences (the reference): the rest of the account moves.
		m.p.note("WARNING: %d preferences not copied: the new PDS answered %v", len(keep), err)
		m.res.PreferencesNotCopied = len(keep)
		return m.done(stepPreferences)
	}
	m.res.Preferences = len(keep)
	return m.done(stepPreferences)
}

// ---- 6: counts ----

// checkCounts compares the two accounts. stale reports that the old repository moved on since it was copied
// (copy it again); a mismatch that copying again cannot fix is an error. final additionally requires the new
// account to be active with a DID document pointing at it.
func (m *migration) checkCounts(ctx context.Context, final bool) (stale bool, err error) {
	m.p.step("checking the new account against the old one")
	oldSt, err := m.old.status(ctx)
	if err != nil {
		return false, fmt.Errorf("checkAccountStatus at the old PDS: %w", err)
	}
	newSt, err := m.new.status(ctx)
	if err != nil {
		return false, fmt.Errorf("checkAccountStatus at the new PDS: %w", err)
	}
	if !final && m.st.ImportedRev != "" && oldSt.RepoRev != m.st.ImportedRev {
		return true, nil
	}
	var problems []string
	if newSt.IndexedRecords != oldSt.IndexedRecords {
		problems = append(problems, fmt.Sprintf("records: old %d, new %d", oldSt.IndexedRecords, newSt.IndexedRecords))
	}
	if newSt.ExpectedBlobs != oldSt.ExpectedBlobs {
		problems = append(problems, fmt.Sprintf("blobs referenced: old %d, new %d", oldSt.ExpectedBlobs, newSt.ExpectedBlobs))
	}
	// Every referenced blob must be at the new PDS, except those the old one lacks too. (The old PDS's own
	// importedBlobs is not comparable: the reference counts unreferenced uploads as well.)
	if lacking := newSt.ExpectedBlobs - newSt.ImportedBlobs; lacking > int64(len(m.st.MissingAtOld)) {
		problems = append(problems, fmt.Sprintf("blobs: the new PDS has %d of %d", newSt.ImportedBlobs, newSt.ExpectedBlobs))
	}
	if final && (!newSt.Activated || !newSt.ValidDid) {
		problems = append(problems, fmt.Sprintf("new account activated=%v validDid=%v", newSt.Activated, newSt.ValidDid))
	}
	if len(problems) > 0 {
		if !final && m.st.ImportedRev == "" {
			// Copied by an earlier run that did not record the rev: copy again rather than fail.
			return true, nil
		}
		return false, fmt.Errorf("the new account does not match the old one, nothing was deactivated: %s", strings.Join(problems, "; "))
	}
	m.res.Records, m.res.Blobs = newSt.IndexedRecords, newSt.ImportedBlobs
	m.p.note("records %d, blobs %d/%d, repository %s", newSt.IndexedRecords, newSt.ImportedBlobs, newSt.ExpectedBlobs, newSt.RepoRev)
	return false, nil
}

// ---- 7: identity ----

func (m *migration) updateIdentity(ctx context.Context) error {
	if m.st.Done[stepPLC] {
		return nil
	}
	if st, err := m.new.status(ctx); err == nil && st.ValidDid {
		return m.done(stepPLC) // the DID document points at the new PDS already
	}
	if !strings.HasPrefix(m.st.DID, "did:plc:") {
		return fmt.Errorf("%s is not a did:plc: update its DID document with the new PDS's getRecommendedDidCredentials, then run again", m.st.DID)
	}
	m.p.step("updating the DID document (PLC operation)")
	token := m.opts.PLCToken
	if token == "" {
		if err := m.old.procedure(ctx, "com.atproto.identity.requestPlcOperationSignature", nil, nil); err != nil {
			return fmt.Errorf("requestPlcOperationSignature at the old PDS: %w", err)
		}
		m.st.PLCRequested = time.Now()
		if err := m.saveState(); err != nil {
			return err
		}
		if m.opts.PromptPLCToken == nil {
			return ErrPLCTokenNeeded
		}
		m.p.pause()
		t, err := m.opts.PromptPLCToken(ctx)
		if err != nil {
			return err
		}
		if token = strings.TrimSpace(t); token == "" {
			return ErrPLCTokenNeeded
		}
	}
	var creds map[string]any
	if err := m.new.query(ctx, "com.atproto.identity.getRecommendedDidCredentials", nil, &creds); err != nil {
		return fmt.Errorf("getRecommendedDidCredentials at the new PDS: %w", err)
	}
	creds["token"] = token
	var signed struct {
		Operation json.RawMessage `json:"operation"`
	}
	if err := m.old.procedure(ctx, "com.atproto.identity.signPlcOperation", creds, &signed); err != nil {
		return fmt.Errorf("signPlcOperation at the old PDS: %w", err)
	}
	if err := m.new.procedure(ctx, "com.atproto.identity.submitPlcOperation", map[string]any{"operation": signed.Operation}, nil); err != nil {
		return fmt.Errorf("submitPlcOperation at the new PDS: %w", err)
	}
	return m.done(stepPLC)
}

// ---- 8: switch over ----

func (m *migration) activate(ctx context.Context) error {
	if m.st.Done[stepActivate] {
		return nil
	}
	m.p.step("activating the account at %s", m.new.base)
	if st, err := m.new.status(ctx); err == nil && st.Activated {
		return m.done(stepActivate)
	}
	if err := m.new.procedure(ctx, "com.atproto.server.activateAccount", nil, nil); err != nil {
		return fmt.Errorf("activateAccount at the new PDS: %w", err)
	}
	return m.done(stepActivate)
}

func (m *migration) deactivateOld(ctx context.Context) error {
	if m.st.Done[stepDeactivate] {
		return nil
	}
	m.p.step("deactivating the account at %s", m.old.base)
	if st, err := m.old.status(ctx); err == nil && !st.Activated {
		return m.done(stepDeactivate)
	}
	if err := m.old.procedure(ctx, "com.atproto.server.deactivateAccount", map[string]any{}, nil); err != nil {
		return fmt.Errorf("deactivateAccount at the old PDS: %w", err)
	}
	m.p.note("done: %s is now hosted at %s", m.st.DID, m.new.base)
	return m.done(stepDeactivate)
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
