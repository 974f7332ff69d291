package takeover

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	atrepo "github.com/bluesky-social/indigo/atproto/repo"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/blobgc"
	"github.com/pdsgo/pds/pds/blobstore"
	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/takeover/refpds"
)

// Options say what to take over and how.
type Options struct {
	From    string // the reference's data directory (/pds)
	EnvFile string // its env file (/pds/pds.env)
	To      string // this server's new data directory: must not exist, or be empty
	Check   bool   // only check and report; write nothing
	Move    bool   // move disk blobs instead of copying them (same file system; the reference loses them)
	// Progress, if set, is called as the work advances.
	Progress func(Progress)
	// Now is the takeover's clock (zero: time.Now): which sessions are expired, which events are in the window.
	Now time.Time
}

// Progress is where a run is.
type Progress struct {
	Phase       string // "checking", "accounts", "events"
	Done, Total int64
}

// ErrTarget: the destination directory exists and is not empty.
var ErrTarget = errors.New("the destination directory is not empty")

// Run takes over opts.From into opts.To (see the package doc) and returns what it found and carried. With
// opts.Check it writes nothing and returns the same report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.From == "" || opts.EnvFile == "" || opts.To == "" {
		return nil, errors.New("--from, --env and --to are all required")
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Progress == nil {
		opts.Progress = func(Progress) {}
	}
	// A dry run may read a running reference; the takeover itself refuses one (refpds.Dir.CheckStopped).
	ref, err := refpds.Open(ctx, opts.From, opts.EnvFile, refpds.Options{WhileRunning: opts.Check})
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	if err := checkTarget(opts); err != nil {
		return nil, err
	}
	set, err := planSettings(ref.Env, opts.To)
	if err != nil {
		return nil, err
	}
	r := &job{opts: opts, ref: ref, set: set, rep: &Report{}}
	if err := r.scan(ctx); err != nil {
		return nil, err
	}
	if opts.Check {
		return r.rep, nil
	}
	if err := r.build(ctx); err != nil {
		return nil, err
	}
	r.rep.Done = true
	return r.rep, nil
}

// checkTarget refuses a destination that exists and is not empty, or sits inside the source.
func checkTarget(opts Options) error {
	from, _ := filepath.Abs(opts.From)
	to, _ := filepath.Abs(opts.To)
	if to == from || strings.HasPrefix(to, from+string(filepath.Separator)) {
		return fmt.Errorf("--to %s is inside the reference's directory %s, which takeover never writes", opts.To, opts.From)
	}
	entries, err := os.ReadDir(opts.To)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s: %w", opts.To, ErrTarget)
	}
	return nil
}

// job is one run's state.
type job struct {
	opts Options
	ref  *refpds.Dir
	set  *settings
	rep  *Report

	actors   []refpds.Actor // the accounts carried
	scanned  []refpds.Actor // those whose files scan found
	appPws   map[string][]refpds.AppPassword
	tokens   map[string][]refpds.RefreshToken
	invites  []*refpds.InviteCode
	heads    map[string]refpds.Root // from each account's store.sqlite
	seqHead  int64
	evtSince time.Time
}

// backfillLimit is the reference's firehose window (PDS_REPO_BACKFILL_LIMIT_MS, default a day).
func (r *job) backfillLimit() time.Duration {
	if ms, err := strconv.ParseInt(r.ref.Env["PDS_REPO_BACKFILL_LIMIT_MS"], 10, 64); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return 24 * time.Hour
}

