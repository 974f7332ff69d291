package pds

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/internal/ssrf"
	"github.com/pdsgo/pds/pds/accounts"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/oauth"
	"github.com/pdsgo/pds/pds/oauth/scope"
	"github.com/pdsgo/pds/pds/proxy"
	"github.com/pdsgo/pds/pds/ratelimit"
)

// oauthFetchTimeout bounds one client-metadata, JWKS or permission-set fetch.
const oauthFetchTimeout = 10 * time.Second

// oauthPruneInterval is how often expired OAuth state is deleted.
const oauthPruneInterval = 10 * time.Minute

// newOAuth builds the OAuth authorization server and plugs its access tokens into the auth seam. The issuer is
// the public URL (http://localhost:<port> for PDS_HOSTNAME=localhost, else https://<hostname>). Outbound
// fetches (client metadata, JWKS, permission sets) go through the SSRF guard unless
// PDS_DISABLE_SSRF_PROTECTION.
func (s *Server) newOAuth(cfg *Config, ids *accounts.Directories, log *slog.Logger) error {
	outbound := ssrf.NewClient(cfg.DisableSSRFProtection, oauthFetchTimeout)
	includes := scope.NewLexiconResolver(ids.Docs(), outbound)
	includes.DNSServer = cfg.HandleDNSServer
	p, err := oauth.New(oauth.Config{
		Issuer:          cfg.PublicURL,
		ServiceDID:      syntax.DID(cfg.ServiceDID),
		Secret:          cfg.JWTSecret,
		ClientHTTP:      outbound,
		IncludeResolver: includes,
		ServiceName:     cfg.ServiceName,
		Links:           cfg.pageLinks(),
		ClientIP:        ratelimit.IPExtractor(cfg.TrustedProxies), // X-Forwarded-For only from trusted proxies
		Logger:          log,
	}, oauth.Deps{Store: s.accounts.Store, Accounts: s.accounts.OAuthAccounts()})
	if err != nil {
		return fmt.Errorf("oauth: %w", err)
	}
	s.oauth = p
	s.accounts.SetSessionRevoker(p) // password change, deactivation, takedown, deletion end OAuth sessions
	s.auth.OAuth = &auth.OAuthVerifier{Provider: p, PublicURL: cfg.PublicURL, Includes: includes, Log: log}
	return nil
}

// pruneOAuth deletes expired OAuth state now and every oauthPruneInterval until quit is closed.
func (s *Server) pruneOAuth(quit <-chan struct{}) {
	t := time.NewTicker(oauthPruneInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := s.oauth.Prune(ctx); err != nil {
			s.log.Warn("oauth: pruning expired state", "err", err)
		}
		cancel()
		select {
		case <-quit:
			return
		case <-t.C:
		}
	}
}

// proxyCaller is what the proxy needs of a caller: its DID, whether it is an ordinary app password, and for
// OAuth callers the rpc: check.
func proxyCaller(v *auth.Caller) proxy.Caller {
	pc := proxy.Caller{DID: v.DID, AppPassword: v.Scope == auth.ScopeAppPass}
	if v.IsOAuth() {
		pc.RequireRPC = v.RequireRPC
	}
	return pc
}
