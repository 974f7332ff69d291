package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pdsgo/pds/takeover"
)

// runTakeover is `pds takeover`: this server takes over a stopped reference PDS's data directory (package
// takeover, docs/takeover.md).
func runTakeover(ctx context.Context, cl *cli, args []string) error {
	fs := cl.flagSet("takeover")
	from := fs.String("from", "", "the reference PDS's data directory (the official distribution's /pds)")
	envFile := fs.String("env", "", "its env file (/pds/pds.env)")
	to := fs.String("to", "", "this server's new data directory (must not exist, or be empty)")
	check := fs.Bool("check", false, "only check and report what would be carried; write nothing (works on a running reference)")
	move := fs.Bool("move", false, "move disk blobs instead of copying them (same file system; the reference loses them)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected arguments %q", pos)
	}
	if *from == "" || *envFile == "" || *to == "" {
		return fmt.Errorf("--from, --env and --to are required (see `pds help`)")
	}
	bar := newTakeoverBar(cl.stderr, isTerminal(cl.stderr))
	rep, err := takeover.Run(ctx, takeover.Options{
		From: *from, EnvFile: *envFile, To: *to, Check: *check, Move: *move,
		Progress: bar.update,
	})
	bar.finish()
	if err != nil {
		return err
	}
	rep.WriteText(cl.stdout)
	if *check {
		fmt.Fprintf(cl.stdout, "check only: nothing was written. Run again without --check to take over.\n")
	} else {
		fmt.Fprintf(cl.stdout, "done. Start this server with: set -a; . %s/pds.env; set +a; pds serve\n", strings.TrimRight(*to, "/"))
	}
	return nil
}

// takeoverBar draws one line that it rewrites on a terminal, and a line per phase and per 10% elsewhere (logs).
type takeoverBar struct {
	w        io.Writer
	tty      bool
	phase    string
	lastPct  int64
	lastDraw time.Time
	drawn    bool
}

func newTakeoverBar(w io.Writer, tty bool) *takeoverBar {
	return &takeoverBar{w: w, tty: tty, lastPct: -1}
}

func (b *takeoverBar) update(p takeover.Progress) {
	pct := int64(100)
	if p.Total > 0 {
		pct = p.Done * 100 / p.Total
	}
	if p.Phase != b.phase {
		if b.drawn && b.tty {
			fmt.Fprintln(b.w)
		}
		b.phase, b.lastPct, b.drawn = p.Phase, -1, false
	}
	if b.tty {
		if time.Since(b.lastDraw) < 100*time.Millisecond && p.Done != p.Total {
			return
		}
		const width = 30
		fill := int(pct * width / 100)
		fmt.Fprintf(b.w, "\r%-9s [%s%s] %3d%% %d/%d", p.Phase, strings.Repeat("#", fill), strings.Repeat(".", width-fill), pct, p.Done, p.Total)
		b.lastDraw, b.drawn = time.Now(), true
		return
	}
	if pct/10 != b.lastPct/10 || b.lastPct < 0 {
		fmt.Fprintf(b.w, "takeover: %s %d%% (%d/%d)\n", p.Phase, pct, p.Done, p.Total)
		b.lastPct = pct
	}
}

func (b *takeoverBar) finish() {
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
	}
}

// isTerminal reports whether w is a character device (a terminal), where the bar redraws itself.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