// scan reads everything, checks what can be checked without writing, and fills the report.
func (r *job) scan(ctx context.Context) error {
	ref, rep := r.ref, r.rep
	rep.Hostname = ref.Env["PDS_HOSTNAME"]
	rep.RunningPID = ref.RunningPID
	rep.From, rep.To = r.opts.From, r.opts.To
	rep.Settings = r.set.env
	rep.Dropped = r.set.dropped
	for _, name := range []string{"PDS_JWT_SECRET", "PDS_ADMIN_PASSWORD", "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX"} {
		if ref.Env[name] != "" {
			rep.Secrets = append(rep.Secrets, name)
		}
	}
	if r.set.kms {
		rep.notCarried(1, "PLC rotation key", "it is in AWS KMS (PDS_PLC_ROTATION_KEY_KMS_KEY_ID), which this server does not use: "+
			"identity operations for users need a rotation key in their DID documents that this server holds")
	}
	switch {
	case ref.S3Bucket != "":
		rep.BlobStore = "S3 bucket " + ref.S3Bucket + ", referenced in place (same key layout: blocks/<did>/<cid>)"
	case r.opts.Move:
		rep.BlobStore = "disk " + ref.BlobDisk + ", moved into " + filepath.Join(r.opts.To, "blobs")
	default:
		rep.BlobStore = "disk " + ref.BlobDisk + ", copied into " + filepath.Join(r.opts.To, "blobs")
	}

	actors, err := ref.Actors(ctx)
	if err != nil {
		return err
	}
	handles := map[string]string{}
	for _, a := range actors {
		switch {
		case !a.HasAccount:
			rep.notCarried(1, "actor without an account row ("+a.DID+")", "no email or password: the reference does not host it")
			continue
		case a.Handle == "":
			rep.notCarried(1, "account without a handle ("+a.DID+")", "this server needs a handle for every account")
			continue
		}
		if _, err := syntax.ParseDID(a.DID); err != nil {
			return fmt.Errorf("account.sqlite: actor %q: %w", a.DID, err)
		}
		h := strings.ToLower(a.Handle)
		if other, dup := handles[h]; dup {
			return fmt.Errorf("account.sqlite: %s and %s have the same handle %s", other, a.DID, h)
		}
		handles[h] = a.DID
		r.actors = append(r.actors, a)
	}
	rep.Accounts = len(r.actors)

	pws, err := ref.AppPasswords(ctx)
	if err != nil {
		return err
	}
	r.appPws = map[string][]refpds.AppPassword{}
	for _, p := range pws {
		r.appPws[p.DID] = append(r.appPws[p.DID], p)
	}
	toks, err := ref.RefreshTokens(ctx, r.opts.Now)
	if err != nil {
		return err
	}
	r.tokens = map[string][]refpds.RefreshToken{}
	for _, t := range toks {
		r.tokens[t.DID] = append(r.tokens[t.DID], t)
	}
	if r.invites, err = ref.InviteCodes(ctx); err != nil {
		return err
	}
	rep.InviteCodes = len(r.invites)
	for _, c := range r.invites {
		rep.InviteUses += len(c.Uses)
	}
	for _, t := range []struct{ table, what, why string }{
		{"email_token", "pending email tokens", "they expire within minutes; users ask for a new one"},
		{"token", "OAuth sessions", "OAuth apps sign in again (app passwords and sessions of the legacy API carry over)"},
		{"device", "remembered OAuth sign-in devices", "users sign in again on the account pages"},
	} {
		n, err := ref.Count(ctx, t.table)
		if err != nil {
			return err
		}
		rep.notCarried(n, t.what, t.why)
	}
	roots, err := ref.RepoRoots(ctx)
	if err != nil {
		return err
	}

	r.heads = map[string]refpds.Root{}
	for i, a := range r.actors {
		opts := r.opts
		opts.Progress(Progress{Phase: "checking", Done: int64(i), Total: int64(len(r.actors))})
		if err := ctx.Err(); err != nil {
			return err
		}
		sc, err := r.scanAccountStable(ctx, a)
		if err != nil {
			return err
		}
		if sc == nil {
			continue // deleted by the running reference during a dry run
		}
		r.addScan(a, sc, roots[a.DID])
	}
	r.opts.Progress(Progress{Phase: "checking", Done: int64(len(r.actors)), Total: int64(len(r.actors))})
	r.actors, rep.Accounts = r.scanned, len(r.scanned)
	for _, a := range r.actors {
		rep.AppPasswords += len(r.appPws[a.DID])
		rep.Sessions += len(r.tokens[a.DID])
		switch {
		case a.TakedownRef != "":
			rep.TakenDown++
		case a.DeactivatedAt != nil:
			rep.Deactivated++
		}
	}

	if r.seqHead, err = ref.SeqHead(ctx); err != nil {
		return err
	}
	rep.SeqHead = r.seqHead
	r.evtSince = r.opts.Now.Add(-r.backfillLimit())
	rep.EventsSince = r.evtSince
	total, invalid, err := ref.CountEvents(ctx, r.evtSince)
	if err != nil {
		return err
	}
	rep.Events = total - invalid
	rep.notCarried(invalid, "invalidated firehose events", "the reference never sends them either")
	if rep.MissingBlobFiles > 0 {
		return fmt.Errorf("%d blob files are missing from %s (first: %s): the reference cannot serve them either; restore them from a backup, or remove their rows, then run takeover again",
			rep.MissingBlobFiles, r.ref.BlobDisk, rep.FirstMissingBlob)
	}
	return nil
}

