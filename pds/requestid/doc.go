// Package requestid owns request IDs: making them, deciding whether an inbound X-Request-Id is acceptable,
// carrying the ID in a request's context, and the slog handler that adds it to every log line logged with that
// context (attribute request_id). The HTTP middleware that sets the response header lives with the route table
// (package pds); this package knows nothing of HTTP servers or routes.
package requestid
