package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/gorilla/websocket"
)

// FirehoseStats describes subscribers watching a write load.
type FirehoseStats struct {
	Subscribers int   `json:"subscribers"`
	Connected   int   `json:"connected"`
	WritesAcked int   `json:"writes_acked"`
	Frames      int64 `json:"frames"`          // frames received, all subscribers
	Commits     int64 `json:"commit_frames"`   // #commit frames received, all subscribers
	Missing     int64 `json:"missing_commits"` // acknowledged writes some subscriber never saw
	// DeliveredPerSec is frames received by all subscribers per second of the write phase (plus settling).
	DeliveredPerSec float64 `json:"delivered_per_s"`
	ErrorFrames     int     `json:"error_frames"` // e.g. ConsumerTooSlow
	Disconnects     int     `json:"disconnects"`  // connections the server ended before the tool closed them
	// Delay from the createRecord request being sent to the frame's arrival, over every subscriber and commit.
	DelayFromSend Dist `json:"delay_from_send_ms"`
	// Delay from the event's own "time" (the server's commit time, ms precision) to the frame's arrival.
	DelayFromEventTime Dist    `json:"delay_from_event_time_ms"`
	SettleSeconds      float64 `json:"settle_seconds"`
	FirstError         string  `json:"first_error,omitempty"`
}

type frameSample struct {
	seq  int64
	recv int64 // unix nanos
}

type subscriber struct {
	conn      *websocket.Conn
	full      bool // decode #commit bodies for op paths (one subscriber does)
	maxSample int

	commits     atomic.Int64
	frames      atomic.Int64
	errorFrames int
	endErr      error       // why read returned (read after it has)
	ended       atomic.Bool // read has returned
	closedByUs  atomic.Bool // the tool closed the connection
	endedEarly  bool        // the connection ended before the tool closed it

	samples  []frameSample
	evtDelay []time.Duration
	seqPath  map[int64]string
}

func (s *subscriber) read(done func()) {
	defer done()
	defer func() {
		s.endedEarly = !s.closedByUs.Load()
		s.ended.Store(true)
	}()
	var buf bytes.Buffer
	for {
		_, r, err := s.conn.NextReader()
		if err != nil {
			s.endErr = err
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			s.endErr = err
			return
		}
		recv := time.Now()
		s.frames.Add(1)
		b := buf.Bytes()
		f, err := scanFrame(b)
		if err != nil {
			s.endErr = fmt.Errorf("bad frame: %w", err)
			return
		}
		if f.Op != 1 {
			s.errorFrames++
			continue
		}
		if f.Type != "#commit" {
			continue
		}
		if s.full {
			var evt comatproto.SyncSubscribeRepos_Commit
			if err := evt.UnmarshalCBOR(bytes.NewReader(b[f.Body:])); err == nil && len(evt.Ops) > 0 {
				s.seqPath[f.Seq] = evt.Ops[0].Path
			}
		}
		if len(s.samples) < s.maxSample {
			s.samples = append(s.samples, frameSample{seq: f.Seq, recv: recv.UnixNano()})
			if t, err := time.Parse(time.RFC3339Nano, f.Time); err == nil {
				s.evtDelay = append(s.evtDelay, recv.Sub(t))
			}
		}
		s.commits.Add(1)
	}
}

// subscribeURL is the websocket URL of subscribeRepos (live tail: no cursor).
func subscribeURL(base string) string {
	u, _ := url.Parse(base)
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/xrpc/com.atproto.sync.subscribeRepos"
	return u.String()
}

// firehoseOpts configure runFirehose.
type firehoseOpts struct {
	Subscribers int
	Writers     []*account
	Limits      limits
	Settle      time.Duration // longest wait, after the writes, for subscribers to catch up
	MaxSamples  int           // total samples kept (memory bound)
}