// accountScan is what scanAccount found in one account's files.
type accountScan struct {
	head                                   refpds.Root
	records, blocks                        int64
	prefs, recordTakedowns                 int
	blobs, blobBytes, blobTakedowns, temps int64
	missingBlobFiles                       int64
	firstMissingBlob                       string
}

// scanAccountStable is scanAccount, read again while a running reference (a dry run) writes to the account's
// store meanwhile. It returns nil for an account the running reference deleted since Actors listed it.
func (r *job) scanAccountStable(ctx context.Context, a refpds.Actor) (*accountScan, error) {
	for attempt := 1; ; attempt++ {
		sc, changed, err := r.scanAccount(ctx, a)
		if r.ref.RunningPID != 0 && errors.Is(err, refpds.ErrMissing) {
			if ok, xerr := r.ref.ActorExists(ctx, a.DID); xerr == nil && !ok {
				return nil, nil
			}
		}
		if !changed || attempt == 5 {
			return sc, err
		}
	}
}

// scanAccount checks one account's repository files: present, of the known schema, the key signs the head.
// changed: a running reference wrote to them while they were read (refpds.ActorStore.Changed).
func (r *job) scanAccount(ctx context.Context, a refpds.Actor) (_ *accountScan, changed bool, err error) {
	st, err := r.ref.OpenActor(ctx, a.DID)
	if err != nil {
		return nil, false, err
	}
	defer func() {
		changed = st.Changed()
		st.Close()
	}()
	sc := &accountScan{}
	if sc.head, err = st.Root(ctx); err != nil {
		return nil, false, err
	}
	if sc.head.DID != a.DID {
		return nil, false, fmt.Errorf("%s/store.sqlite: the repository is of %s, not %s", st.Dir, sc.head.DID, a.DID)
	}
	if _, err := r.commitKey(ctx, st, sc.head); err != nil {
		return nil, false, err
	}
	if sc.records, sc.blocks, err = st.Counts(ctx); err != nil {
		return nil, false, err
	}
	prefs, err := st.Preferences(ctx)
	if err != nil {
		return nil, false, err
	}
	sc.prefs = len(prefs)
	tds, err := st.RecordTakedowns(ctx)
	if err != nil {
		return nil, false, err
	}
	sc.recordTakedowns = len(tds)
	blobs, err := st.Blobs(ctx)
	if err != nil {
		return nil, false, err
	}
	for _, b := range blobs {
		if b.TempKey != "" {
			sc.temps++
			continue
		}
		sc.blobs++
		sc.blobBytes += b.Size
		if b.TakedownRef != "" {
			sc.blobTakedowns++
		}
		if r.ref.BlobDisk != "" {
			if _, ok := r.blobFile(a.DID, b); !ok {
				if sc.missingBlobFiles == 0 {
					sc.firstMissingBlob = r.ref.BlobPath(a.DID, b.CID, b.TakedownRef != "")
				}
				sc.missingBlobFiles++
			}
		}
	}
	return sc, false, nil
}

// addScan adds an account's findings to the run's.
func (r *job) addScan(a refpds.Actor, sc *accountScan, root refpds.Root) {
	rep := r.rep
	if root.CID != "" && (root.CID != sc.head.CID || root.Rev != sc.head.Rev) {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: account.sqlite's head %s@%s differs from the repository's %s@%s; the repository's is kept",
			a.DID, root.CID, root.Rev, sc.head.CID, sc.head.Rev))
	}
	r.heads[a.DID] = sc.head
	r.scanned = append(r.scanned, a)
	rep.Records += sc.records
	rep.Blocks += sc.blocks
	rep.Preferences += sc.prefs
	rep.RecordTakedowns += sc.recordTakedowns
	rep.notCarried(sc.temps, "uploaded blobs no record uses yet", "temporary uploads; the reference deletes them too once they expire")
	rep.Blobs += sc.blobs
	rep.BlobBytes += sc.blobBytes
	rep.BlobTakedowns += int(sc.blobTakedowns)
	if rep.MissingBlobFiles == 0 {
		rep.FirstMissingBlob = sc.firstMissingBlob
	}
	rep.MissingBlobFiles += sc.missingBlobFiles
}

