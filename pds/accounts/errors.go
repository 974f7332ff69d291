package accounts

import (
	"errors"
	"net/http"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/xrpc"
)

// The mapping of this package's store and directory errors to XRPC errors.

// NotFound is the error for an account that does not exist.
func NotFound() error {
	return xrpc.NewError(http.StatusBadRequest, xrpc.NameAccountNotFound, "Account not found")
}

// LookupError maps an account lookup failure: accountstore.ErrNotFound is AccountNotFound.
func LookupError(err error) error {
	if errors.Is(err, accountstore.ErrNotFound) {
		return NotFound()
	}
	return err
}

// PLCError turns a PLC directory failure into an XRPC error: a refusal (4xx) is the client's problem and carries
// the directory's message; anything else is an upstream failure (logged).
func (s *Service) PLCError(err error) error {
	var pe *plc.Error
	if errors.As(err, &pe) && pe.StatusCode >= 400 && pe.StatusCode < 500 {
		return xrpc.InvalidRequest("The PLC directory refused the operation: %s", pe.Message)
	}
	s.log.Error("PLC directory request failed", "err", err)
	return xrpc.NewError(http.StatusBadGateway, xrpc.NameUpstreamFailure, "The PLC directory could not be reached")
}

func invalidHandle(msg string) error {
	return xrpc.NewError(http.StatusBadRequest, xrpc.NameInvalidHandle, "%s", msg)
}

// trimSentinel drops a sentinel's "<sentinel>: " prefix from an error's message (as the write path's mapping).
func trimSentinel(err, sentinel error) string {
	msg := err.Error()
	if len(msg) > len(sentinel.Error())+2 && msg[:len(sentinel.Error())] == sentinel.Error() {
		return msg[len(sentinel.Error())+2:]
	}
	return msg
}
