package pds

import (
	"net/http"
)

// Request header limits. Go's own default is 1 MB of header and no cap on the number of lines; the reference
// (Node) allows 16 KB. These apply to every request, the websocket upgrade of subscribeRepos included.
const (
	// MaxHeaderBytes bounds a request's head (request line and headers): more is a 431.
	MaxHeaderBytes = 64 << 10
	// MaxHeaderLines bounds the number of header lines: more is a 431.
	MaxHeaderLines = 1000

	// headerReadSlop is what net/http reads beyond http.Server.MaxHeaderBytes before it answers 431 (its
	// bufio slop); taken off so the limit is MaxHeaderBytes itself.
	headerReadSlop = 4096
)

// limitHeaderLines answers 431 to a request with more than MaxHeaderLines header lines (the byte limit is
// net/http's, set with http.Server.MaxHeaderBytes). The connection is closed: a client this far off is not
// worth keeping.
func limitHeaderLines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 0
		for _, v := range r.Header {
			n += len(v)
		}
		if r.Host != "" {
			n++ // net/http moves Host out of Header
		}
		if n > MaxHeaderLines {
			w.Header().Set("Connection", "close")
			http.Error(w, "431 Request Header Fields Too Large", http.StatusRequestHeaderFieldsTooLarge)
			return
		}
		next.ServeHTTP(w, r)
	})
}