// commitKey parses the account's key and checks that it signed the head commit (so existing commits verify
// against the unchanged DID document, and new ones will).
func (r *job) commitKey(ctx context.Context, st *refpds.ActorStore, head refpds.Root) (*atcrypto.PrivateKeyK256, error) {
	key, err := atcrypto.ParsePrivateBytesK256(st.Key)
	if err != nil {
		return nil, fmt.Errorf("%s/key: %w", st.Dir, err)
	}
	c, err := cid.Decode(head.CID)
	if err != nil {
		return nil, fmt.Errorf("%s/store.sqlite: head %q: %w", st.Dir, head.CID, err)
	}
	data, _, ok, err := st.Block(ctx, c)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s/store.sqlite: the head commit %s is missing", st.Dir, c)
	}
	var commit atrepo.Commit
	if err := commit.UnmarshalCBOR(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("%s/store.sqlite: the head %s is not a commit: %w", st.Dir, c, err)
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, err
	}
	if err := commit.VerifySignature(pub); err != nil {
		return nil, fmt.Errorf("%s: the key does not sign the repository's head commit: %w", st.Dir, err)
	}
	return key, nil
}

// blobFile finds a blob's file: taken-down blobs are in the quarantine (or still in place if the quarantine
// failed), others in place.
func (r *job) blobFile(did string, b refpds.Blob) (string, bool) {
	first, second := r.ref.BlobPath(did, b.CID, false), r.ref.BlobPath(did, b.CID, true)
	if b.TakedownRef != "" {
		first, second = second, first
	}
	for _, p := range []string{first, second} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}

// build writes the new directory beside opts.To and renames it into place.
func (r *job) build(ctx context.Context) (err error) {
	to := filepath.Clean(r.opts.To)
	stage := filepath.Join(filepath.Dir(to), "."+filepath.Base(to)+".takeover-"+randomHex(4))
	if err := os.MkdirAll(stage, 0o700); err != nil {
		return err
	}
	b := &builder{job: r, dir: stage}
	defer func() {
		b.close()
		if err != nil {
			if uerr := b.undoMoves(); uerr != nil {
				err = fmt.Errorf("%w; and moving blobs back into the reference's directory failed: %v (the list of moves is in %s)", err, uerr, b.moveLog)
				return
			}
			os.RemoveAll(stage)
		}
	}()
	if err := b.open(ctx); err != nil {
		return err
	}
	for i, a := range r.actors {
		r.opts.Progress(Progress{Phase: "accounts", Done: int64(i), Total: int64(len(r.actors))})
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.account(ctx, a); err != nil {
			return fmt.Errorf("%s: %w", a.DID, err)
		}
	}
	if err := b.flushAccounts(ctx); err != nil {
		return err
	}
	r.opts.Progress(Progress{Phase: "accounts", Done: int64(len(r.actors)), Total: int64(len(r.actors))})
	if err := b.inviteCodes(ctx); err != nil {
		return err
	}
	if err := b.events(ctx); err != nil {
		return err
	}
	if err := r.set.write(stage); err != nil {
		return err
	}
	if err := b.close(); err != nil {
		return err
	}
	// The reference may have been started while this ran: what it wrote since would be lost.
	if err := r.ref.CheckStopped(); err != nil {
		return fmt.Errorf("the reference was started during the takeover: %w", err)
	}
	os.Remove(b.moveLog)
	if err := os.Remove(to); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err // checkTarget found it empty; something else wrote there meanwhile
	}
	if err := os.Rename(stage, to); err != nil {
		return err
	}
	return nil
}

// builder holds the new directory's stores while it is being written.
type builder struct {
	*job
	dir     string
	accts   *accountstore.Store
	repos   *repo.Store
	disk    *blobstore.Disk
	gc      *blobgc.Queue
	batch   []accountstore.AdoptedAccount
	moves   *bufio.Writer
	moveF   *os.File
	moveLog string
}

func (b *builder) open(ctx context.Context) error {
	var err error
	if b.accts, err = accountstore.Open(ctx, filepath.Join(b.dir, "account.sqlite")); err != nil {
		return err
	}
	if b.repos, err = repo.OpenStore(filepath.Join(b.dir, "actors"), repo.StoreOptions{}); err != nil {
		return err
	}
	if b.gc, err = blobgc.Open(ctx, filepath.Join(b.dir, "blobgc.sqlite")); err != nil {
		return err
	}
	if b.ref.BlobDisk != "" {
		if b.disk, err = blobstore.NewDisk(filepath.Join(b.dir, "blobs"), ""); err != nil {
			return err
		}
	}
	if b.opts.Move && b.disk != nil {
		// The moves are logged before each is made, so a failure (or a crash) can put the files back.
		b.moveLog = filepath.Join(b.dir, "moved-blobs.log")
		if b.moveF, err = os.OpenFile(b.moveLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return err
		}
		b.moves = bufio.NewWriter(b.moveF)
	}
	return nil
}