// runFirehose connects the subscribers, runs createRecord from one client per writer account, waits for the
// subscribers to receive every acknowledged commit (or for Settle), and measures delivery.
func runFirehose(ctx context.Context, c *client, base string, o firehoseOpts) (*Result, error) {
	dialer := &websocket.Dialer{NetDialContext: loopbackDialer(), HandshakeTimeout: 10 * time.Second, ReadBufferSize: 64 * 1024}
	wsURL := subscribeURL(base)
	perSub := max(o.MaxSamples/max(o.Subscribers, 1), 100)
	subs := make([]*subscriber, o.Subscribers)
	var dialErr error
	var mu sync.Mutex
	sem := make(chan struct{}, 32)
	var dialWG sync.WaitGroup
	for i := range subs {
		dialWG.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; dialWG.Done() }()
			conn, _, err := dialer.DialContext(ctx, wsURL, nil)
			if err != nil {
				mu.Lock()
				if dialErr == nil {
					dialErr = err
				}
				mu.Unlock()
				return
			}
			conn.SetReadLimit(8 << 20)
			s := &subscriber{conn: conn, full: i == 0, maxSample: perSub}
			if s.full {
				s.seqPath = map[int64]string{}
			}
			subs[i] = s
		}()
	}
	dialWG.Wait()
	var live []*subscriber
	for _, s := range subs {
		if s != nil {
			live = append(live, s)
		}
	}
	defer func() {
		for _, s := range live {
			s.conn.Close()
		}
	}()
	if subs[0] == nil {
		return nil, fmt.Errorf("firehose: first subscriber: %v", dialErr)
	}
	var readWG sync.WaitGroup
	for _, s := range live {
		readWG.Add(1)
		go s.read(readWG.Done)
	}
	// The server registers a subscription after the upgrade: give it a moment before writing.
	time.Sleep(time.Second)

	var sendMu sync.Mutex
	sent := map[string]time.Time{}
	writeStart := time.Now()
	res := run(ctx, "firehose", len(o.Writers), o.Limits, func(ctx context.Context, w, i int) error {
		t0 := time.Now()
		out, err := c.createRecord(ctx, o.Writers[w], fmt.Sprintf("firehose %d", i))
		if err != nil {
			return err
		}
		path := out.URI[strings.Index(out.URI, benchCollection):]
		sendMu.Lock()
		sent[path] = t0
		sendMu.Unlock()
		return nil
	})
	res.Accounts = len(o.Writers)

	// Settle: wait until every subscriber has every acknowledged commit (or gave up, or Settle passed).
	settleStart := time.Now()
	want := int64(res.Ops)
	for time.Since(settleStart) < o.Settle && ctx.Err() == nil {
		behind := false
		for _, s := range live {
			if s.commits.Load() < want && !s.ended.Load() {
				behind = true
				break
			}
		}
		if !behind {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	settle := time.Since(settleStart)
	elapsed := time.Since(writeStart)
	for _, s := range live {
		s.closedByUs.Store(true)
		s.conn.Close()
	}
	readWG.Wait()

	fs := &FirehoseStats{Subscribers: o.Subscribers, Connected: len(live), WritesAcked: res.Ops, SettleSeconds: settle.Seconds()}
	if dialErr != nil {
		fs.FirstError = "dial: " + dialErr.Error()
	}
	seqSent := map[int64]time.Time{}
	for seq, path := range subs[0].seqPath {
		if t, ok := sent[path]; ok {
			seqSent[seq] = t
		}
	}
	var fromSend, fromEvt []time.Duration
	for _, s := range live {
		fs.Frames += s.frames.Load()
		fs.Commits += s.commits.Load()
		fs.ErrorFrames += s.errorFrames
		if n := want - s.commits.Load(); n > 0 {
			fs.Missing += n
		}
		if s.endedEarly {
			fs.Disconnects++
			if fs.FirstError == "" {
				fs.FirstError = s.endErr.Error()
			}
		}
		for _, smp := range s.samples {
			if t, ok := seqSent[smp.seq]; ok {
				fromSend = append(fromSend, time.Duration(smp.recv-t.UnixNano()))
			}
		}
		fromEvt = append(fromEvt, s.evtDelay...)
	}
	fs.DelayFromSend = summarize(fromSend)
	fs.DelayFromEventTime = summarize(fromEvt)
	if elapsed > 0 {
		fs.DeliveredPerSec = float64(fs.Frames) / elapsed.Seconds()
	}
	res.Firehose = fs
	return res, nil
}
