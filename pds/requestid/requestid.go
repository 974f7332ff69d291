package requestid

import (
	"context"
	"log/slog"
	"math/rand/v2"
)

// Header is the request and response header carrying the ID.
const Header = "X-Request-Id"

// LogKey is the log attribute holding the ID.
const LogKey = "request_id"

// MaxLen bounds an accepted inbound ID.
const MaxLen = 64

type ctxKey struct{}

// New returns a fresh ID: 128 random bits as 32 hex digits. IDs are for correlating log lines, not secrets:
// the runtime's fast generator (ChaCha8, seeded from the OS) is enough and costs no system call.
func New() string {
	const hexDigits = "0123456789abcdef"
	var b [32]byte
	for half := range 2 {
		v := rand.Uint64()
		for i := range 16 {
			b[half*16+i] = hexDigits[v&0xf]
			v >>= 4
		}
	}
	return string(b[:])
}

// Valid reports whether an inbound ID may be used as it is: 1 to MaxLen characters among letters, digits and
// "-", "_", ".", ":" (UUIDs, hex, nginx's $request_id, Caddy's {http.request.uuid}). Anything else could
// forge log structure or grow lines without bound.
func Valid(id string) bool {
	if id == "" || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// From is the ID ctx carries ("" when none).
func From(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// Handler wraps h so that a record logged with a context carrying an ID gets the request_id attribute. A
// handler already wrapped is returned as it is.
func Handler(h slog.Handler) slog.Handler {
	if _, ok := h.(handler); ok {
		return h
	}
	return handler{h}
}

type handler struct{ slog.Handler }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if id := From(ctx); id != "" {
		r.AddAttrs(slog.String(LogKey, id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return handler{h.Handler.WithAttrs(attrs)}
}
func (h handler) WithGroup(name string) slog.Handler { return handler{h.Handler.WithGroup(name)} }
