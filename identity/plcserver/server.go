package plcserver

import (
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/ipfs/go-cid"

	"github.com/pdsgo/pds/identity/plc"
	"github.com/pdsgo/pds/identity/plcserver/plcstore"
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Options configure a Directory. The zero value is usable.
type Options struct {
	// Now is the clock (nil: time.Now); tests move it to cross the 72-hour
	// recovery window.
	Now func() time.Time
	// Version is reported by GET /_health (default "0.0.0", as the
	// reference).
	Version string
}

// Directory is an embedded PLC directory backed by a SQLite file.
type Directory struct {
	store   *plcstore.Store
	now     func() time.Time
	version string
	// mu serialises validation and append: the log an operation was
	// checked against is the log it is appended to.
	mu sync.Mutex

	srvMu sync.Mutex
	srv   *http.Server // set by StartLoopback
}

// Open opens (creating if needed) the directory database at path.
func Open(ctx context.Context, path string, opts Options) (*Directory, error) {
	st, err := plcstore.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	d := &Directory{store: st, now: opts.Now, version: opts.Version}
	if d.now == nil {
		d.now = time.Now
	}
	if d.version == "" {
		d.version = "0.0.0"
	}
	return d, nil
}

// StartLoopback serves Handler on a new listener on 127.0.0.1 (a free
// port) and returns its base URL, "http://127.0.0.1:PORT". Close stops it.
func (d *Directory) StartLoopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second}
	d.srvMu.Lock()
	if d.srv != nil {
		d.srvMu.Unlock()
		l.Close()
		return "", errors.New("plcserver: already started")
	}
	d.srv = srv
	d.srvMu.Unlock()
	go srv.Serve(l)
	return "http://" + l.Addr().String(), nil
}

// Close stops the loopback server (if started) and closes the database.
func (d *Directory) Close() error {
	d.srvMu.Lock()
	srv := d.srv
	d.srvMu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(ctx)
		cancel()
	}
	return d.store.Close()
}

// Handler serves the reference directory's HTTP API at the root:
// GET /_health, GET /export, GET /{did}, GET /{did}/data, GET /{did}/log,
// GET /{did}/log/audit, GET /{did}/log/last and POST /{did}.
func (d *Directory) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_health", d.health)
	mux.HandleFunc("GET /export", d.export)
	mux.HandleFunc("GET /{did}", d.document)
	mux.HandleFunc("GET /{did}/data", d.data)
	mux.HandleFunc("GET /{did}/log", d.log)
	mux.HandleFunc("GET /{did}/log/audit", d.audit)
	mux.HandleFunc("GET /{did}/log/last", d.last)
	mux.HandleFunc("POST /{did}", d.submit)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*") // the reference uses cors()
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"message":"Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

func internalError(w http.ResponseWriter) {
	writeError(w, http.StatusInternalServerError, "Internal Server Error")
}

func (d *Directory) health(w http.ResponseWriter, r *http.Request) {
	if err := d.store.Ping(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"version": d.version, "error": "Service Unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"version": d.version})
}

// auditEntry is the wire form of an entry of /log/audit and /export.
type auditEntry struct {
	DID       string          `json:"did"`
	Operation json.RawMessage `json:"operation"`
	CID       string          `json:"cid"`
	Nullified bool            `json:"nullified"`
	CreatedAt string          `json:"createdAt"`
}

func toAudit(e plcstore.Entry) auditEntry {
	return auditEntry{DID: e.DID, Operation: e.Operation, CID: e.CID, Nullified: e.Nullified,
		CreatedAt: e.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z")}
}

func (d *Directory) export(w http.ResponseWriter, r *http.Request) {
	count := 1000
	if s := r.URL.Query().Get("count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "Invalid count parameter")
			return
		}
		count = min(n, 1000)
	}
	var after time.Time
	if s := r.URL.Query().Get("after"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "Invalid after parameter")
			return
		}
		after = t
	}
	entries, err := d.store.Export(r.Context(), after, count)
	if err != nil {
		internalError(w)
		return
	}
	w.Header().Set("Content-Type", "application/jsonlines")
	w.WriteHeader(http.StatusOK)
	for i, e := range entries {
		if i > 0 {
			w.Write([]byte("\n"))
		}
		b, _ := json.Marshal(toAudit(e))
		w.Write(b)
	}
}

