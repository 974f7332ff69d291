package firehose

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/xrpc"
)

// Firehose connection settings.
const (
	// replayPage is how many stored events one replay query reads (the reference's backfill page).
	replayPage = 500
	// writeTimeout bounds one write (a frame or a batch): a peer that does not read for this long is dropped.
	writeTimeout = 15 * time.Second
	// closeTimeout bounds writing the close frame.
	closeTimeout = time.Second
	// coalesceInterval is the least time between two writes of live events to one subscriber: while events
	// keep coming, each write carries what arrived meanwhile. With a thousand subscribers, one writev each per
	// stored batch is most of the server's CPU; this halves the writes (and the CPU per commit) under load for
	// at most 20 ms more delay, and adds none to an event that follows a quiet spell.
	coalesceInterval = 20 * time.Millisecond
)

// Keep-alive (variables for tests).
var (
	// pingInterval: a ping keeps idle connections (and proxies) alive and detects dead peers.
	pingInterval = 30 * time.Second
	// readTimeout: a peer that answers no ping (and sends nothing) for this long is gone.
	readTimeout = 3 * pingInterval
)

// Websocket close codes.
const (
	closeGoingAway = websocket.CloseGoingAway
	closePolicy    = websocket.ClosePolicyViolation // after an error frame, as the reference
)

// Messages of the firehose's error and info frames, as the reference sends them.
const (
	msgFutureCursor   = "Cursor in the future."
	msgConsumerSlow   = "Stream consumer too slow"
	msgOutdatedCursor = "Requested cursor exceeded limit. Possibly missing events"
)

// upgrader: gorilla only does the handshake and reads; frames are written by firehoseConn, so connections
// hold no write buffer (a subscriber's memory is its event queue: pointers to frames shared by all). Without a
// WriteBufferPool gorilla would adopt net/http's 4 KB write buffer for the connection's lifetime; this pool is
// never asked (nothing writes through gorilla). The read buffer only ever holds a frame header or a control
// frame (at most 125 bytes): what peers send is discarded.
var upgrader = websocket.Upgrader{
	ReadBufferSize:  256,
	WriteBufferPool: noWriteBuffers{},
	// The firehose is public and read-only: any origin may subscribe.
	CheckOrigin: func(*http.Request) bool { return true },
}

type noWriteBuffers struct{}

func (noWriteBuffers) Get() any { return nil }
func (noWriteBuffers) Put(any)  {}

// Subscribe serves com.atproto.sync.subscribeRepos: with no cursor the live tail; with a cursor,
// every stored event after it, then live, with no gap and no duplicate (see stream).
func (s *Firehose) Subscribe(c echo.Context) error {
	req := c.Request()
	if !websocket.IsWebSocketUpgrade(req) {
		return xrpc.InvalidRequest("com.atproto.sync.subscribeRepos is a websocket event stream: connect with a websocket client")
	}
	var cursor *int64
	if xrpc.ParamPresent(c, "cursor") {
		n := int64(xrpc.ParamInt(c, "cursor", 0))
		cursor = &n
	}
	if !s.bg.Enter() {
		return xrpc.NewError(http.StatusServiceUnavailable, xrpc.NameServiceUnavailable, "Server is shutting down")
	}
	conn, err := upgrader.Upgrade(c.Response(), req, nil)
	if err != nil {
		s.bg.Leave()
		return nil // the upgrader has answered the request
	}
	// The stream gets its own goroutine and the handler returns: net/http keeps the connection's 4 KB read
	// and write buffers, the request and the handler's deep stack for as long as a hijacked handler runs.
	remote := req.RemoteAddr
	go func() {
		defer s.bg.Leave()
		s.serveFirehose(conn, cursor, remote)
	}()
	return nil
}

func (s *Firehose) serveFirehose(conn *websocket.Conn, cursor *int64, remote string) {
	fc := newFirehoseConn(conn)
	defer fc.ws.Close()
	// At shutdown the stream loop sends a close frame; a write stuck on a peer that stopped reading would hold
	// Shutdown for writeTimeout, so after a grace period the socket's deadline is forced. (A deadline set
	// after the connection closed does nothing.)
	stopForcing := context.AfterFunc(s.bg.Context(), func() {
		time.AfterFunc(closeTimeout, func() { fc.raw.SetDeadline(time.Now()) })
	})
	defer stopForcing()

	code, reason, err := s.stream(fc, cursor)
	if err != nil && !errors.Is(err, errPeerGone) {
		s.log.Info("firehose subscriber dropped", "remote", remote, "err", err)
	}
	fc.close(code, reason)
}

// errPeerGone ends a stream whose peer closed or stopped answering.
var errPeerGone = errors.New("firehose peer gone")

