package pds

import (
	"github.com/labstack/echo/v4"

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
	r.Procedure("com.atproto.server.createAccount", s.handleCreateAccount)
	r.Procedure("com.atproto.server.createSession", s.handleCreateSession)
	r.Query("com.atproto.server.getSession", s.handleGetSession, authTakendown)
	r.Procedure("com.atproto.server.refreshSession", s.handleRefreshSession)
	r.Procedure("com.atproto.server.deleteSession", s.handleDeleteSession)
	r.Query("com.atproto.server.checkAccountStatus", s.handleCheckAccountStatus, authTakendown)
	r.Procedure("com.atproto.server.createInviteCode", s.handleCreateInviteCode, s.requireAdmin)
	_ = authFull

	// com.atproto.repo
	r.Procedure("com.atproto.repo.createRecord", s.handleCreateRecord, auth)
	r.Procedure("com.atproto.repo.putRecord", s.handlePutRecord, auth)
	r.Procedure("com.atproto.repo.deleteRecord", s.handleDeleteRecord, auth)
	r.Procedure("com.atproto.repo.applyWrites", s.handleApplyWrites, auth)
	r.Query("com.atproto.repo.getRecord", s.handleGetRecord)
	r.Query("com.atproto.repo.listRecords", s.handleListRecords)
	r.Query("com.atproto.repo.describeRepo", s.handleDescribeRepo)

	// com.atproto.sync
	r.Query("com.atproto.sync.getRepo", s.handleSyncGetRepo, s.optionalAuth)
	r.Query("com.atproto.sync.getRecord", s.handleSyncGetRecord, s.optionalAuth)
	r.Query("com.atproto.sync.getBlocks", s.handleSyncGetBlocks, s.optionalAuth)
	r.Query("com.atproto.sync.getLatestCommit", s.handleSyncGetLatestCommit, s.optionalAuth)
	r.Query("com.atproto.sync.getRepoStatus", s.handleSyncGetRepoStatus, s.optionalAuth)
	r.Query("com.atproto.sync.listRepos", s.handleSyncListRepos)

	// com.atproto.identity
	r.Query("com.atproto.identity.resolveHandle", s.handleResolveHandle)
	return e
}