// current returns the state of did for GET /{did} and /{did}/data, or
// writes the reference's 404 answers.
func (d *Directory) current(w http.ResponseWriter, r *http.Request) (*plc.Data, bool) {
	did := r.PathValue("did")
	e, ok, err := d.store.Last(r.Context(), did)
	if err != nil {
		internalError(w)
		return nil, false
	}
	if !ok {
		writeError(w, http.StatusNotFound, "DID not registered: "+did)
		return nil, false
	}
	v, err := plc.ParseOperation(e.Operation)
	if err != nil {
		internalError(w)
		return nil, false
	}
	op, isOp := v.(*plc.Operation)
	if !isOp {
		// Tombstoned: the installed reference answers 404 with this message.
		writeError(w, http.StatusNotFound, "DID not available: "+did)
		return nil, false
	}
	return op.Data(did), true
}

func (d *Directory) data(w http.ResponseWriter, r *http.Request) {
	if data, ok := d.current(w, r); ok {
		writeJSON(w, http.StatusOK, data)
	}
}

// Document is the DID document as the current reference renders it.
type Document struct {
	Context            []string             `json:"@context"`
	ID                 string               `json:"id"`
	AlsoKnownAs        []string             `json:"alsoKnownAs"`
	VerificationMethod []VerificationMethod `json:"verificationMethod"`
	Service            []DocService         `json:"service"`
}

// VerificationMethod is an entry of Document.VerificationMethod.
type VerificationMethod struct {
	ID                 string `json:"id"`
	Type               string `json:"type"`
	Controller         string `json:"controller"`
	PublicKeyMultibase string `json:"publicKeyMultibase"`
}

// DocService is an entry of Document.Service.
type DocService struct {
	ID              string `json:"id"`
	Type            string `json:"type"`
	ServiceEndpoint string `json:"serviceEndpoint"`
}