func (b *builder) close() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	if b.moveF != nil {
		keep(b.moves.Flush())
		keep(b.moveF.Close())
		b.moveF = nil
	}
	if b.accts != nil {
		keep(b.accts.Close())
		b.accts = nil
	}
	if b.repos != nil {
		keep(b.repos.Close())
		b.repos = nil
	}
	if b.gc != nil {
		keep(b.gc.Close())
		b.gc = nil
	}
	return first
}

// account carries one account: its repository, blobs, and rows (batched).
func (b *builder) account(ctx context.Context, a refpds.Actor) error {
	did := syntax.DID(a.DID)
	st, err := b.ref.OpenActor(ctx, a.DID)
	if err != nil {
		return err
	}
	defer st.Close()
	head := b.heads[a.DID]
	key, err := b.commitKey(ctx, st, head)
	if err != nil {
		return err
	}
	pub, _ := key.PublicKey()
	blobs, err := st.Blobs(ctx)
	if err != nil {
		return err
	}
	var keep []refpds.Blob
	var adoptBlobs []repo.AdoptBlob
	for _, bl := range blobs {
		if bl.TempKey != "" {
			continue
		}
		keep = append(keep, bl)
		adoptBlobs = append(adoptBlobs, repo.AdoptBlob{CID: bl.CID, MimeType: bl.MimeType, Size: bl.Size, CreatedAt: bl.CreatedAt})
	}
	commit, _ := cid.Decode(head.CID)
	res, err := b.repos.Adopt(ctx, did, st, repo.AdoptOptions{Commit: commit, VerifyKey: pub, Blobs: adoptBlobs, Now: b.opts.Now})
	if err != nil {
		return err
	}
	if res.UnreferencedBlobs > 0 {
		if err := b.gc.Mark(ctx, did, b.opts.Now); err != nil {
			return err
		}
	}
	b.rep.MissingBlobRefs += res.MissingBlobs

	aa := accountstore.AdoptedAccount{Account: accountstore.Account{
		DID:              did,
		Handle:           strings.ToLower(a.Handle),
		Email:            a.Email,
		PasswordHash:     a.PasswordScrypt,
		SigningKey:       key.Bytes(),
		CreatedAt:        a.CreatedAt,
		EmailConfirmedAt: a.EmailConfirmedAt,
		DeactivatedAt:    a.DeactivatedAt,
		DeleteAfter:      a.DeleteAfter,
		TakedownRef:      a.TakedownRef,
		InvitesDisabled:  a.InvitesDisabled,
	}}
	for _, p := range b.appPws[a.DID] {
		aa.AppPasswords = append(aa.AppPasswords, accountstore.AppPasswordHash{Name: p.Name, PasswordHash: p.PasswordScrypt, Privileged: p.Privileged, CreatedAt: p.CreatedAt})
	}
	for _, t := range b.tokens[a.DID] {
		aa.RefreshTokens = append(aa.RefreshTokens, accountstore.RefreshToken{ID: t.ID, DID: did, ExpiresAt: t.ExpiresAt, AppPasswordName: t.AppPasswordName, NextID: t.NextID})
	}
	prefs, err := st.Preferences(ctx)
	if err != nil {
		return err
	}
	for _, p := range prefs {
		if !json.Valid([]byte(p.ValueJSON)) {
			return fmt.Errorf("%s/store.sqlite: preference %s is not JSON", st.Dir, p.Name)
		}
		aa.Preferences = append(aa.Preferences, accountstore.Preference{Name: p.Name, Value: json.RawMessage(p.ValueJSON)})
	}
	tds, err := st.RecordTakedowns(ctx)
	if err != nil {
		return err
	}
	for _, t := range tds {
		aa.RecordTakedowns = append(aa.RecordTakedowns, accountstore.Takedown{DID: did, URI: t.URI, CID: t.CID, Ref: t.Ref})
	}
	for _, bl := range keep {
		if bl.TakedownRef != "" {
			aa.BlobTakedowns = append(aa.BlobTakedowns, accountstore.Takedown{DID: did, CID: bl.CID.String(), Ref: bl.TakedownRef})
		}
		if err := b.blob(ctx, did, bl); err != nil {
			return err
		}
	}
	b.batch = append(b.batch, aa)
	if len(b.batch) >= 200 {
		return b.flushAccounts(ctx)
	}
	return nil
}

