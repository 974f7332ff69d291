package pds

import (
	"context"
	"errors"
	"net/http"
	"sync"
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
	// pingInterval: a ping keeps idle connections (and proxies) alive and detects dead peers.
	pingInterval = 30 * time.Second
	// readTimeout: a peer that answers no ping (and sends nothing) for this long is gone.
	readTimeout = 3 * pingInterval
	// writeTimeout bounds one frame write: a peer that does not read for this long is dropped.
	writeTimeout = 15 * time.Second
	// closeTimeout bounds writing the close frame.
	closeTimeout = time.Second
)

// Websocket close codes.
const (
	closeNormal    = websocket.CloseNormalClosure
	closeGoingAway = websocket.CloseGoingAway
	closePolicy    = websocket.ClosePolicyViolation // after an error frame, as the reference
)

// Messages of the firehose's error and info frames, as the reference sends them.
const (
	msgFutureCursor   = "Cursor in the future."
	msgConsumerSlow   = "Stream consumer too slow"
	msgOutdatedCursor = "Requested cursor exceeded limit. Possibly missing events"
)

// wsWriteBuffers is shared by every firehose connection: a connection borrows a write buffer only while
// writing a frame, so idle subscribers hold none (memory does not grow with the number of subscribers beyond
// their event queues, which hold pointers to frames shared by all).
var wsWriteBuffers = &sync.Pool{}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 16 * 1024,
	WriteBufferPool: wsWriteBuffers,
	// The firehose is public and read-only: any origin may subscribe.
	CheckOrigin: func(*http.Request) bool { return true },
}

// handleSubscribeRepos serves com.atproto.sync.subscribeRepos: with no cursor the live tail; with a cursor,
// every stored event after it, then live, with no gap and no duplicate (see stream).
func (s *Server) handleSubscribeRepos(c echo.Context) error {
	req := c.Request()
	if !websocket.IsWebSocketUpgrade(req) {
		return xrpc.InvalidRequest("com.atproto.sync.subscribeRepos is a websocket event stream: connect with a websocket client")
	}
	var cursor *int64
	if xrpc.ParamPresent(c, "cursor") {
		n := int64(xrpc.ParamInt(c, "cursor", 0))
		cursor = &n
	}
	if !s.bg.enter() {
		return xrpc.NewError(http.StatusServiceUnavailable, "ServiceUnavailable", "Server is shutting down")
	}
	defer s.bg.leave()
	conn, err := upgrader.Upgrade(c.Response(), req, nil)
	if err != nil {
		return nil // the upgrader has answered the request
	}
	fc := newFirehoseConn(conn)
	defer fc.conn.Close()
	// At shutdown the stream loop sends a close frame; a write stuck on a peer that stopped reading would hold
	// Shutdown for writeTimeout, so after a grace period the socket's deadline is forced.
	streamDone := make(chan struct{})
	defer close(streamDone)
	go func() {
		select {
		case <-s.bg.Quit():
		case <-streamDone:
			return
		}
		select {
		case <-streamDone:
		case <-time.After(closeTimeout):
			conn.NetConn().SetDeadline(time.Now())
		}
	}()

	code, reason, err := s.stream(fc, cursor)
	if err != nil && !errors.Is(err, errPeerGone) {
		s.log.Info("firehose subscriber dropped", "remote", req.RemoteAddr, "err", err)
	}
	fc.close(code, reason)
	return nil
}

// errPeerGone ends a stream whose peer closed or stopped answering.
var errPeerGone = errors.New("firehose peer gone")

// firehoseConn is one subscriber's websocket: this goroutine writes; a reader goroutine discards what the peer
// sends (answering pings, noticing close) and cancels ctx when the connection ends.
type firehoseConn struct {
	conn   *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	ping   *time.Ticker
}

func newFirehoseConn(conn *websocket.Conn) *firehoseConn {
	ctx, cancel := context.WithCancel(context.Background())
	fc := &firehoseConn{conn: conn, ctx: ctx, cancel: cancel, ping: time.NewTicker(pingInterval)}
	conn.SetReadLimit(64 * 1024)
	conn.SetReadDeadline(time.Now().Add(readTimeout))
	conn.SetPongHandler(func(string) error {
		return conn.SetReadDeadline(time.Now().Add(readTimeout))
	})
	go func() {
		defer cancel()
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
			conn.SetReadDeadline(time.Now().Add(readTimeout))
		}
	}()
	return fc
}

