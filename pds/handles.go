package pds

import (
	"net/http"
	"strings"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/xrpc"
)

// reservedHandles are first labels no one may register on the service domains (a short list of the names the
// reference reserves: service, infrastructure and impersonation-prone words).
var reservedHandles = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`about abuse access account accounts admin administrator alpha api app apps atproto
		auth beta billing blog bluesky bsky cdn chat config contact copyright dashboard dev developer developers
		did dns docs download email feed feeds ftp help host hostmaster imap info invite jobs legal login logout
		mail mailer moderation moderator mod news noc oauth official pds plc policy postmaster privacy relay
		root security service services settings signin signup smtp staff status support sync system team terms
		test tos update webmaster www xrpc`) {
		reservedHandles[w] = true
	}
}

func invalidHandle(msg string) error {
	return xrpc.NewError(http.StatusBadRequest, "InvalidHandle", "%s", msg)
}

// normalizeServiceHandle checks a handle requested on this server's handle domains and returns it lower-cased.
func (s *Server) normalizeServiceHandle(raw string) (string, error) {
	h, err := syntax.ParseHandle(strings.TrimSpace(raw))
	if err != nil {
		return "", invalidHandle("Input/handle must be a valid handle")
	}
	handle := h.Normalize().String()
	for _, tld := range []string{".local", ".arpa", ".invalid", ".localhost", ".internal", ".example", ".alt", ".onion"} {
		if strings.HasSuffix(handle, tld) {
			return "", invalidHandle("Handle TLD is invalid or disallowed")
		}
	}
	for _, domain := range s.cfg.ServiceHandleDomains {
		if !strings.HasSuffix(handle, domain) {
			continue
		}
		front := strings.TrimSuffix(handle, domain)
		switch {
		case strings.Contains(front, "."):
			return "", invalidHandle("Invalid characters in handle")
		case len(front) < 3:
			return "", invalidHandle("Handle too short")
		case len(front) > 18:
			return "", invalidHandle("Handle too long")
		case reservedHandles[front]:
			return "", invalidHandle("Reserved handle")
		}
		return handle, nil
	}
	return "", invalidHandle("Handle must use one of this server's domains: " + strings.Join(s.cfg.ServiceHandleDomains, ", "))
}