// Websocket opcodes (RFC 6455).
const (
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
)

// Write batching: a subscriber that fell behind gets its pending events in few writevs. The kernel's iovec
// array for a writev stays cached per socket, sized by the largest batch written (16 bytes per frame and per
// header): 64 frames (160 KB of typical commits) amortise the syscall and keep that cache at 2 KB.
const (
	maxBatchEvents = 64
	maxBatchBytes  = 4 << 20
)

// frameBatch is the scratch space of one wake-up or one writev. Pooled: an idle subscriber holds none, and a
// thousand subscribers share the few in use at any moment.
type frameBatch struct {
	events []*sequencer.Event
	frames [][]byte
	hdrs   []byte      // frame headers of the batch being written
	bufs   net.Buffers // header, payload, header, payload...
}

var frameBatches = sync.Pool{New: func() any { return new(frameBatch) }}

// putFrameBatch returns b to the pool without pinning the events and frames it pointed to (the slices'
// lengths say how much was used).
func putFrameBatch(b *frameBatch) {
	clear(b.events)
	clear(b.frames)
	clear(b.bufs)
	b.events, b.frames, b.bufs = b.events[:0], b.frames[:0], b.bufs[:0]
	frameBatches.Put(b)
}

// firehoseConn is one subscriber's websocket. gorilla does the handshake and the reading (a goroutine discards
// what the peer sends, queues pings to answer and cancels ctx when the connection ends); this goroutine writes
// the frames itself on the raw connection. Server frames are neither masked nor compressed, so an event goes
// out as the stored bytes behind a few header bytes, shared by all subscribers, and a batch of events costs one
// writev instead of one write per event.
type firehoseConn struct {
	ws     *websocket.Conn
	raw    net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	ping   *time.Ticker
	pongs  chan []byte // payloads of the peer's pings, answered by the writer
}

func newFirehoseConn(ws *websocket.Conn) *firehoseConn {
	ctx, cancel := context.WithCancel(context.Background())
	fc := &firehoseConn{
		ws: ws, raw: ws.NetConn(), ctx: ctx, cancel: cancel,
		ping:  time.NewTicker(pingInterval),
		pongs: make(chan []byte, 1),
	}
	renew := func() { ws.SetReadDeadline(time.Now().Add(readTimeout)) }
	renew()
	ws.SetReadLimit(64 * 1024)
	ws.SetPongHandler(func(string) error { renew(); return nil })
	// gorilla's default handlers would write (pong, close) concurrently with this writer: route pings to the
	// writer; a close from the peer just ends the connection.
	ws.SetPingHandler(func(data string) error {
		renew()
		select {
		case fc.pongs <- []byte(data):
		default: // one pending pong answers them all
		}
		return nil
	})
	ws.SetCloseHandler(func(int, string) error { return nil })
	go func() {
		defer cancel()
		for {
			if _, _, err := ws.NextReader(); err != nil {
				return
			}
			renew()
		}
	}()
	return fc
}

// appendFrameHeader appends a final, unmasked frame header (server to client).
func appendFrameHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xffff:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// writeFrames writes frames of one opcode in one writev, within writeTimeout.
func (fc *firehoseConn) writeFrames(op byte, frames ...[]byte) error {
	b := frameBatches.Get().(*frameBatch)
	defer putFrameBatch(b)
	if need := 10 * len(frames); cap(b.hdrs) < need {
		b.hdrs = make([]byte, 0, need) // never grown while headers are referenced below
	}
	hdrs, bufs := b.hdrs[:0], b.bufs[:0]
	for _, f := range frames {
		i := len(hdrs)
		hdrs = appendFrameHeader(hdrs, op, len(f))
		bufs = append(bufs, hdrs[i:], f)
	}
	b.bufs = bufs
	fc.raw.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := bufs.WriteTo(fc.raw) // consumes bufs (a copy of the slice header), not b.bufs
	if err != nil {
		return errors.Join(errPeerGone, err)
	}
	return nil
}

// send writes events (and #info frames) in batches.
func (fc *firehoseConn) send(frames [][]byte) error {
	for len(frames) > 0 {
		n, size := 0, 0
		for n < len(frames) && n < maxBatchEvents && (n == 0 || size+len(frames[n]) <= maxBatchBytes) {
			size += len(frames[n])
			n++
		}
		if err := fc.writeFrames(opBinary, frames[:n]...); err != nil {
			return err
		}
		frames = frames[n:]
	}
	return nil
}

func (fc *firehoseConn) send1(frame []byte) error { return fc.writeFrames(opBinary, frame) }

