// Package ratelimit holds the server's rate limits: the reference PDS's limiters (per IP, per account, per
// route), the bypass key and IPs, the route middlewares that consume points and answer 429
// RateLimitExceeded, and the client-IP rule they key on (X-Forwarded-For only from trusted proxies).
//
// The counting itself is package xrpc/ratelimit's. It may not read accounts or sessions: who is calling comes
// in as a function (New's caller), and the settings from pds.Config.
package ratelimit
