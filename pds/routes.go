package pds

import (
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/oauth/scope"
	"github.com/pdsgo/pds/pds/ratelimit"
	"github.com/pdsgo/pds/xrpc"
)

// routes registers every route, in one place.
func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = xrpc.ErrorHandler(s.log)
	e.Use(s.requestMiddleware()) // request ID, metrics, debug access line (middleware.go)
	e.Use(recoverMiddleware(s.log))
	e.Use(corsMiddleware)
	e.IPExtractor = ratelimit.IPExtractor(s.cfg.TrustedProxies) // X-Forwarded-For only from trusted proxies
	e.Use(s.limits.Global)                                      // 3000 XRPC requests / 5 min per IP (pds/ratelimit)

	e.GET("/", s.handleRoot)
	e.GET("/robots.txt", s.handleRobots)
	e.GET("/xrpc/_health", s.handleHealth)
	e.GET("/.well-known/atproto-did", s.handleWellKnownDID)
	e.GET("/tls-check", s.handleTLSCheck) // a proxy's on-demand TLS asks before getting a certificate

	// OAuth (pds/oauth): /.well-known/oauth-protected-resource, /.well-known/oauth-authorization-server and
	// /oauth/* (metadata, PAR, the sign-in and consent pages, token, revocation, their CORS preflights).
	for _, rt := range s.oauth.Routes() {
		e.Add(rt.Method, rt.Path, echo.WrapHandler(rt.Handler))
	}

	r := xrpc.NewRouter(e, s.catalog)
	s.router = r
	std := s.auth.RequireAuth(auth.Standard)
	full := s.auth.RequireAuth(auth.Full)
	takendown := s.auth.RequireAuth(auth.Takendown)

	// What an OAuth grant needs for each method (the reference's authorize callbacks); legacy sessions pass
	// these untouched. Checks that depend on the body (record writes) are in the handlers, and proxied calls
	// are checked by pds/proxy (rpc:).
	// Every route with RequireAuth states one (TestRoutesDeclareOAuthRules): inHandler where the check needs the
	// body or the call's target.
	anyOAuth := auth.AnyOAuth()
	inHandler := auth.CheckedInHandler()
	noOAuth := auth.NoOAuth()
	emailManage := auth.Account("email", scope.ActionManage)
	statusManage := auth.Account("status", scope.ActionManage)
	identityAll := auth.Identity("*")
	uploadScope := auth.Authorize(func(c echo.Context, v *auth.Caller) error { // the declared type, before any byte
		return v.RequireBlob(c.Request().Header.Get("Content-Type"))
	})
	serviceAuthScope := auth.Authorize(func(c echo.Context, v *auth.Caller) error {
		lxm := c.QueryParam("lxm")
		if lxm == "" {
			lxm = "*" // a token for any method
		}
		return v.RequireRPC(lxm, c.QueryParam("aud"))
	})
	rpcHere := func(nsid string) echo.MiddlewareFunc { // an app.bsky method served here, as if at its service
		return auth.RPC(nsid, func(c echo.Context) string {
			aud, _ := s.proxy.Audience(c, nsid)
			return aud
		})
	}

	// com.atproto.server
	r.Query("com.atproto.server.describeServer", s.handleDescribeServer)
	r.Procedure("com.atproto.server.createAccount", s.handleCreateAccount, s.limits.Route("createAccount"))
	r.Procedure("com.atproto.server.reserveSigningKey", s.handleReserveSigningKey, s.limits.Route("reserveSigningKey"))
	r.Procedure("com.atproto.server.createSession", s.handleCreateSession, s.limits.Route("createSession"))
	r.Query("com.atproto.server.getSession", s.handleGetSession, takendown, anyOAuth) // email only with account:email
	r.Procedure("com.atproto.server.refreshSession", s.handleRefreshSession)
	r.Procedure("com.atproto.server.deleteSession", s.handleDeleteSession)
	r.Query("com.atproto.server.checkAccountStatus", s.handleCheckAccountStatus, takendown, anyOAuth)
	r.Procedure("com.atproto.server.createInviteCode", s.handleCreateInviteCode, s.auth.RequireAdmin)
	r.Procedure("com.atproto.server.activateAccount", s.handleActivateAccount, full, statusManage)
	r.Procedure("com.atproto.server.deactivateAccount", s.handleDeactivateAccount, s.auth.RequireAuth(auth.FullTakendown), statusManage)
	r.Procedure("com.atproto.server.requestAccountDelete", s.handleRequestAccountDelete, full, noOAuth, s.limits.Route("requestAccountDelete"))
	r.Procedure("com.atproto.server.deleteAccount", s.handleDeleteAccount, s.limits.Route("deleteAccount"))
	r.Procedure("com.atproto.server.requestEmailConfirmation", s.handleRequestEmailConfirmation, full, emailManage, s.limits.Route("requestEmailConfirmation"))
	r.Procedure("com.atproto.server.confirmEmail", s.handleConfirmEmail, full, emailManage)
	r.Procedure("com.atproto.server.requestEmailUpdate", s.handleRequestEmailUpdate, full, emailManage, s.limits.Route("requestEmailUpdate"))
	r.Procedure("com.atproto.server.updateEmail", s.handleUpdateEmail, full, emailManage)
	r.Procedure("com.atproto.server.requestPasswordReset", s.handleRequestPasswordReset, s.limits.Route("requestPasswordReset"))
	r.Procedure("com.atproto.server.resetPassword", s.handleResetPassword, s.limits.Route("resetPassword"))
	r.Procedure("com.atproto.server.createAppPassword", s.handleCreateAppPassword, full, noOAuth)
	r.Query("com.atproto.server.listAppPasswords", s.handleListAppPasswords, full, noOAuth)
	r.Procedure("com.atproto.server.revokeAppPassword", s.handleRevokeAppPassword, full, noOAuth)
	r.Procedure("com.atproto.server.createInviteCodes", s.handleCreateInviteCodes, s.auth.RequireAdmin)
	r.Query("com.atproto.server.getAccountInviteCodes", s.handleGetAccountInviteCodes, full, noOAuth)

	// com.atproto.admin (handle_admin.go): HTTP Basic admin:PDS_ADMIN_PASSWORD
	admin := s.auth.RequireAdmin
	r.Query("com.atproto.admin.getAccountInfo", s.handleAdminGetAccountInfo, admin)
	r.Query("com.atproto.admin.getAccountInfos", s.handleAdminGetAccountInfos, admin)
	r.Query("com.atproto.admin.searchAccounts", s.handleAdminSearchAccounts, admin)
	r.Procedure("com.atproto.admin.updateSubjectStatus", s.handleAdminUpdateSubjectStatus, admin)
	r.Query("com.atproto.admin.getSubjectStatus", s.handleAdminGetSubjectStatus, admin)
	r.Procedure("com.atproto.admin.updateAccountHandle", s.handleAdminUpdateAccountHandle, admin)
	r.Procedure("com.atproto.admin.updateAccountEmail", s.handleAdminUpdateAccountEmail, admin)
	r.Procedure("com.atproto.admin.updateAccountPassword", s.handleAdminUpdateAccountPassword, admin)
	r.Procedure("com.atproto.admin.deleteAccount", s.handleAdminDeleteAccount, admin)
	r.Procedure("com.atproto.admin.disableAccountInvites", s.handleAdminSetAccountInvites(true), admin)
	r.Procedure("com.atproto.admin.enableAccountInvites", s.handleAdminSetAccountInvites(false), admin)
	r.Procedure("com.atproto.admin.disableInviteCodes", s.handleAdminDisableInviteCodes, admin)
	r.Query("com.atproto.admin.getInviteCodes", s.handleAdminGetInviteCodes, admin)
	r.Procedure("com.atproto.admin.sendEmail", s.handleAdminSendEmail, admin)
	// Operator account archives (pds/accounts archive.go: pds account export / import); not in the reference.
	r.Procedure("org.pdsgo.admin.exportAccount", s.handleAdminExportAccount, admin)
	r.Procedure("org.pdsgo.admin.importAccount", s.handleAdminImportAccount, admin)

	// com.atproto.repo
	r.Procedure("com.atproto.repo.createRecord", s.handleCreateRecord, std, inHandler, s.limits.Write(ratelimit.Fixed(3))) // repo: in the handlers
	r.Procedure("com.atproto.repo.putRecord", s.handlePutRecord, std, inHandler, s.limits.Write(ratelimit.Fixed(2)))
	r.Procedure("com.atproto.repo.deleteRecord", s.handleDeleteRecord, std, inHandler, s.limits.Write(ratelimit.Fixed(1)))
	r.Procedure("com.atproto.repo.applyWrites", s.handleApplyWrites, std, inHandler, s.limits.Write(ratelimit.ApplyWritesPoints))
	r.Query("com.atproto.repo.getRecord", s.handleGetRecord)
	r.Query("com.atproto.repo.listRecords", s.handleListRecords)
	r.Query("com.atproto.repo.describeRepo", s.handleDescribeRepo)
	r.Procedure("com.atproto.repo.uploadBlob", s.handleUploadBlob, std, uploadScope, s.limits.Route("uploadBlob")) // body streamed, not JSON (handle_blob.go)
	r.Query("com.atproto.repo.listMissingBlobs", s.handleListMissingBlobs, std, anyOAuth)
	r.Procedure("com.atproto.repo.importRepo", s.handleImportRepo, full, auth.Account("repo", scope.ActionManage)) // body streamed, not JSON (handle_import.go)

	// com.atproto.sync
	r.Query("com.atproto.sync.getRepo", s.handleSyncGetRepo, s.auth.OptionalAuth, s.limits.Route("getRepo"))
	r.Query("com.atproto.sync.getRecord", s.handleSyncGetRecord, s.auth.OptionalAuth)
	r.Query("com.atproto.sync.getBlocks", s.handleSyncGetBlocks, s.auth.OptionalAuth)
	r.Query("com.atproto.sync.getLatestCommit", s.handleSyncGetLatestCommit, s.auth.OptionalAuth)
	r.Query("com.atproto.sync.getRepoStatus", s.handleSyncGetRepoStatus, s.auth.OptionalAuth)
	r.Query("com.atproto.sync.listRepos", s.handleSyncListRepos)
	r.Query("com.atproto.sync.getBlob", s.handleSyncGetBlob, s.auth.OptionalAuth)
	r.Query("com.atproto.sync.listBlobs", s.handleSyncListBlobs, s.auth.OptionalAuth)
	r.Subscription("com.atproto.sync.subscribeRepos", s.firehose.Subscribe)
	// Deprecated, still served by the reference.
	r.Query("com.atproto.sync.getHead", s.handleSyncGetHead, s.auth.OptionalAuth)
	r.Query("com.atproto.sync.getCheckout", s.handleSyncGetCheckout, s.auth.OptionalAuth)
	// No signup queue here (no entryway): every account is activated, the reference's answer without one.
	r.Query("com.atproto.temp.checkSignupQueue", s.handleCheckSignupQueue, std, noOAuth)

	// com.atproto.identity
	r.Query("com.atproto.identity.resolveHandle", s.handleResolveHandle)
	r.Procedure("com.atproto.identity.updateHandle", s.handleUpdateHandle, full, auth.Identity("handle"), s.limits.Route("updateHandle"))
	r.Query("com.atproto.identity.getRecommendedDidCredentials", s.handleGetRecommendedDidCredentials, std, anyOAuth)
	r.Procedure("com.atproto.identity.requestPlcOperationSignature", s.handleRequestPlcOperationSignature, s.auth.RequireAuth(auth.FullTakendown), identityAll)
	r.Procedure("com.atproto.identity.signPlcOperation", s.handleSignPlcOperation, s.auth.RequireAuth(auth.FullTakendown), identityAll)
	r.Procedure("com.atproto.identity.submitPlcOperation", s.handleSubmitPlcOperation, std, identityAll)

	// Service auth, and the app.bsky methods served or patched here (handle_appview.go, readafterwrite.go).
	r.Query("com.atproto.server.getServiceAuth", s.handleGetServiceAuth, takendown, serviceAuthScope)
	r.Query("app.bsky.actor.getPreferences", s.handleGetPreferences, takendown, rpcHere("app.bsky.actor.getPreferences"))
	r.Procedure("app.bsky.actor.putPreferences", s.handlePutPreferences, std, rpcHere("app.bsky.actor.putPreferences"))
	r.Query("app.bsky.feed.getFeed", s.proxy.GetFeed, std, inHandler) // rpc: checked by pds/proxy, as for the next six
	r.Query("app.bsky.actor.getProfile", s.proxy.GetProfile, std, inHandler)
	r.Query("app.bsky.actor.getProfiles", s.proxy.GetProfiles, std, inHandler)
	r.Query("app.bsky.feed.getTimeline", s.proxy.GetTimeline, std, inHandler)
	r.Query("app.bsky.feed.getAuthorFeed", s.proxy.GetAuthorFeed, std, inHandler)
	r.Query("app.bsky.feed.getActorLikes", s.proxy.GetActorLikes, std, inHandler)
	r.Query("app.bsky.feed.getPostThread", s.proxy.GetPostThread, std, inHandler)
	// Reports are accepted from taken-down accounts (pds/proxy Report).
	r.Procedure("com.atproto.moderation.createReport", s.proxy.Report, takendown, inHandler)
	// Push registrations go to the service the body names (its #bsky_notif endpoint), as the reference's do.
	r.Procedure("app.bsky.notification.registerPush", s.proxy.Push, std, inHandler)
	r.Procedure("app.bsky.notification.unregisterPush", s.proxy.Push, std, inHandler)
	// Every other method goes to the service named by atproto-proxy or the namespace's default (pds/proxy).
	r.SetFallback(s.proxy.Handle)

	// The account pages (pds/accountpages): HTML, not XRPC.
	s.accountPages.Register(e)

	var paths []string
	for _, rt := range e.Routes() {
		if rt.Path != "/xrpc/:nsid" {
			paths = append(paths, rt.Path)
		}
	}
	var served []string
	for _, m := range r.Methods() {
		served = append(served, m.NSID)
	}
	s.metricsRoutes(served, paths)
	return e
}
