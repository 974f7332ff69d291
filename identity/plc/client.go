package plc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// DefaultURL is the public PLC directory.
const DefaultURL = "https://plc.directory"

// DefaultTimeout is the HTTP timeout of a Client without HTTPClient.
const DefaultTimeout = 10 * time.Second

// maxResponse bounds response bodies read from the directory.
const maxResponse = 8 << 20

var defaultHTTPClient = &http.Client{Timeout: DefaultTimeout}

// Client talks to a PLC directory. The zero value uses DefaultURL and an
// HTTP client with DefaultTimeout.
type Client struct {
	// URL is the directory base URL, e.g. "https://plc.directory" (a
	// trailing "/" is ignored).
	URL string
	// HTTPClient, if nil, is an http.Client with DefaultTimeout. If set it
	// should have a timeout of its own.
	HTTPClient *http.Client
	// UserAgent, if set, is sent with every request.
	UserAgent string
}

// LogEntry is one entry of GET /{did}/log/audit.
type LogEntry struct {
	DID string `json:"did"`
	// Operation in wire format; see ParseOperation.
	Operation json.RawMessage `json:"operation"`
	CID       string          `json:"cid"`
	Nullified bool            `json:"nullified"`
	CreatedAt string          `json:"createdAt"`
}

// Op parses the entry's operation (an *Operation or a *Tombstone).
func (e *LogEntry) Op() (any, error) { return ParseOperation(e.Operation) }

// Error is a non-2xx answer from the directory.
type Error struct {
	StatusCode int
	// Message is the directory's {"message"} (or the raw body, truncated).
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("plc directory: HTTP %d: %s", e.StatusCode, e.Message)
}

// ErrNotFound matches (errors.Is) an *Error with status 404: DID not
// registered (or not available, e.g. tombstoned, for the document/data).
var ErrNotFound = errors.New("plc directory: not found")

// Is makes errors.Is(err, ErrNotFound) work for 404 answers.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

var plcDIDRe = regexp.MustCompile(`^did:plc:[a-z2-7]{24}$`)

// ValidDID reports whether did is syntactically a did:plc identifier.
func ValidDID(did string) bool { return plcDIDRe.MatchString(did) }

func (c *Client) base() string {
	u := c.URL
	if u == "" {
		u = DefaultURL
	}
	return strings.TrimRight(u, "/")
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return defaultHTTPClient
}

// do sends a request for /{did}{suffix}; on 2xx it returns the body.
func (c *Client) do(ctx context.Context, method, did, suffix string, body []byte) ([]byte, error) {
	if !ValidDID(did) {
		return nil, fmt.Errorf("plc: invalid did:plc %q", did)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base()+"/"+did+suffix, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("plc directory: %s %s: %w", method, suffixOrRoot(suffix), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("plc directory: read response: %w", err)
	}
	if len(data) > maxResponse {
		return nil, fmt.Errorf("plc directory: response larger than %d bytes", maxResponse)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &Error{StatusCode: resp.StatusCode, Message: errorMessage(data)}
	}
	return data, nil
}

func suffixOrRoot(s string) string {
	if s == "" {
		return "/{did}"
	}
	return "/{did}" + s
}

func errorMessage(body []byte) string {
	var m struct {
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(body, &m) == nil {
		if m.Message != "" {
			return m.Message
		}
		if m.Error != "" {
			return m.Error
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// Submit POSTs op (an *Operation, a *Tombstone, or any value whose JSON is
// a wire-format operation, e.g. json.RawMessage) to {URL}/{did}. A non-2xx
// answer is returned as *Error carrying the directory's message.
func (c *Client) Submit(ctx context.Context, did string, op any) error {
	body, err := json.Marshal(op)
	if err != nil {
		return fmt.Errorf("plc: encode operation: %w", err)
	}
	_, err = c.do(ctx, http.MethodPost, did, "", body)
	return err
}

// GetDocumentData fetches GET /{did}/data: the current state.
func (c *Client) GetDocumentData(ctx context.Context, did string) (*Data, error) {
	b, err := c.do(ctx, http.MethodGet, did, "/data", nil)
	if err != nil {
		return nil, err
	}
	var d Data
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("plc directory: decode data: %w", err)
	}
	return &d, nil
}

// ErrTombstoned is returned by GetLastOp when the last operation is a
// tombstone.
var ErrTombstoned = errors.New("plc: DID is tombstoned")

// GetLastOp fetches GET /{did}/log/last. If it is a tombstone the error is
// ErrTombstoned (use GetLastOpAny to get it).
func (c *Client) GetLastOp(ctx context.Context, did string) (*Operation, error) {
	v, err := c.GetLastOpAny(ctx, did)
	if err != nil {
		return nil, err
	}
	switch op := v.(type) {
	case *Operation:
		return op, nil
	case *Tombstone:
		return nil, ErrTombstoned
	default:
		return nil, fmt.Errorf("plc: unexpected operation %T", v)
	}
}

// GetLastOpAny fetches GET /{did}/log/last: an *Operation or a *Tombstone.
func (c *Client) GetLastOpAny(ctx context.Context, did string) (any, error) {
	b, err := c.do(ctx, http.MethodGet, did, "/log/last", nil)
	if err != nil {
		return nil, err
	}
	return ParseOperation(b)
}

// GetAuditLog fetches GET /{did}/log/audit: every operation, including
// nullified ones, oldest first.
func (c *Client) GetAuditLog(ctx context.Context, did string) ([]LogEntry, error) {
	b, err := c.do(ctx, http.MethodGet, did, "/log/audit", nil)
	if err != nil {
		return nil, err
	}
	var log []LogEntry
	if err := json.Unmarshal(b, &log); err != nil {
		return nil, fmt.Errorf("plc directory: decode audit log: %w", err)
	}
	return log, nil
}

// LastCID returns the CID of the last non-nullified operation in the audit
// log of did: the prev for the next operation.
func (c *Client) LastCID(ctx context.Context, did string) (string, error) {
	log, err := c.GetAuditLog(ctx, did)
	if err != nil {
		return "", err
	}
	for i := len(log) - 1; i >= 0; i-- {
		if !log[i].Nullified {
			return log[i].CID, nil
		}
	}
	return "", fmt.Errorf("plc: no active operation for %s", did)
}

// ResolveDocument fetches GET /{did}: the DID document (JSON).
func (c *Client) ResolveDocument(ctx context.Context, did string) (json.RawMessage, error) {
	b, err := c.do(ctx, http.MethodGet, did, "", nil)
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, errors.New("plc directory: DID document is not JSON")
	}
	return json.RawMessage(b), nil
}