func (b *builder) flushAccounts(ctx context.Context) error {
	if len(b.batch) == 0 {
		return nil
	}
	err := b.accts.AdoptAccounts(ctx, b.batch)
	b.batch = b.batch[:0]
	return err
}

// blob carries one disk blob: copied (and its hash checked against its CID) or moved. S3 blobs stay where they
// are: this server reads the same keys.
func (b *builder) blob(ctx context.Context, did syntax.DID, bl refpds.Blob) error {
	if b.disk == nil {
		return nil
	}
	src, ok := b.blobFile(did.String(), bl)
	if !ok {
		return fmt.Errorf("blob %s: %s: %w", bl.CID, b.ref.BlobPath(did.String(), bl.CID, bl.TakedownRef != ""), refpds.ErrMissing)
	}
	quarantined := bl.TakedownRef != ""
	if b.opts.Move {
		// Logged before it is made: an entry for a move that did not happen is skipped when undoing.
		fmt.Fprintf(b.moves, "%s\t%s\n", src, b.disk.FilePath(did, bl.CID, quarantined))
		if err := b.moves.Flush(); err != nil {
			return err
		}
		if _, err := b.disk.MoveIn(did, bl.CID, src, quarantined); err != nil {
			if errors.Is(err, blobstore.ErrCrossDevice) {
				return fmt.Errorf("--move: %s is on another file system than %s; copy the blobs instead (without --move)", b.ref.BlobDisk, b.opts.To)
			}
			return err
		}
		return nil
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	t, err := blobstore.Put(ctx, b.disk, f, -1, -1)
	if err != nil {
		return fmt.Errorf("copying blob %s: %w", src, err)
	}
	if !t.CID.Equals(bl.CID) {
		b.disk.DeleteTemp(ctx, t.Key)
		return fmt.Errorf("blob file %s: its content does not match its CID (it hashes to %s)", src, t.CID)
	}
	if err := b.disk.Promote(ctx, t.Key, did, bl.CID); err != nil {
		return err
	}
	if quarantined {
		return b.disk.Quarantine(ctx, did, bl.CID)
	}
	return nil
}

// undoMoves moves the blobs a failed run moved back to where the reference keeps them.
func (b *builder) undoMoves() error {
	if b.moveLog == "" {
		return nil
	}
	data, err := os.ReadFile(b.moveLog)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var firstErr error
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		src, dst, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		if _, err := os.Stat(dst); err != nil {
			continue // the move did not happen
		}
		if err := os.Rename(dst, src); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// events carries the firehose: the head seq and the events in the reference's backfill window.
func (b *builder) events(ctx context.Context) error {
	revs := make(map[syntax.DID]string, len(b.actors))
	for _, a := range b.actors {
		revs[syntax.DID(a.DID)] = b.heads[a.DID].Rev
	}
	var legacy int64
	total := b.rep.Events
	var done int64
	seq := func(yield func(*sequencer.AdoptedEvent, error) bool) {
		for e, err := range b.ref.Events(ctx, b.evtSince) {
			if err != nil {
				yield(nil, err)
				return
			}
			ae, ok, err := convertEvent(e)
			if err != nil {
				yield(nil, err)
				return
			}
			if done++; done%1000 == 0 {
				b.opts.Progress(Progress{Phase: "events", Done: done, Total: total})
			}
			if !ok {
				legacy++
				continue
			}
			if !yield(ae, nil) {
				return
			}
		}
	}
	n, err := sequencer.Adopt(ctx, filepath.Join(b.dir, "sequencer.sqlite"), b.seqHead, revs, seq)
	if err != nil {
		return err
	}
	b.opts.Progress(Progress{Phase: "events", Done: total, Total: total})
	b.rep.Events = int64(n)
	b.rep.notCarried(legacy, "legacy firehose events (rebase, handle, migrate, tombstone)", "the reference no longer sends them either")
	return nil
}

func (b *builder) inviteCodes(ctx context.Context) error {
	codes := make([]*accountstore.InviteCode, 0, len(b.invites))
	for _, c := range b.invites {
		ic := &accountstore.InviteCode{Code: c.Code, Available: c.AvailableUses, Disabled: c.Disabled,
			ForAccount: c.ForAccount, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt}
		for _, u := range c.Uses {
			ic.Uses = append(ic.Uses, accountstore.InviteUse{UsedBy: u.UsedBy, UsedAt: u.UsedAt})
		}
		codes = append(codes, ic)
	}
	return b.accts.AdoptInviteCodes(ctx, codes)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