// keepAlive answers the peer's pings, sends ours when due, and reports a connection that has ended.
func (fc *firehoseConn) keepAlive() error {
	select {
	case <-fc.ctx.Done():
		return errPeerGone
	case data := <-fc.pongs:
		return fc.writeFrames(opPong, data)
	case <-fc.ping.C:
		return fc.writeFrames(opPing, nil)
	default:
		return nil
	}
}

func (fc *firehoseConn) close(code int, reason string) {
	fc.ping.Stop()
	if code != 0 {
		fc.raw.SetWriteDeadline(time.Now().Add(closeTimeout))
		fc.writeFrames(opClose, websocket.FormatCloseMessage(code, reason))
	}
	fc.cancel()
}

// stream sends the events the subscriber asked for until the connection ends, and returns the close code
// (0: none, the peer is gone) and reason.
//
// Replay with a cursor reads stored pages without a live subscription while far behind (a slow backfill is
// not "too slow" for the live buffer), then subscribes: Subscribe's head is exact, so replaying the store up
// to it and then taking live events above the last one sent gives every event once, in order.
func (s *Firehose) stream(fc *firehoseConn, cursor *int64) (int, string, error) {
	ctx := fc.ctx
	quit := s.bg.Quit()
	var last int64 // seq of the last event sent
	pos := s.track(cursor)
	defer s.untrack(pos)
	if cursor != nil {
		head := s.seq.Head()
		if *cursor > head {
			if err := fc.send1(sequencer.EncodeErrorFrame("FutureCursor", msgFutureCursor)); err != nil {
				return 0, "", err
			}
			return closePolicy, "FutureCursor", nil
		}
		var err error
		if last, err = s.replayStart(ctx, fc, *cursor, head); err != nil {
			return 0, "", err
		}
		// Catch up from the store while more than half a page behind.
		for {
			n, err := s.replay(ctx, fc, &last, 0)
			if err != nil {
				return 0, "", err
			}
			pos.Store(last)
			if n < replayPage || s.seq.Head()-last < replayPage/2 {
				break
			}
			select {
			case <-quit:
				return closeGoingAway, "server shutting down", nil
			default:
			}
		}
	}
	sub, head := s.seq.Subscribe(s.cfg.MaxSubscriptionBuffer)
	defer sub.Unsubscribe()
	if cursor == nil {
		last = head
	}
	pos.Store(last)
	for last < head {
		n, err := s.replay(ctx, fc, &last, head)
		if err != nil {
			return 0, "", err
		}
		pos.Store(last)
		if n == 0 {
			break // the rest was pruned meanwhile
		}
	}

	var nextWrite time.Time // see coalesceInterval
	for {
		// An ended subscription wins over events still buffered.
		select {
		case <-sub.Done():
			return s.subscriptionEnded(fc, sub.Err())
		default:
		}
		select {
		case <-sub.Ready():
			// Coalescing waits only while the queue is far from its limit: it must not make a subscriber that
			// keeps up look too slow.
			if wait := time.Until(nextWrite); wait > 0 && sub.Pending() < s.cfg.MaxSubscriptionBuffer/4 {
				time.Sleep(wait)
			}
			b := frameBatches.Get().(*frameBatch)
			b.events = sub.Take(b.events)
			for _, e := range b.events {
				if e.Seq <= last {
					continue
				}
				if e.Seq != last+1 {
					s.log.Error("firehose: live stream skipped events", "after", last, "got", e.Seq)
				}
				b.frames = append(b.frames, e.Frame)
				last = e.Seq
			}
			if len(b.frames) > 0 {
				nextWrite = time.Now().Add(coalesceInterval)
			}
			err := fc.send(b.frames)
			putFrameBatch(b)
			if err != nil {
				return 0, "", err
			}
			pos.Store(last)
		case <-sub.Done():
			return s.subscriptionEnded(fc, sub.Err())
		case data := <-fc.pongs:
			if err := fc.writeFrames(opPong, data); err != nil {
				return 0, "", err
			}
		case <-fc.ping.C:
			if err := fc.writeFrames(opPing, nil); err != nil {
				return 0, "", err
			}
		case <-ctx.Done():
			return 0, "", errPeerGone
		case <-quit:
			return closeGoingAway, "server shutting down", nil
		}
	}
}

func (s *Firehose) subscriptionEnded(fc *firehoseConn, err error) (int, string, error) {
	if errors.Is(err, sequencer.ErrTooSlow) {
		if err := fc.send1(sequencer.EncodeErrorFrame("ConsumerTooSlow", msgConsumerSlow)); err != nil {
			return 0, "", err
		}
		return closePolicy, "ConsumerTooSlow", sequencer.ErrTooSlow
	}
	return closeGoingAway, "server shutting down", nil
}

