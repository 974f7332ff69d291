package pds

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/pds/blobs"
	"github.com/pdsgo/pds/pds/oauth/scope"
	"github.com/pdsgo/pds/pds/xrpcerr"
	"github.com/pdsgo/pds/repo"
	"github.com/pdsgo/pds/xrpc"
)

const maxWrites = 200

type commitMeta struct {
	CID string `json:"cid"`
	Rev string `json:"rev"`
}

func metaOf(res *repo.CommitResult) *commitMeta {
	return &commitMeta{CID: res.Commit.String(), Rev: res.Rev}
}

// parseCIDParam parses an optional CID field of a request.
func parseCIDParam(name string, v *string) (*cid.Cid, error) {
	if v == nil || *v == "" {
		return nil, nil
	}
	c, err := cid.Decode(*v)
	if err != nil {
		return nil, xrpc.InvalidRequest("%s must be a valid CID", name)
	}
	return &c, nil
}

// preparedRecord is a record ready to write: data-model checked, validated and encoded.
type preparedRecord struct {
	op     repo.WriteOp
	cid    cid.Cid
	status string
}

// prepareRecord validates one record write: collection and rkey syntax and the lexicon's key type, the data
// model, $type, and the lexicon (per validate mode).
func (s *Server) prepareRecord(action repo.Action, collection, rkey string, raw json.RawMessage, mode xrpc.ValidationMode) (*preparedRecord, error) {
	nsid, err := xrpc.ParseNSID(collection)
	if err != nil {
		return nil, xrpc.InvalidRequest("Invalid collection: %s", collection)
	}
	if rkey == "" {
		rkey = s.nextRKey()
	}
	rk, err := xrpc.ParseRecordKey(rkey)
	if err != nil {
		return nil, xrpc.InvalidRequest("Invalid record key: %s", rkey)
	}
	if mode != xrpc.ValidateSkip {
		if err := xrpc.CheckRecordKey(s.catalog, collection, rkey); err != nil {
			return nil, err
		}
	}
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, xrpc.InvalidRequest("Record is required")
	}
	raw = withType(raw, collection)
	rec, err := xrpc.ParseRecord(raw)
	if err != nil {
		return nil, err
	}
	if rec.Type != collection {
		return nil, xrpc.InvalidRequest("Invalid $type: expected %s, got %s", collection, rec.Type)
	}
	status, err := xrpc.ValidateRecord(s.catalog, collection, rec, mode)
	if err != nil {
		return nil, err
	}
	return &preparedRecord{
		op:     repo.WriteOp{Action: action, Collection: nsid, RKey: rk, Record: rec.CBOR, Blobs: blobs.RecordRefs(rec)},
		cid:    rec.CID,
		status: status,
	}, nil
}

// withType adds "$type": collection to a record object that has none, as the reference does.
func withType(raw json.RawMessage, collection string) json.RawMessage {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) < 2 || trimmed[0] != '{' {
		return raw
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &probe); err != nil {
		return raw
	}
	if _, ok := probe["$type"]; ok {
		return raw
	}
	typ, _ := json.Marshal(collection)
	out := []byte(`{"$type":` + string(typ))
	rest := bytes.TrimSpace(trimmed[1:])
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}

type createRecordInput struct {
	Repo       string          `json:"repo"`
	Collection string          `json:"collection"`
	RKey       string          `json:"rkey"`
	Validate   *bool           `json:"validate"`
	Record     json.RawMessage `json:"record"`
	SwapCommit *string         `json:"swapCommit"`
}

type writeOutput struct {
	URI              string      `json:"uri"`
	CID              string      `json:"cid"`
	Commit           *commitMeta `json:"commit,omitempty"`
	ValidationStatus string      `json:"validationStatus,omitempty"`
}

func (s *Server) handleCreateRecord(c echo.Context) error {
	ctx := c.Request().Context()
	var in createRecordInput
	if err := xrpc.ReadJSON(c, xrpc.RecordBodyLimit, &in); err != nil {
		return err
	}
	acct, err := s.accounts.Writable(ctx, in.Repo, auth.CallerDID(c))
	if err != nil {
		return err
	}
	if err := auth.CallerOf(c).RequireRepo(in.Collection, scope.ActionCreate); err != nil {
		return err
	}
	swapCommit, err := parseCIDParam("swapCommit", in.SwapCommit)
	if err != nil {
		return err
	}
	rec, err := s.prepareRecord(repo.ActionCreate, in.Collection, in.RKey, in.Record, xrpc.ModeFromBool(in.Validate))
	if err != nil {
		return err
	}
	res, err := s.writer.Commit(ctx, acct, []repo.WriteOp{rec.op}, swapCommit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, writeOutput{
		URI:              repo.RecordURI(acct.DID, in.Collection, rec.op.RKey.String()),
		CID:              rec.cid.String(),
		Commit:           metaOf(res),
		ValidationStatus: rec.status,
	})
}

