package backup

import (
	"context"
	"log/slog"
	"time"
)

// pruneEvery is how often the continuous loop prunes (it reads every kept manifest).
const pruneEvery = time.Hour

// Run backs src up every cfg.Interval until quit is closed: the server's continuous backup. A failed round is
// logged and retried at the next tick; the next successful round copies everything changed since the last
// successful one.
func Run(quit <-chan struct{}, cfg *Config, src Source, log *slog.Logger) {
	RunObserved(quit, cfg, src, log, nil)
}

// Observer is told each continuous round's outcome (pds/metrics): when it started (what it copied is at least
// that recent), the encrypted bytes it uploaded, how long it took, and its error (nil: the round is complete).
type Observer interface {
	RoundDone(start time.Time, bytes int64, d time.Duration, err error)
}

// RunObserved is Run reporting each round to obs (nil: none).
func RunObserved(quit <-chan struct{}, cfg *Config, src Source, log *slog.Logger, obs Observer) {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-quit
		cancel()
	}()
	var b *Backup
	var lastPrune time.Time
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		if b == nil {
			var err error
			if b, err = Open(ctx, cfg, log, true); err != nil {
				log.Error("backup: cannot open the backup location", "url", cfg.URL, "err", err)
				b = nil
				if obs != nil && ctx.Err() == nil {
					obs.RoundDone(time.Now(), 0, 0, err)
				}
			}
		}
		if b != nil {
			start := time.Now()
			m, st, err := b.Round(ctx, src)
			if obs != nil && ctx.Err() == nil {
				var bytes int64
				if st != nil {
					bytes = st.Bytes
				}
				obs.RoundDone(start, bytes, time.Since(start), err)
			}
			switch {
			case err != nil && ctx.Err() == nil:
				log.Error("backup round failed", "err", err)
			case err == nil:
				log.Info("backup round", "round", m.ID, "seq", m.Seq, "accounts", st.Accounts, "copied", st.Copied,
					"objects", st.Objects, "bytes", st.Bytes, "duration", st.Duration)
			}
			if err == nil && time.Since(lastPrune) > pruneEvery {
				lastPrune = time.Now()
				if ps, err := b.Prune(ctx, time.Now()); err != nil {
					log.Error("backup prune failed", "err", err)
				} else if ps.Rounds > 0 || ps.Objects > 0 {
					log.Info("backup pruned", "rounds", ps.Rounds, "objects", ps.Objects, "bytes", ps.Bytes)
				}
			}
		}
		select {
		case <-quit:
			return
		case <-t.C:
		}
	}
}