func (fc *firehoseConn) send(frame []byte) error {
	fc.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := fc.conn.WriteMessage(websocket.BinaryMessage, frame); err != nil {
		return errors.Join(errPeerGone, err)
	}
	return nil
}

// keepAlive sends a ping when one is due, and reports a connection that has ended.
func (fc *firehoseConn) keepAlive() error {
	select {
	case <-fc.ctx.Done():
		return errPeerGone
	case <-fc.ping.C:
		return fc.sendPing()
	default:
		return nil
	}
}

func (fc *firehoseConn) sendPing() error {
	if err := fc.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
		return errors.Join(errPeerGone, err)
	}
	return nil
}

func (fc *firehoseConn) close(code int, reason string) {
	fc.ping.Stop()
	if code != 0 {
		msg := websocket.FormatCloseMessage(code, reason)
		fc.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeTimeout))
	}
	fc.cancel()
}

// stream sends the events the subscriber asked for until the connection ends, and returns the close code
// (0: none, the peer is gone) and reason.
//
// Replay with a cursor reads stored pages without a live subscription while far behind (a slow backfill is
// not "too slow" for the live buffer), then subscribes: Subscribe's head is exact, so replaying the store up
// to it and then taking live events above the last one sent gives every event once, in order.
func (s *Server) stream(fc *firehoseConn, cursor *int64) (int, string, error) {
	ctx := fc.ctx
	quit := s.bg.Quit()
	var last int64 // seq of the last event sent
	if cursor != nil {
		head := s.seq.Head()
		if *cursor > head {
			if err := fc.send(sequencer.EncodeErrorFrame("FutureCursor", msgFutureCursor)); err != nil {
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
	for last < head {
		n, err := s.replay(ctx, fc, &last, head)
		if err != nil {
			return 0, "", err
		}
		if n == 0 {
			break // the rest was pruned meanwhile
		}
	}

	for {
		// An ended subscription wins over events still buffered.
		select {
		case <-sub.Done():
			return s.subscriptionEnded(fc, sub.Err())
		default:
		}
		select {
		case e := <-sub.C:
			if e.Seq <= last {
				continue
			}
			if e.Seq != last+1 {
				s.log.Error("firehose: live stream skipped events", "after", last, "got", e.Seq)
			}
			if err := fc.send(e.Frame); err != nil {
				return 0, "", err
			}
			last = e.Seq
		case <-sub.Done():
			return s.subscriptionEnded(fc, sub.Err())
		case <-fc.ping.C:
			if err := fc.sendPing(); err != nil {
				return 0, "", err
			}
		case <-ctx.Done():
			return 0, "", errPeerGone
		case <-quit:
			return closeGoingAway, "server shutting down", nil
		}
	}
}

func (s *Server) subscriptionEnded(fc *firehoseConn, err error) (int, string, error) {
	if errors.Is(err, sequencer.ErrTooSlow) {
		if err := fc.send(sequencer.EncodeErrorFrame("ConsumerTooSlow", msgConsumerSlow)); err != nil {
			return 0, "", err
		}
		return closePolicy, "ConsumerTooSlow", sequencer.ErrTooSlow
	}
	return closeGoingAway, "server shutting down", nil
}

// replayStart decides where a replay from cursor starts. Events older than the retention window (kept until
// the next prune) and events already pruned are not replayed: the subscriber gets #info OutdatedCursor and
// the stream starts at the oldest event inside the window.
func (s *Server) replayStart(ctx context.Context, fc *firehoseConn, cursor, head int64) (int64, error) {
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
	}
	if err := fc.send(sequencer.EncodeInfoFrame("OutdatedCursor", msgOutdatedCursor)); err != nil {
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

// replay sends stored events after *last (one page, and only up to through when through > 0), advancing
// *last. A jump in seq means events were pruned while the subscriber was reading: it gets #info
// OutdatedCursor, as for an old cursor.
func (s *Server) replay(ctx context.Context, fc *firehoseConn, last *int64, through int64) (int, error) {
	if err := fc.keepAlive(); err != nil {
		return 0, err
	}
	events, err := s.seq.Events(ctx, *last, replayPage)
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, e := range events {
		if through > 0 && e.Seq > through {
			break
		}
		if e.Seq != *last+1 {
			if err := fc.send(sequencer.EncodeInfoFrame("OutdatedCursor", msgOutdatedCursor)); err != nil {
				return sent, err
			}
		}
		if err := fc.send(e.Frame); err != nil {
			return sent, err
		}
		*last = e.Seq
		sent++
	}
	return sent, nil
}