type putRecordInput struct {
	Repo       string          `json:"repo"`
	Collection string          `json:"collection"`
	RKey       string          `json:"rkey"`
	Validate   *bool           `json:"validate"`
	Record     json.RawMessage `json:"record"`
	SwapRecord json.RawMessage `json:"swapRecord"` // absent, null (must not exist) or a CID
	SwapCommit *string         `json:"swapCommit"`
}

// parseSwapRecord reads swapRecord's three states: absent (no check), null (the record must not exist) or a CID.
func parseSwapRecord(raw json.RawMessage) (*repo.Swap, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if string(bytes.TrimSpace(raw)) == "null" {
		return &repo.Swap{}, nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err != nil {
		return nil, xrpc.InvalidRequest("swapRecord must be a CID string or null")
	}
	c, err := parseCIDParam("swapRecord", &str)
	if err != nil {
		return nil, err
	}
	return &repo.Swap{CID: c}, nil
}

func (s *Server) handlePutRecord(c echo.Context) error {
	ctx := c.Request().Context()
	var in putRecordInput
	if err := xrpc.ReadJSON(c, xrpc.RecordBodyLimit, &in); err != nil {
		return err
	}
	if in.RKey == "" {
		return xrpc.InvalidRequest("rkey is required")
	}
	acct, err := s.accounts.Writable(ctx, in.Repo, auth.CallerDID(c))
	if err != nil {
		return err
	}
	// putRecord creates or replaces: the reference asks for both actions whichever happens.
	for _, action := range []string{scope.ActionCreate, scope.ActionUpdate} {
		if err := auth.CallerOf(c).RequireRepo(in.Collection, action); err != nil {
			return err
		}
	}
	swapCommit, err := parseCIDParam("swapCommit", in.SwapCommit)
	if err != nil {
		return err
	}
	swapRecord, err := parseSwapRecord(in.SwapRecord)
	if err != nil {
		return err
	}
	rec, err := s.prepareRecord(repo.ActionUpdate, in.Collection, in.RKey, in.Record, xrpc.ModeFromBool(in.Validate))
	if err != nil {
		return err
	}
	rec.op.SwapRecord = swapRecord
	res, err := s.writer.Commit(ctx, acct, []repo.WriteOp{rec.op}, swapCommit)
	if err != nil {
		return err
	}
	out := writeOutput{
		URI:              repo.RecordURI(acct.DID, in.Collection, in.RKey),
		CID:              rec.cid.String(),
		ValidationStatus: rec.status,
	}
	if !res.NoChange {
		out.Commit = metaOf(res)
	}
	return c.JSON(http.StatusOK, out)
}

type deleteRecordInput struct {
	Repo       string  `json:"repo"`
	Collection string  `json:"collection"`
	RKey       string  `json:"rkey"`
	SwapRecord *string `json:"swapRecord"`
	SwapCommit *string `json:"swapCommit"`
}

func (s *Server) handleDeleteRecord(c echo.Context) error {
	ctx := c.Request().Context()
	var in deleteRecordInput
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	acct, err := s.accounts.Writable(ctx, in.Repo, auth.CallerDID(c))
	if err != nil {
		return err
	}
	if err := auth.CallerOf(c).RequireRepo(in.Collection, scope.ActionDelete); err != nil {
		return err
	}
	nsid, err := xrpc.ParseNSID(in.Collection)
	if err != nil {
		return xrpc.InvalidRequest("Invalid collection: %s", in.Collection)
	}
	rk, err := xrpc.ParseRecordKey(in.RKey)
	if err != nil {
		return xrpc.InvalidRequest("Invalid record key: %s", in.RKey)
	}
	swapCommit, err := parseCIDParam("swapCommit", in.SwapCommit)
	if err != nil {
		return err
	}
	swapRecord, err := parseCIDParam("swapRecord", in.SwapRecord)
	if err != nil {
		return err
	}
	op := repo.WriteOp{Action: repo.ActionDelete, Collection: nsid, RKey: rk}
	if swapRecord != nil {
		op.SwapRecord = &repo.Swap{CID: swapRecord}
	}
	res, err := s.writer.Commit(ctx, acct, []repo.WriteOp{op}, swapCommit)
	var xe *xrpc.Error
	if errors.As(err, &xe) && xe.Name == "RecordNotFound" && swapRecord == nil {
		// Deleting a record that does not exist is a no-op, as in the reference.
		return c.JSON(http.StatusOK, map[string]any{})
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"commit": metaOf(res)})
}

