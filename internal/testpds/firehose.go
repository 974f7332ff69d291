package testpds

// Firehose subscribers: a real websocket client of com.atproto.sync.subscribeRepos, a frame decoder, and a
// checker that verifies #commit and #sync events as a relay would.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/identity"
	"github.com/bluesky-social/indigo/atproto/repo"
	"github.com/gorilla/websocket"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car"

	"github.com/pdsgo/pds/pds/sequencer/frame"
)

// Frame is one decoded firehose frame, with its bytes.
type Frame struct {
	Raw []byte
	frame.Frame
}

// DID is the account the event is about ("" for #info and errors).
func (f *Frame) DID() string {
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

// DecodeFrame decodes one subscribeRepos frame (header and body; error frames too) with the server's codec
// (pds/sequencer/frame).
func DecodeFrame(raw []byte) (*Frame, error) {
	f, err := frame.Decode(raw)
	if err != nil {
		return nil, err
	}
	return &Frame{Raw: raw, Frame: *f}, nil
}

// Subscriber is a firehose subscriber over a real websocket. A reader goroutine (started on the first read, so
// a client can stay stalled) decodes frames into a channel: gorilla connections do not survive a read timeout.
type Subscriber struct {
	t      testing.TB
	Conn   *websocket.Conn // the websocket (tests set ping/pong handlers)
	once   sync.Once
	frames chan *Frame
	err    error // set before frames is closed
}

// NewSubscriber wraps a dialed firehose connection (tests that dial with their own dialer); it is closed when
// the test ends.
func NewSubscriber(t testing.TB, conn *websocket.Conn) *Subscriber {
	t.Cleanup(func() { conn.Close() })
	return &Subscriber{t: t, Conn: conn, frames: make(chan *Frame, 1<<16)}
}

// FirehoseURL is the subscribeRepos websocket URL of p, from cursor ("" for the live tail).
func FirehoseURL(p *PDS, cursor string) string {
	u := "ws" + strings.TrimPrefix(p.URL, "http") + "/xrpc/com.atproto.sync.subscribeRepos"
	if cursor != "" {
		u += "?cursor=" + cursor
	}
	return u
}

// Subscribe connects to the firehose; cursor "" is the live tail.
func Subscribe(t testing.TB, p *PDS, cursor string) *Subscriber {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(FirehoseURL(p, cursor), nil)
	if err != nil {
		t.Fatalf("dial firehose: %v (%v)", err, resp)
	}
	return NewSubscriber(t, conn)
}

// SubscribeAt connects to the firehose from cursor.
func SubscribeAt(t testing.TB, p *PDS, cursor int64) *Subscriber {
	return Subscribe(t, p, strconv.FormatInt(cursor, 10))
}

// Start starts the reader goroutine (Read starts it too; a test calls Start to read while it does other work).
func (c *Subscriber) Start() {
	c.once.Do(func() {
		go func() {
			defer close(c.frames)
			for {
				typ, raw, err := c.Conn.ReadMessage()
				if err == nil && typ != websocket.BinaryMessage {
					err = fmt.Errorf("message type %d, want binary", typ)
				}
				var f *Frame
				if err == nil {
					f, err = DecodeFrame(raw)
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

// ErrNoFrame is what Read returns when no frame came within the timeout.
var ErrNoFrame = errors.New("no frame within the timeout")

// Read returns the next frame, ErrNoFrame after timeout, or the error that ended the connection.
func (c *Subscriber) Read(timeout time.Duration) (*Frame, error) {
	c.Start()
	select {
	case f, ok := <-c.frames:
		if !ok {
			return nil, c.err
		}
		return f, nil
	case <-time.After(timeout):
		return nil, ErrNoFrame
	}
}

// Next reads one frame (failing the test after 10 s).
func (c *Subscriber) Next() *Frame {
	c.t.Helper()
	f, err := c.Read(10 * time.Second)
	if err != nil {
		c.t.Fatalf("reading firehose: %v", err)
	}
	return f
}

// Take reads n event frames.
func (c *Subscriber) Take(n int) []*Frame {
	c.t.Helper()
	out := make([]*Frame, 0, n)
	for len(out) < n {
		out = append(out, c.Next())
	}
	return out
}

// CloseCode reads until the server closes and returns the close code.
func (c *Subscriber) CloseCode() int {
	c.t.Helper()
	for {
		_, err := c.Read(10 * time.Second)
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if err != nil {
			c.t.Fatalf("want a close frame, got %v", err)
		}
	}
}

// ExpectQuiet checks that nothing arrives for d.
func (c *Subscriber) ExpectQuiet(d time.Duration) {
	c.t.Helper()
	f, err := c.Read(d)
	if err == nil {
		c.t.Fatalf("unexpected frame %s seq %d", f.Type, f.Seq)
	}
	if err != ErrNoFrame {
		c.t.Fatalf("connection ended: %v", err)
	}
}

// CommitChecker verifies #commit events as a relay would, plus what indigo's verifiers skip.
type CommitChecker struct {
	dir      identity.Directory
	lastRev  map[string]string
	lastData map[string]cid.Cid
	lastSeq  int64
	Commits  int // #commit events checked
}

// NewCommitChecker checks the commits of p's accounts, resolving their keys in p's PLC directory.
func NewCommitChecker(p *PDS) *CommitChecker {
	return &CommitChecker{
		dir:      &identity.BaseDirectory{PLCURL: p.PLCURL, SkipHandleVerification: true, HTTPClient: http.Client{Timeout: 10 * time.Second}},
		lastRev:  map[string]string{},
		lastData: map[string]cid.Cid{},
	}
}

// LastRev is the rev of the last commit checked for did.
func (cc *CommitChecker) LastRev(did string) string { return cc.lastRev[did] }

// Check verifies one event frame in stream order.
func (cc *CommitChecker) Check(t testing.TB, f *Frame) {
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
		c, root := CARCommit(t, f.Sync.Blocks)
		if c.Rev != f.Sync.Rev || c.DID != f.Sync.Did || root == nil {
			t.Fatalf("seq %d: #sync names rev %s of %s, its commit says rev %s of %s", f.Seq, f.Sync.Rev, f.Sync.Did, c.Rev, c.DID)
		}
		if n := CARBlockCount(t, f.Sync.Blocks); n != 1 {
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
	c, root := CARCommit(t, m.Blocks)
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
	cc.Commits++
}

// CARCommit loads the commit at the root of a CAR slice (an event's blocks, a getRepo answer).
func CARCommit(t testing.TB, blocks []byte) (*repo.Commit, *cid.Cid) {
	t.Helper()
	c, root, err := repo.LoadCommitFromCAR(context.Background(), bytes.NewReader(blocks))
	if err != nil {
		t.Fatalf("commit from CAR: %v", err)
	}
	return c, root
}

// CARBlockCount counts the blocks of a CAR.
func CARBlockCount(t testing.TB, blocks []byte) int {
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

// Collector reads a subscription in the background.
type Collector struct {
	mu     sync.Mutex
	frames []*Frame
	err    error
	done   chan struct{}
}

// Collect reads c in the background until it ends; WaitSeq waits for what arrived.
func Collect(c *Subscriber) *Collector {
	col := &Collector{done: make(chan struct{})}
	go func() {
		defer close(col.done)
		for {
			f, err := c.Read(time.Minute)
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

// WaitSeq waits until the collector has a frame with seq >= seq.
func (col *Collector) WaitSeq(t testing.TB, seq int64) []*Frame {
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
			return append([]*Frame(nil), col.frames...)
		}
		if err != nil {
			t.Fatalf("subscriber ended before seq %d (at %d): %v", seq, last, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("seq %d not received within 30 s", seq)
	return nil
}

// NextFor reads firehose frames until one of type typ about did (earlier events of the test may still be in
// flight when a live subscription starts).
func NextFor(t testing.TB, fh *Subscriber, typ, did string) *Frame {
	t.Helper()
	for range 50 {
		f := fh.Next()
		if f.Type == typ && f.DID() == did {
			return f
		}
	}
	t.Fatalf("no %s event for %s", typ, did)
	return nil
}

// SubscribeAfter subscribes from the start of the log and reads the n events the test's setup produced
// (they may still be in flight when the setup's requests return), so what follows is the test's own.
func SubscribeAfter(t testing.TB, p *PDS, n int) *Subscriber {
	t.Helper()
	sub := Subscribe(t, p, "0")
	sub.Take(n)
	return sub
}

// ExpectEvents reads len(types) frames and checks that each is about did and of the given type, in order.
func ExpectEvents(t testing.TB, sub *Subscriber, did string, types ...string) []*Frame {
	t.Helper()
	frames := sub.Take(len(types))
	for i, f := range frames {
		if f.Type != types[i] || f.DID() != did {
			got := []string{}
			for _, g := range frames {
				got = append(got, g.Type+" "+g.DID())
			}
			t.Fatalf("firehose: want %v for %s, got %v", types, did, got)
		}
		if i > 0 && f.Seq != frames[i-1].Seq+1 {
			t.Fatalf("firehose: seq %d after %d", f.Seq, frames[i-1].Seq)
		}
	}
	return frames
}

// Str is *p, or "<nil>" (optional string fields of events).
func Str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
