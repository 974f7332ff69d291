package pds

import (
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/ratelimit"
	"github.com/pdsgo/pds/xrpc"
)

// routes registers every route, in one place.
func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = xrpc.ErrorHandler(s.log)
	e.Use(recoverMiddleware(s.log))
	e.Use(corsMiddleware)
	e.IPExtractor = ratelimit.IPExtractor(s.cfg.TrustedProxies) // X-Forwarded-For only from trusted proxies
	e.Use(s.limits.Global)                                      // 3000 XRPC requests / 5 min per IP (pds/ratelimit)

	e.GET("/", s.handleRoot)
	e.GET("/robots.txt", s.handleRobots)
	e.GET("/xrpc/_health", s.handleHealth)
	e.GET("/.well-known/atproto-did", s.handleWellKnownDID)

	r := xrpc.NewRouter(e, s.catalog)
	auth := s.requireAuth(authStandard)
	authFull := s.requireAuth(authFull)
	authTakendown := s.requireAuth(authTakendown)

	// com.atproto.server
	r.Query("com.atproto.server.describeServer", s.handleDescribeServer)
	r.Procedure("com.atproto.server.createAccount", s.handleCreateAccount, s.limits.Route("createAccount"))
	r.Procedure("com.atproto.server.createSession", s.handleCreateSession, s.limits.Route("createSession"))
	r.Query("com.atproto.server.getSession", s.handleGetSession, authTakendown)
	r.Procedure("com.atproto.server.refreshSession", s.handleRefreshSession)
	r.Procedure("com.atproto.server.deleteSession", s.handleDeleteSession)
	r.Query("com.atproto.server.checkAccountStatus", s.handleCheckAccountStatus, authTakendown)
	r.Procedure("com.atproto.server.createInviteCode", s.handleCreateInviteCode, s.requireAdmin)
	r.Procedure("com.atproto.server.activateAccount", s.handleActivateAccount, authFull)
	r.Procedure("com.atproto.server.deactivateAccount", s.handleDeactivateAccount, s.requireAuth(authFullTakendown))
	r.Procedure("com.atproto.server.requestAccountDelete", s.handleRequestAccountDelete, authFull, s.limits.Route("requestAccountDelete"))
	r.Procedure("com.atproto.server.deleteAccount", s.handleDeleteAccount, s.limits.Route("deleteAccount"))
	r.Procedure("com.atproto.server.requestEmailConfirmation", s.handleRequestEmailConfirmation, authFull, s.limits.Route("requestEmailConfirmation"))
	r.Procedure("com.atproto.server.confirmEmail", s.handleConfirmEmail, authFull)
	r.Procedure("com.atproto.server.requestEmailUpdate", s.handleRequestEmailUpdate, authFull, s.limits.Route("requestEmailUpdate"))
	r.Procedure("com.atproto.server.updateEmail", s.handleUpdateEmail, authFull)
	r.Procedure("com.atproto.server.requestPasswordReset", s.handleRequestPasswordReset, s.limits.Route("requestPasswordReset"))
	r.Procedure("com.atproto.server.resetPassword", s.handleResetPassword, s.limits.Route("resetPassword"))
	r.Procedure("com.atproto.server.createAppPassword", s.handleCreateAppPassword, authFull)
	r.Query("com.atproto.server.listAppPasswords", s.handleListAppPasswords, authFull)
	r.Procedure("com.atproto.server.revokeAppPassword", s.handleRevokeAppPassword, authFull)
	r.Procedure("com.atproto.server.createInviteCodes", s.handleCreateInviteCodes, s.requireAdmin)
	r.Query("com.atproto.server.getAccountInviteCodes", s.handleGetAccountInviteCodes, authFull)

	// com.atproto.admin (handle_admin.go): HTTP Basic admin:PDS_ADMIN_PASSWORD
	admin := s.requireAdmin
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
	// Operator account archives (account_archive.go: pds account export / import); not in the reference.
	r.Procedure("org.pdsgo.admin.exportAccount", s.handleAdminExportAccount, admin)
	r.Procedure("org.pdsgo.admin.importAccount", s.handleAdminImportAccount, admin)

	// com.atproto.repo
	r.Procedure("com.atproto.repo.createRecord", s.handleCreateRecord, auth, s.limits.Write(ratelimit.Fixed(3)))
	r.Procedure("com.atproto.repo.putRecord", s.handlePutRecord, auth, s.limits.Write(ratelimit.Fixed(2)))
	r.Procedure("com.atproto.repo.deleteRecord", s.handleDeleteRecord, auth, s.limits.Write(ratelimit.Fixed(1)))
	r.Procedure("com.atproto.repo.applyWrites", s.handleApplyWrites, auth, s.limits.Write(ratelimit.ApplyWritesPoints))
	r.Query("com.atproto.repo.getRecord", s.handleGetRecord)
	r.Query("com.atproto.repo.listRecords", s.handleListRecords)
	r.Query("com.atproto.repo.describeRepo", s.handleDescribeRepo)
	r.Procedure("com.atproto.repo.uploadBlob", s.handleUploadBlob, auth, s.limits.Route("uploadBlob")) // body streamed, not JSON (handle_blob.go)
	r.Query("com.atproto.repo.listMissingBlobs", s.handleListMissingBlobs, auth)
	r.Procedure("com.atproto.repo.importRepo", s.handleImportRepo, authFull) // body streamed, not JSON (handle_import.go)

	// com.atproto.sync
	r.Query("com.atproto.sync.getRepo", s.handleSyncGetRepo, s.optionalAuth, s.limits.Route("getRepo"))
	r.Query("com.atproto.sync.getRecord", s.handleSyncGetRecord, s.optionalAuth)
	r.Query("com.atproto.sync.getBlocks", s.handleSyncGetBlocks, s.optionalAuth)
	r.Query("com.atproto.sync.getLatestCommit", s.handleSyncGetLatestCommit, s.optionalAuth)
	r.Query("com.atproto.sync.getRepoStatus", s.handleSyncGetRepoStatus, s.optionalAuth)
	r.Query("com.atproto.sync.listRepos", s.handleSyncListRepos)
	r.Query("com.atproto.sync.getBlob", s.handleSyncGetBlob, s.optionalAuth)
	r.Query("com.atproto.sync.listBlobs", s.handleSyncListBlobs, s.optionalAuth)
	r.Subscription("com.atproto.sync.subscribeRepos", s.firehose.Subscribe)

	// com.atproto.identity
	r.Query("com.atproto.identity.resolveHandle", s.handleResolveHandle)
	r.Procedure("com.atproto.identity.updateHandle", s.handleUpdateHandle, authFull, s.limits.Route("updateHandle"))
	r.Query("com.atproto.identity.getRecommendedDidCredentials", s.handleGetRecommendedDidCredentials, auth)
	r.Procedure("com.atproto.identity.requestPlcOperationSignature", s.handleRequestPlcOperationSignature, s.requireAuth(authFullTakendown))
	r.Procedure("com.atproto.identity.signPlcOperation", s.handleSignPlcOperation, s.requireAuth(authFullTakendown))
	r.Procedure("com.atproto.identity.submitPlcOperation", s.handleSubmitPlcOperation, auth)

	// Service auth, and the app.bsky methods served or patched here (handle_appview.go, pds/proxy).
	r.Query("com.atproto.server.getServiceAuth", s.handleGetServiceAuth, authTakendown)
	r.Query("app.bsky.actor.getPreferences", s.handleGetPreferences, authTakendown)
	r.Procedure("app.bsky.actor.putPreferences", s.handlePutPreferences, auth)
	r.Query("app.bsky.feed.getFeed", s.proxy.GetFeed, auth)
	r.Query("app.bsky.actor.getProfile", s.proxy.GetProfile, auth)
	r.Query("app.bsky.actor.getProfiles", s.proxy.GetProfiles, auth)
	r.Query("app.bsky.feed.getTimeline", s.proxy.GetTimeline, auth)
	r.Query("app.bsky.feed.getAuthorFeed", s.proxy.GetAuthorFeed, auth)
	r.Query("app.bsky.feed.getActorLikes", s.proxy.GetActorLikes, auth)
	r.Query("app.bsky.feed.getPostThread", s.proxy.GetPostThread, auth)
	// Every other method goes to the service named by atproto-proxy or the namespace's default (pds/proxy).
	r.SetFallback(s.proxy.Handle)
	return e
}