type applyWritesInput struct {
	Repo       string            `json:"repo"`
	Validate   *bool             `json:"validate"`
	Writes     []json.RawMessage `json:"writes"`
	SwapCommit *string           `json:"swapCommit"`
}

type applyWrite struct {
	Type       string          `json:"$type"`
	Collection string          `json:"collection"`
	RKey       string          `json:"rkey"`
	Value      json.RawMessage `json:"value"`
}

func (s *Server) handleApplyWrites(c echo.Context) error {
	ctx := c.Request().Context()
	var in applyWritesInput
	if err := xrpc.ReadJSON(c, xrpc.RecordBodyLimit, &in); err != nil {
		return err
	}
	if len(in.Writes) > maxWrites {
		return xrpc.InvalidRequest("Too many writes. Max: %d", maxWrites)
	}
	acct, err := s.accounts.Writable(ctx, in.Repo, auth.CallerDID(c))
	if err != nil {
		return err
	}
	swapCommit, err := parseCIDParam("swapCommit", in.SwapCommit)
	if err != nil {
		return err
	}
	mode := xrpc.ModeFromBool(in.Validate)
	caller := auth.CallerOf(c)
	ops := make([]repo.WriteOp, 0, len(in.Writes))
	results := make([]map[string]any, 0, len(in.Writes))
	for i, raw := range in.Writes {
		var w applyWrite
		if err := json.Unmarshal(raw, &w); err != nil {
			return xrpc.InvalidRequest("writes[%d] is not a valid write", i)
		}
		switch w.Type {
		case "com.atproto.repo.applyWrites#create", "com.atproto.repo.applyWrites#update":
			action, resultType := repo.ActionCreate, "com.atproto.repo.applyWrites#createResult"
			if strings.HasSuffix(w.Type, "#update") {
				if w.RKey == "" {
					return xrpc.InvalidRequest("writes[%d]: rkey is required for an update", i)
				}
				action, resultType = repo.ActionUpdate, "com.atproto.repo.applyWrites#updateResult"
			}
			scopeAction := scope.ActionCreate
			if action == repo.ActionUpdate {
				scopeAction = scope.ActionUpdate
			}
			// Nothing is committed before every write passed: a refusal here changes nothing.
			if err := caller.RequireRepo(w.Collection, scopeAction); err != nil {
				return err
			}
			rec, err := s.prepareRecord(action, w.Collection, w.RKey, w.Value, mode)
			if err != nil {
				return err
			}
			ops = append(ops, rec.op)
			result := map[string]any{
				"$type": resultType,
				"uri":   repo.RecordURI(acct.DID, w.Collection, rec.op.RKey.String()),
				"cid":   rec.cid.String(),
			}
			if rec.status != "" {
				result["validationStatus"] = rec.status
			}
			results = append(results, result)
		case "com.atproto.repo.applyWrites#delete":
			if err := caller.RequireRepo(w.Collection, scope.ActionDelete); err != nil {
				return err
			}
			nsid, err := xrpc.ParseNSID(w.Collection)
			if err != nil {
				return xrpc.InvalidRequest("writes[%d]: invalid collection: %s", i, w.Collection)
			}
			rk, err := xrpc.ParseRecordKey(w.RKey)
			if err != nil {
				return xrpc.InvalidRequest("writes[%d]: invalid record key: %s", i, w.RKey)
			}
			ops = append(ops, repo.WriteOp{Action: repo.ActionDelete, Collection: nsid, RKey: rk})
			results = append(results, map[string]any{"$type": "com.atproto.repo.applyWrites#deleteResult"})
		default:
			return xrpc.InvalidRequest("writes[%d]: unknown write type %q", i, w.Type)
		}
	}
	res, err := s.writer.Commit(ctx, acct, ops, swapCommit)
	if err != nil {
		return err
	}
	out := map[string]any{"results": results}
	if !res.NoChange {
		out["commit"] = metaOf(res)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) handleGetRecord(c echo.Context) error {
	ctx := c.Request().Context()
	acct, err := s.accounts.Readable(c.Request().Context(), xrpc.ParamString(c, "repo"), auth.CallerDID(c))
	if err != nil {
		return err
	}
	collection, rkey := xrpc.ParamString(c, "collection"), xrpc.ParamString(c, "rkey")
	uri := repo.RecordURI(acct.DID, collection, rkey)
	r, err := s.repos.Repo(ctx, acct.DID)
	if err != nil {
		return xrpcerr.Repo(err)
	}
	defer r.Release()
	recCID, data, err := r.GetRecord(ctx, collection, rkey)
	if err != nil {
		return xrpcerr.Record(err, uri)
	}
	if want := xrpc.ParamString(c, "cid"); want != "" && want != recCID.String() {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameRecordNotFound, "Could not locate record: %s", uri)
	}
	if ref, err := s.accounts.RecordTakedownRef(ctx, acct.DID, uri); err != nil {
		return err
	} else if ref != "" {
		return xrpc.NewError(http.StatusBadRequest, xrpc.NameRecordNotFound, "Could not locate record: %s", uri)
	}
	// Written as listRecords writes each record (the bytes encoding/json gives for these keys, sorted), without
	// encoding/json compacting the record's JSON once more.
	doc := make([]byte, 0, 160+2*len(data))
	doc = append(doc, `{"cid":"`...)
	doc = append(doc, recCID.String()...)
	doc = append(doc, `","uri":`...)
	doc = xrpc.AppendJSONString(doc, []byte(uri))
	doc = append(doc, `,"value":`...)
	if doc, err = xrpc.AppendRecordJSON(doc, data); err != nil {
		return err
	}
	return xrpc.WriteJSON(c, append(doc, '}'))
}