// replayStart decides where a replay from cursor starts. Events older than the retention window (kept until
// the next prune) and events already pruned are not replayed: the subscriber gets #info OutdatedCursor and
// the stream starts at the oldest event inside the window.
func (s *Firehose) replayStart(ctx context.Context, fc *firehoseConn, cursor, head int64) (int64, error) {
	if cursor < 0 {
		cursor = 0
	}
	next, err := s.seq.Events(ctx, cursor, 1)
	if err != nil {
		return 0, err
	}
	windowStart := time.Now().Add(-s.cfg.BackfillLimit)
	switch {
	case len(next) == 0 && cursor == head:
		return cursor, nil // caught up
	case len(next) == 1 && next[0].Seq == cursor+1 && !next[0].Time.Before(windowStart):
		return cursor, nil // the next event is there and recent
	case len(next) == 1 && !next[0].Time.Before(windowStart):
		// A jump over seqs never assigned (the floor of a restored log, pds/backup): pruning removes the oldest
		// events first, so while the log holds one at or below the cursor, nothing after it was pruned.
		if !s.prunedAfter(ctx, cursor) {
			return cursor, nil
		}
	}
	if err := fc.send1(outdatedCursorFrame); err != nil {
		return 0, err
	}
	first, err := s.seq.EarliestSince(ctx, windowStart)
	if err != nil {
		return 0, err
	}
	if first == 0 {
		return s.seq.Head(), nil // nothing inside the window: live from here
	}
	return first - 1, nil
}

// prunedAfter reports whether events after seq may have been pruned, as opposed to a jump over seqs never
// assigned (the floor of a restored log): pruning removes the oldest events first, so while the log holds one
// at or below seq, nothing after it was pruned.
func (s *Firehose) prunedAfter(ctx context.Context, seq int64) bool {
	oldest, err := s.seq.Oldest(ctx)
	return err != nil || oldest == 0 || oldest > seq
}

var outdatedCursorFrame = sequencer.EncodeInfoFrame("OutdatedCursor", msgOutdatedCursor)

// replay sends stored events after *last (one page, and only up to through when through > 0), advancing
// *last. A jump in seq means events were pruned while the subscriber was reading: it gets #info
// OutdatedCursor, as for an old cursor.
func (s *Firehose) replay(ctx context.Context, fc *firehoseConn, last *int64, through int64) (int, error) {
	if err := fc.keepAlive(); err != nil {
		return 0, err
	}
	events, err := s.seq.Events(ctx, *last, replayPage)
	if err != nil {
		return 0, err
	}
	frames := make([][]byte, 0, len(events))
	sent, next := 0, *last
	for _, e := range events {
		if through > 0 && e.Seq > through {
			break
		}
		if e.Seq != next+1 && s.prunedAfter(ctx, next) {
			frames = append(frames, outdatedCursorFrame)
		}
		frames = append(frames, e.Frame)
		next = e.Seq
		sent++
	}
	if err := fc.send(frames); err != nil {
		return 0, err
	}
	*last = next
	return sent, nil
}

// SetKeepAliveForTest sets the ping interval (the read timeout is three intervals) for connections made
// afterwards; the returned function restores the defaults. For tests only.
func SetKeepAliveForTest(ping time.Duration) (restore func()) {
	oldPing, oldRead := pingInterval, readTimeout
	pingInterval, readTimeout = ping, 3*ping
	return func() { pingInterval, readTimeout = oldPing, oldRead }
}

// Head is the seq of the last event on the firehose (durable).
func (s *Firehose) Head() int64 { return s.seq.Head() }

// Subscribers is the number of live subscriptions.
func (s *Firehose) Subscribers() int { return s.seq.Subscribers() }

// track registers a connected subscriber's position (the seq of the last event sent to it) for
// SubscriberLags; untrack removes it when the connection ends.
func (s *Firehose) track(cursor *int64) *atomic.Int64 {
	pos := new(atomic.Int64)
	if cursor != nil {
		pos.Store(*cursor)
	} else {
		pos.Store(s.seq.Head())
	}
	s.streamsMu.Lock()
	s.streams[pos] = struct{}{}
	s.streamsMu.Unlock()
	return pos
}

func (s *Firehose) untrack(pos *atomic.Int64) {
	s.streamsMu.Lock()
	delete(s.streams, pos)
	s.streamsMu.Unlock()
}

// SubscriberLags appends, for each connected subscriber (replaying or live), how many published events it has
// not been sent yet, and returns dst (pds/metrics reads it at scrape time).
func (s *Firehose) SubscriberLags(dst []int64) []int64 {
	head := s.seq.Head()
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	for pos := range s.streams {
		dst = append(dst, max(0, head-pos.Load()))
	}
	return dst
}
