package auth

import (
	"context"
	"time"

	indigoauth "github.com/bluesky-social/indigo/atproto/auth"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

// ServiceAuth verifies an incoming inter-service JWT (ES256K/ES256, signed by the key in the issuer's DID
// document, audience this server, lxm = method) and returns the issuer.
func (v *Verifier) ServiceAuth(ctx context.Context, token, method string) (syntax.DID, error) {
	lxm, err := syntax.ParseNSID(method)
	if err != nil {
		return "", err
	}
	val := &indigoauth.ServiceAuthValidator{Audience: v.cfg.ServiceDID, Dir: v.cfg.Docs}
	ctx, cancel := context.WithTimeout(ctx, 2*v.cfg.DocTimeout+time.Second)
	defer cancel()
	return val.Validate(ctx, token, &lxm)
}
