package testpds

import (
	"net/http"
	"testing"
	"time"
)

// Attach is a client of a PDS the test runs another way (the pds binary): the XRPC, blob and firehose helpers
// work on it; Config and Server are nil.
func Attach(t testing.TB, url, plcURL string) *PDS {
	return &PDS{URL: url, PLCURL: plcURL, Client: &http.Client{Timeout: 30 * time.Second}, t: t}
}