// FormatDocument renders data as a DID document: Multikey verification
// methods with ids "{did}#{id}", services with ids "#{id}" (map keys in
// sorted order; JSON objects in the operation have no order).
func FormatDocument(data *plc.Data) Document {
	doc := Document{
		Context:            []string{"https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"},
		ID:                 data.DID,
		AlsoKnownAs:        append([]string{}, data.AlsoKnownAs...),
		VerificationMethod: []VerificationMethod{},
		Service:            []DocService{},
	}
	for _, id := range sortedKeys(data.VerificationMethods) {
		key := data.VerificationMethods[id]
		ctx := ""
		if pub, err := atcrypto.ParsePublicDIDKey(key); err == nil {
			switch pub.(type) {
			case *atcrypto.PublicKeyP256:
				ctx = "https://w3id.org/security/suites/ecdsa-2019/v1"
			case *atcrypto.PublicKeyK256:
				ctx = "https://w3id.org/security/suites/secp256k1-2019/v1"
			}
		}
		if ctx != "" && !contains(doc.Context, ctx) {
			doc.Context = append(doc.Context, ctx)
		}
		doc.VerificationMethod = append(doc.VerificationMethod, VerificationMethod{
			ID: data.DID + "#" + id, Type: "Multikey", Controller: data.DID,
			PublicKeyMultibase: strings.TrimPrefix(key, "did:key:"),
		})
	}
	for _, id := range sortedKeys(data.Services) {
		s := data.Services[id]
		doc.Service = append(doc.Service, DocService{ID: "#" + id, Type: s.Type, ServiceEndpoint: s.Endpoint})
	}
	return doc
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (d *Directory) document(w http.ResponseWriter, r *http.Request) {
	data, ok := d.current(w, r)
	if !ok {
		return
	}
	b, err := json.Marshal(FormatDocument(data))
	if err != nil {
		internalError(w)
		return
	}
	w.Header().Set("Content-Type", "application/did+ld+json; charset=utf-8")
	w.Write(b)
}

func (d *Directory) log(w http.ResponseWriter, r *http.Request) {
	did := r.PathValue("did")
	entries, err := d.store.Log(r.Context(), did, false)
	if err != nil {
		internalError(w)
		return
	}
	if len(entries) == 0 {
		writeError(w, http.StatusNotFound, "DID not registered: "+did)
		return
	}
	ops := make([]json.RawMessage, len(entries))
	for i, e := range entries {
		ops[i] = e.Operation
	}
	writeJSON(w, http.StatusOK, ops)
}

func (d *Directory) audit(w http.ResponseWriter, r *http.Request) {
	did := r.PathValue("did")
	entries, err := d.store.Log(r.Context(), did, true)
	if err != nil {
		internalError(w)
		return
	}
	if len(entries) == 0 {
		writeError(w, http.StatusNotFound, "DID not registered: "+did)
		return
	}
	out := make([]auditEntry, len(entries))
	for i, e := range entries {
		out[i] = toAudit(e)
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *Directory) last(w http.ResponseWriter, r *http.Request) {
	did := r.PathValue("did")
	e, ok, err := d.store.Last(r.Context(), did)
	if err != nil {
		internalError(w)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, "DID not registered: "+did)
		return
	}
	writeJSON(w, http.StatusOK, json.RawMessage(e.Operation))
}

func (d *Directory) submit(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "request aborted")
		return
	}
	if len(body) > MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "request entity too large")
		return
	}
	// Like express.json(): a body that is not application/json is not
	// parsed, and the operation is then the empty object.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		body = []byte("{}")
	} else if !json.Valid(body) {
		writeError(w, http.StatusBadRequest, "Unexpected token in JSON")
		return
	}
	if err := d.Submit(r.Context(), r.PathValue("did"), body); err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Status: http.StatusInternalServerError, Message: "Internal Server Error"}
		}
		writeError(w, e.Status, e.Message)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("OK"))
}

// Error is the refusal of an operation by Submit: the HTTP status and
// message the directory answers with.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("plc directory: HTTP %d: %s", e.Status, e.Message) }

// Submit validates the wire-format operation body for did and appends it to
// the log. A refusal is an *Error with the reference's status and message;
// other errors are the database's.
func (d *Directory) Submit(ctx context.Context, did string, body []byte) error {
	s, oerr := decodeOp(body)
	if oerr != nil {
		return &Error{oerr.status, oerr.msg}
	}
	c, err := cidOf(s)
	if err != nil {
		return &Error{http.StatusBadRequest, "Not a valid operation"}
	}
	wire, err := json.Marshal(s.value())
	if err != nil {
		return err
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	entries, err := d.store.Log(ctx, did, false)
	if err != nil {
		return err
	}
	log := make([]logOp, len(entries))
	for i, e := range entries {
		l := logOp{entry: e}
		if l.cid, err = cid.Decode(e.CID); err != nil {
			return fmt.Errorf("plcserver: stored CID %q: %w", e.CID, err)
		}
		v, err := plc.ParseOperation(e.Operation)
		if err != nil {
			return fmt.Errorf("plcserver: stored operation %s: %w", e.CID, err)
		}
		l.op, _ = v.(*plc.Operation)
		log[i] = l
	}
	now := d.now()
	nullify, oerr := nextOp(did, log, s, now)
	if oerr != nil {
		return &Error{oerr.status, oerr.msg}
	}
	for _, e := range entries {
		if e.CID == c.String() {
			return &Error{http.StatusConflict, "Operation already in the log"}
		}
	}
	return d.store.Append(ctx, plcstore.Entry{DID: did, CID: c.String(), Operation: wire, CreatedAt: now.UTC().Truncate(time.Millisecond)}, nullify)
}

func cidOf(s submitted) (cid.Cid, error) {
	if s.op != nil {
		return s.op.CID()
	}
	return s.ts.CID()
}
