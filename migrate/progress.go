package migrate

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
)

// progress reports the migration's steps and, for long transfers, a bar: redrawn in place on a terminal,
// printed once when finished otherwise (logs stay readable). A nil writer reports nothing.
type progress struct {
	w   io.Writer
	tty bool

	mu       sync.Mutex
	active   bool
	label    string
	bytes    bool // cur/total are bytes (else a count)
	cur      int64
	total    int64 // <= 0: unknown
	lastDraw time.Time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) printf(format string, args ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endBarLocked()
	fmt.Fprintf(p.w, format, args...)
}

// step announces a step of the migration.
func (p *progress) step(format string, args ...any) { p.printf("• "+format+"\n", args...) }

// note reports something within a step.
func (p *progress) note(format string, args ...any) { p.printf("  "+format+"\n", args...) }

// reader counts what r delivers against total bytes (<= 0: unknown).
func (p *progress) reader(r io.Reader, total int64, label string) io.Reader {
	p.mu.Lock()
	p.endBarLocked()
	p.active, p.label, p.bytes, p.cur, p.total = true, label, true, 0, total
	p.mu.Unlock()
	return &progressReader{r: r, p: p}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.mu.Lock()
	pr.p.cur += int64(n)
	pr.p.drawLocked(false)
	pr.p.mu.Unlock()
	return n, err
}

// count sets a counted bar (blobs copied of total).
func (p *progress) count(cur, total int, label string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.active || p.label != label {
		p.endBarLocked()
		p.active, p.label, p.bytes = true, label, false
	}
	p.cur, p.total = int64(cur), int64(total)
	p.drawLocked(false)
}

// done ends the current bar.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endBarLocked()
}

// pause ends the bar before the caller writes to the terminal itself (a prompt).
func (p *progress) pause()  { p.done() }
func (p *progress) finish() { p.done() }

func (p *progress) endBarLocked() {
	if !p.active {
		return
	}
	p.drawLocked(true)
	if p.w != nil {
		fmt.Fprintln(p.w)
	}
	p.active = false
}

func (p *progress) drawLocked(final bool) {
	if p.w == nil || !p.active {
		return
	}
	if !p.tty && !final {
		return
	}
	if !final && time.Since(p.lastDraw) < 100*time.Millisecond {
		return
	}
	p.lastDraw = time.Now()
	const width = 30
	bar, pct := strings.Repeat("·", width), ""
	if p.total > 0 {
		fill := int(min(p.cur, p.total) * width / p.total)
		bar = strings.Repeat("█", fill) + strings.Repeat("·", width-fill)
		pct = fmt.Sprintf(" %3d%%", min(p.cur, p.total)*100/p.total)
	}
	amount := fmt.Sprintf("%d/%d", p.cur, p.total)
	if p.bytes {
		amount = humanize.IBytes(uint64(p.cur))
		if p.total > 0 {
			amount += "/" + humanize.IBytes(uint64(p.total))
		}
	}
	prefix := "\r"
	if !p.tty {
		prefix = ""
	}
	fmt.Fprintf(p.w, "%s  %-20s [%s]%s %s", prefix, p.label, bar, pct, amount)
}