func (s *Server) handleListRecords(c echo.Context) error {
	ctx := c.Request().Context()
	acct, err := s.accounts.Readable(c.Request().Context(), xrpc.ParamString(c, "repo"), auth.CallerDID(c))
	if err != nil {
		return err
	}
	collection := xrpc.ParamString(c, "collection")
	limit := xrpc.ParamInt(c, "limit", 50)
	r, err := s.repos.Repo(ctx, acct.DID)
	if err != nil {
		return xrpcerr.Repo(err)
	}
	defer r.Release()
	recs, cursor, err := r.ListRecords(ctx, collection, limit, xrpc.ParamString(c, "cursor"), xrpc.ParamBool(c, "reverse", false))
	if err != nil {
		return err
	}
	hidden, err := s.accounts.HiddenRecords(ctx, acct.DID)
	if err != nil {
		return err
	}
	// The page is written straight into one buffer (xrpc.AppendRecordJSON), as c.JSON would write the map
	// {"cursor", "records": [{"cid", "uri", "value"}]}.
	size := 64
	for _, rec := range recs {
		size += 2*len(rec.Value) + 200
	}
	page := make([]byte, 0, size)
	page = append(page, '{')
	if cursor != "" {
		page = append(page, `"cursor":`...)
		page = xrpc.AppendJSONString(page, []byte(cursor))
		page = append(page, ',')
	}
	page = append(page, `"records":[`...)
	first := true
	for _, rec := range recs {
		uri := repo.RecordURI(acct.DID, collection, rec.RKey)
		if hidden != nil && hidden(uri) {
			continue // taken down by a moderator
		}
		if !first {
			page = append(page, ',')
		}
		first = false
		page = append(page, `{"cid":"`...)
		page = append(page, rec.CID.String()...)
		page = append(page, `","uri":`...)
		page = xrpc.AppendJSONString(page, []byte(uri))
		page = append(page, `,"value":`...)
		if page, err = xrpc.AppendRecordJSON(page, rec.Value); err != nil {
			return err
		}
		page = append(page, '}')
	}
	page = append(page, "]}"...)
	return xrpc.WriteJSON(c, page)
}

func (s *Server) handleDescribeRepo(c echo.Context) error {
	ctx := c.Request().Context()
	acct, err := s.accounts.Readable(c.Request().Context(), xrpc.ParamString(c, "repo"), auth.CallerDID(c))
	if err != nil {
		return err
	}
	r, err := s.repos.Repo(ctx, acct.DID)
	if err != nil {
		return xrpcerr.Repo(err)
	}
	defer r.Release()
	collections, err := r.Collections(ctx)
	if err != nil {
		return err
	}
	if collections == nil {
		collections = []string{}
	}
	return c.JSON(http.StatusOK, map[string]any{
		"handle":          acct.Handle,
		"did":             acct.DID,
		"didDoc":          s.accounts.DIDDocument(acct),
		"collections":     collections,
		"handleIsCorrect": s.accounts.HandleIsCorrect(ctx, acct),
	})
}
