package pds_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/repo"
	"github.com/gorilla/websocket"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car"

	"github.com/pdsgo/pds/internal/testpds"
	"github.com/pdsgo/pds/pds/sequencer"
)

// sqlOpenReadOnly opens a SQLite file read-only beside the running server (WAL allows it).
func sqlOpenReadOnly(path string) (*sql.DB, error) {
	return sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
}

// fhFrame is one decoded firehose frame.
type fhFrame struct {
	Raw      []byte
	Op       int64
	Type     string
	Seq      int64
	Commit   *comatproto.SyncSubscribeRepos_Commit
	Sync     *comatproto.SyncSubscribeRepos_Sync
	Identity *comatproto.SyncSubscribeRepos_Identity
	Account  *comatproto.SyncSubscribeRepos_Account
	Info     *comatproto.SyncSubscribeRepos_Info
	ErrName  string // error frames
	ErrMsg   string
}

// DID is the account the event is about ("" for #info and errors).
func (f *fhFrame) DID() string {
	switch {
	case f.Commit != nil:
		return f.Commit.Repo
	case f.Sync != nil:
		return f.Sync.Did
	case f.Identity != nil:
		return f.Identity.Did
	case f.Account != nil:
		return f.Account.Did
	}
	return ""
}

func decodeFrame(raw []byte) (*fhFrame, error) {
	r := bytes.NewReader(raw)
	op, typ, err := sequencer.ReadHeader(r)
	if err != nil {
		return nil, err
	}
	f := &fhFrame{Raw: raw, Op: op, Type: typ}
	switch {
	case op == -1:
		rest := make([]byte, r.Len())
		r.Read(rest)
		m, err := cborTextMap(rest)
		if err != nil {
			return nil, err
		}
		f.ErrName, f.ErrMsg = m["error"], m["message"]
		return f, nil
	case op != 1:
		return nil, fmt.Errorf("frame op %d", op)
	case typ == "#commit":
		f.Commit = &comatproto.SyncSubscribeRepos_Commit{}
		err = f.Commit.UnmarshalCBOR(r)
		f.Seq = f.Commit.Seq
	case typ == "#sync":
		f.Sync = &comatproto.SyncSubscribeRepos_Sync{}
		err = f.Sync.UnmarshalCBOR(r)
		f.Seq = f.Sync.Seq
	case typ == "#identity":
		f.Identity = &comatproto.SyncSubscribeRepos_Identity{}
		err = f.Identity.UnmarshalCBOR(r)
		f.Seq = f.Identity.Seq
	case typ == "#account":
		f.Account = &comatproto.SyncSubscribeRepos_Account{}
		err = f.Account.UnmarshalCBOR(r)
		f.Seq = f.Account.Seq
	case typ == "#info":
		f.Info = &comatproto.SyncSubscribeRepos_Info{}
		err = f.Info.UnmarshalCBOR(r)
	default:
		return nil, fmt.Errorf("unknown frame type %q", typ)
	}
	if err != nil {
		return nil, fmt.Errorf("%s body: %w", typ, err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%s: %d trailing bytes", typ, r.Len())
	}
	return f, nil
}

// cborTextMap parses a CBOR map whose keys and values are short text strings.
func cborTextMap(b []byte) (map[string]string, error) {
	pos := 0
	head := func() (byte, uint64, error) {
		if pos >= len(b) {
			return 0, 0, errors.New("short cbor")
		}
		maj, info := b[pos]>>5, b[pos]&0x1f
		pos++
		switch {
		case info < 24:
			return maj, uint64(info), nil
		case info == 24:
			if pos+1 > len(b) {
				return 0, 0, errors.New("short cbor")
			}
			pos++
			return maj, uint64(b[pos-1]), nil
		case info == 25:
			if pos+2 > len(b) {
				return 0, 0, errors.New("short cbor")
			}
			pos += 2
			return maj, uint64(b[pos-2])<<8 | uint64(b[pos-1]), nil
		}
		return 0, 0, errors.New("unsupported cbor length")
	}
	text := func() (string, error) {
		maj, n, err := head()
		if err != nil {
			return "", err
		}
		if maj != 3 || pos+int(n) > len(b) {
			return "", errors.New("not a text string")
		}
		pos += int(n)
		return string(b[pos-int(n) : pos]), nil
	}
	maj, n, err := head()
	if err != nil || maj != 5 {
		return nil, fmt.Errorf("error body is not a map (%v)", err)
	}
	out := map[string]string{}
	for range n {
		k, err := text()
		if err != nil {
			return nil, err
		}
		v, err := text()
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	if pos != len(b) {
		return nil, errors.New("trailing bytes in error body")
	}
	return out, nil
}

// fhClient is a firehose subscriber over a real websocket. A reader goroutine (started on the first read, so
// a client can stay stalled) decodes frames into a channel: gorilla connections do not survive a read timeout.
type fhClient struct {
	t      testing.TB
	conn   *websocket.Conn
	once   sync.Once
	frames chan *fhFrame
	err    error // set before frames is closed
}

func newFHClient(t testing.TB, conn *websocket.Conn) *fhClient {
	t.Cleanup(func() { conn.Close() })
	return &fhClient{t: t, conn: conn, frames: make(chan *fhFrame, 1<<16)}
}

func firehoseURL(p *testpds.PDS, cursor string) string {
	u := "ws" + strings.TrimPrefix(p.URL, "http") + "/xrpc/com.atproto.sync.subscribeRepos"
	if cursor != "" {
		u += "?cursor=" + cursor
	}
	return u
}

// subscribe connects to the firehose; cursor "" is the live tail.
func subscribe(t testing.TB, p *testpds.PDS, cursor string) *fhClient {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(firehoseURL(p, cursor), nil)
	if err != nil {
		t.Fatalf("dial firehose: %v (%v)", err, resp)
	}
	return newFHClient(t, conn)
}

func subscribeAt(t testing.TB, p *testpds.PDS, cursor int64) *fhClient {
	return subscribe(t, p, strconv.FormatInt(cursor, 10))
}

func (c *fhClient) start() {
	c.once.Do(func() {
		go func() {
			defer close(c.frames)
			for {
				typ, raw, err := c.conn.ReadMessage()
				if err == nil && typ != websocket.BinaryMessage {
					err = fmt.Errorf("message type %d, want binary", typ)
				}
				var f *fhFrame
				if err == nil {
					f, err = decodeFrame(raw)
				}
				if err != nil {
					c.err = err
					return
				}
				c.frames <- f
			}
		}()
	})
}

var errNoFrame = errors.New("no frame within the timeout")

// read returns the next frame, errNoFrame after timeout, or the error that ended the connection.
func (c *fhClient) read(timeout time.Duration) (*fhFrame, error) {
	c.start()
	select {
	case f, ok := <-c.frames:
		if !ok {
			return nil, c.err
		}
		return f, nil
	case <-time.After(timeout):
		return nil, errNoFrame
	}
}

// next reads one frame (failing the test after 10 s).
func (c *fhClient) next() *fhFrame {
	c.t.Helper()
	f, err := c.read(10 * time.Second)
	if err != nil {
		c.t.Fatalf("reading firehose: %v", err)
	}
	return f
}

// take reads n event frames.
func (c *fhClient) take(n int) []*fhFrame {
	c.t.Helper()
	out := make([]*fhFrame, 0, n)
	for len(out) < n {
		out = append(out, c.next())
	}
	return out
}

// closeCode reads until the server closes and returns the close code.
func (c *fhClient) closeCode() int {
	c.t.Helper()
	for {
		_, err := c.read(10 * time.Second)
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if err != nil {
			c.t.Fatalf("want a close frame, got %v", err)
		}
	}
}

// expectQuiet checks that nothing arrives for d.
func (c *fhClient) expectQuiet(d time.Duration) {
	c.t.Helper()
	f, err := c.read(d)
	if err == nil {
		c.t.Fatalf("unexpected frame %s seq %d", f.Type, f.Seq)
	}
	if err != errNoFrame {
		c.t.Fatalf("connection ended: %v", err)
	}
}

// commitChecker verifies #commit events as a relay would, plus what indigo's verifiers skip.
type commitChecker struct {
	dir      identity.Directory
	lastRev  map[string]string
	lastData map[string]cid.Cid
	lastSeq  int64
	commits  int
}

func newCommitChecker(p *testpds.PDS) *commitChecker {
	return &commitChecker{
		dir:      &identity.BaseDirectory{PLCURL: p.PLCURL, SkipHandleVerification: true, HTTPClient: http.Client{Timeout: 10 * time.Second}},
		lastRev:  map[string]string{},
		lastData: map[string]cid.Cid{},
	}
}

// check verifies one event frame in stream order.
func (cc *commitChecker) check(t testing.TB, f *fhFrame) {
	t.Helper()
	if f.Op != 1 || f.Info != nil {
		t.Fatalf("not an event: %s %s", f.Type, f.ErrName)
	}
	if cc.lastSeq != 0 && f.Seq != cc.lastSeq+1 {
		t.Fatalf("seq %d after %d: gap or duplicate", f.Seq, cc.lastSeq)
	}
	cc.lastSeq = f.Seq
	if f.Sync != nil {
		if _, err := repo.VerifySyncMessage(context.Background(), cc.dir, f.Sync); err != nil {
			t.Fatalf("seq %d: #sync does not verify: %v", f.Seq, err)
		}
		c, root := carCommit(t, f.Sync.Blocks)
		if c.Rev != f.Sync.Rev || c.DID != f.Sync.Did || root == nil {
			t.Fatalf("seq %d: #sync names rev %s of %s, its commit says rev %s of %s", f.Seq, f.Sync.Rev, f.Sync.Did, c.Rev, c.DID)
		}
		if n := carBlockCount(t, f.Sync.Blocks); n != 1 {
			t.Fatalf("seq %d: #sync CAR has %d blocks, want only the commit", f.Seq, n)
		}
		cc.lastRev[c.DID], cc.lastData[c.DID] = c.Rev, c.Data
		return
	}
	m := f.Commit
	if m == nil {
		return
	}
	ctx := context.Background()
	if _, err := repo.VerifyCommitMessage(ctx, m); err != nil {
		t.Fatalf("seq %d (%s rev %s): VerifyCommitMessage: %v", m.Seq, m.Repo, m.Rev, err)
	}
	if err := repo.VerifyCommitSignature(ctx, cc.dir, m); err != nil {
		t.Fatalf("seq %d (%s rev %s): VerifyCommitSignature: %v", m.Seq, m.Repo, m.Rev, err)
	}
	// What those functions skip.
	c, root := carCommit(t, m.Blocks)
	if root == nil || !root.Equals(cid.Cid(m.Commit)) {
		t.Fatalf("seq %d: commit %s is not the CAR root %v", m.Seq, cid.Cid(m.Commit), root)
	}
	if c.Rev != m.Rev || c.DID != m.Repo {
		t.Fatalf("seq %d: message rev %s repo %s, commit block rev %s did %s", m.Seq, m.Rev, m.Repo, c.Rev, c.DID)
	}
	if m.Rebase || m.TooBig || len(m.Blobs) != 0 {
		t.Fatalf("seq %d: rebase %v tooBig %v", m.Seq, m.Rebase, m.TooBig)
	}
	if len(m.Ops) > 200 || len(m.Blocks) > 2_000_000 {
		t.Fatalf("seq %d: %d ops, %d bytes of blocks", m.Seq, len(m.Ops), len(m.Blocks))
	}
	if _, err := time.Parse(time.RFC3339, m.Time); err != nil {
		t.Fatalf("seq %d: time %q: %v", m.Seq, m.Time, err)
	}
	prevRev, seen := cc.lastRev[m.Repo]
	if seen {
		if m.Since == nil || *m.Since != prevRev {
			t.Fatalf("seq %d: since %v, want the previous rev %s", m.Seq, m.Since, prevRev)
		}
		if m.Rev <= prevRev {
			t.Fatalf("seq %d: rev %s not after %s", m.Seq, m.Rev, prevRev)
		}
		if m.PrevData == nil {
			t.Fatalf("seq %d: no prevData", m.Seq)
		}
		if pd := cid.Cid(*m.PrevData); !pd.Equals(cc.lastData[m.Repo]) {
			t.Fatalf("seq %d: prevData %s, previous commit's data %s", m.Seq, pd, cc.lastData[m.Repo])
		}
	}
	for _, op := range m.Ops {
		switch op.Action {
		case "create":
			if op.Cid == nil || op.Prev != nil {
				t.Fatalf("seq %d: create %s: cid %v prev %v", m.Seq, op.Path, op.Cid, op.Prev)
			}
		case "update":
			if op.Cid == nil || op.Prev == nil {
				t.Fatalf("seq %d: update %s without cid or prev", m.Seq, op.Path)
			}
		case "delete":
			if op.Cid != nil || op.Prev == nil {
				t.Fatalf("seq %d: delete %s: cid %v prev %v", m.Seq, op.Path, op.Cid, op.Prev)
			}
		default:
			t.Fatalf("seq %d: action %q", m.Seq, op.Action)
		}
	}
	cc.lastRev[m.Repo], cc.lastData[m.Repo] = m.Rev, c.Data
	cc.commits++
}

func carCommit(t testing.TB, blocks []byte) (*repo.Commit, *cid.Cid) {
	t.Helper()
	c, root, err := repo.LoadCommitFromCAR(context.Background(), bytes.NewReader(blocks))
	if err != nil {
		t.Fatalf("commit from CAR: %v", err)
	}
	return c, root
}

func carBlockCount(t testing.TB, blocks []byte) int {
	t.Helper()
	rd, err := car.NewCarReader(bytes.NewReader(blocks))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := rd.Next(); err != nil {
			return n
		}
		n++
	}
}

// collector reads a subscription in the background.
type collector struct {
	mu     sync.Mutex
	frames []*fhFrame
	err    error
	done   chan struct{}
}

func collect(c *fhClient) *collector {
	col := &collector{done: make(chan struct{})}
	go func() {
		defer close(col.done)
		for {
			f, err := c.read(time.Minute)
			col.mu.Lock()
			if err != nil {
				col.err = err
				col.mu.Unlock()
				return
			}
			col.frames = append(col.frames, f)
			col.mu.Unlock()
		}
	}()
	return col
}

// waitSeq waits until the collector has a frame with seq >= seq.
func (col *collector) waitSeq(t testing.TB, seq int64) []*fhFrame {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		col.mu.Lock()
		n := len(col.frames)
		var last int64
		if n > 0 {
			last = col.frames[n-1].Seq
		}
		err := col.err
		col.mu.Unlock()
		if last >= seq {
			col.mu.Lock()
			defer col.mu.Unlock()
			return append([]*fhFrame(nil), col.frames...)
		}
		if err != nil {
			t.Fatalf("subscriber ended before seq %d (at %d): %v", seq, last, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("seq %d not received within 30 s", seq)
	return nil
}
