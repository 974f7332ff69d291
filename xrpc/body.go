package xrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/bluesky-social/indigo/atproto/lexicon"
	"github.com/labstack/echo/v4"
)

const (
	// JSONBodyLimit is the reference PDS's default JSON body limit (150 KB).
	JSONBodyLimit = 150 * 1024
	// RecordBodyLimit is its limit for createRecord, putRecord, applyWrites.
	RecordBodyLimit = 1_000_000
)

// ReadJSON reads a JSON request body (see ReadRawJSON) and decodes it into v.
func ReadJSON(c echo.Context, limit int64, v any) error {
	raw, err := ReadRawJSON(c, limit)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return InvalidRequest("Invalid JSON body: wrong type for field %q", te.Field)
		}
		return InvalidRequest("Invalid JSON body")
	}
	return nil
}

// ReadRawJSON reads and checks a JSON request body and returns its bytes:
//   - Content-Type must be application/json (400 otherwise);
//   - at most limit bytes (413 PayloadTooLarge, also when Content-Length
//     announces more);
//   - valid UTF-8, a single JSON object, no trailing data, no duplicate keys,
//     integer-only numbers within ±(2^53-1) (the AT data model);
//   - when the Router dispatched to a procedure whose lexicon input is a JSON
//     object schema, the body is validated against it.
//
// Errors are *Error and never quote the body.
func ReadRawJSON(c echo.Context, limit int64) ([]byte, error) {
	req := c.Request()
	if err := checkJSONContentType(req); err != nil {
		return nil, err
	}
	if req.ContentLength > limit {
		return nil, PayloadTooLarge("Request entity too large")
	}
	if req.Body == nil {
		return nil, InvalidRequest("Request body is required")
	}
	raw, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, PayloadTooLarge("Request entity too large")
		}
		return nil, InvalidRequest("Could not read request body")
	}
	if int64(len(raw)) > limit {
		return nil, PayloadTooLarge("Request entity too large")
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return nil, InvalidRequest("Request body is required")
	}
	if err := checkJSON(raw, maxBodyDepth); err != nil {
		return nil, bodyError(err)
	}
	if in, ok := c.Get(ctxInput).(*inputSchema); ok && in != nil {
		withDefaults, verr := in.validate(raw)
		if verr != nil {
			return nil, verr
		}
		raw = withDefaults
	}
	return raw, nil
}

func bodyError(err error) *Error {
	switch {
	case errors.Is(err, errSyntax), errors.Is(err, errTrailing):
		return InvalidRequest("Invalid JSON body")
	case errors.Is(err, errNotObject):
		return InvalidRequest("Request body must be a JSON object")
	}
	return InvalidRequest("Invalid JSON body: %s", err.Error())
}

func checkJSONContentType(req *http.Request) *Error {
	ct := req.Header.Get("Content-Type")
	if ct == "" {
		return InvalidRequest("Request encoding (Content-Type) required but not provided")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return InvalidRequest("Wrong request encoding (Content-Type): expected application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return InvalidRequest("Wrong request encoding (Content-Type): charset must be utf-8")
	}
	return nil
}

// inputSchema validates a procedure's JSON input against its lexicon.
//
// indigo's lexicon package validates generic objects only through
// ValidateRecord (validateObject is unexported). So the input object schema
// is wrapped as a synthetic record type in a one-entry catalog layered over
// the real one, and the body is validated as that "record": nested refs and
// unions resolve through the real catalog, so the whole body is checked.
type inputSchema struct {
	cat    lexicon.Catalog
	obj    lexicon.SchemaObject
	method string
}

const syntheticInputRef = "pds.internal.xrpcInput"

func newInputSchema(cat lexicon.Catalog, nsid string, body *lexicon.SchemaBody) *inputSchema {
	if body == nil || body.Schema == nil || body.Encoding != "application/json" {
		return nil
	}
	var obj lexicon.SchemaObject
	switch d := body.Schema.Inner.(type) {
	case lexicon.SchemaObject:
		obj = d
	case lexicon.SchemaRef:
		// A ref to an object def; the resolved full name is unexported, so
		// qualify a local "#def" ref with the method's NSID.
		ref := d.Ref
		if strings.HasPrefix(ref, "#") {
			ref = nsid + ref
		}
		s, err := cat.Resolve(ref)
		if err != nil {
			return nil
		}
		o, ok := s.Def.(lexicon.SchemaObject)
		if !ok {
			return nil
		}
		obj = o
	default:
		return nil // unions: not validated
	}
	return &inputSchema{cat: cat, obj: obj, method: nsid}
}

type overlayCatalog struct {
	base lexicon.Catalog
	rec  *lexicon.Schema
}

func (o overlayCatalog) Resolve(ref string) (*lexicon.Schema, error) {
	if ref == syntheticInputRef || ref == syntheticInputRef+"#main" {
		return o.rec, nil
	}
	return o.base.Resolve(ref)
}

// validate checks a body against the input schema and returns it with the schema's defaults for absent
// top-level properties added, as the reference's lexicon validator does (createInviteCodes without codeCount
// is one code each): the handler reads what the lexicon means.
func (in *inputSchema) validate(raw []byte) ([]byte, *Error) {
	data, err := atdata.UnmarshalJSON(raw)
	if err != nil {
		return nil, InvalidRequest("Invalid input: %s", err.Error())
	}
	raw, data = in.applyDefaults(raw, data)
	if err := in.check(data); err != nil {
		return nil, err
	}
	return raw, nil
}

// applyDefaults adds the defaults of absent top-level properties to data and, spliced in after the opening
// brace, to raw (the client's bytes are otherwise kept as sent).
func (in *inputSchema) applyDefaults(raw []byte, data map[string]any) ([]byte, map[string]any) {
	var add []byte
	for _, k := range slices.Sorted(maps.Keys(in.obj.Properties)) {
		if _, ok := data[k]; ok {
			continue
		}
		var def any
		switch p := in.obj.Properties[k].Inner.(type) {
		case lexicon.SchemaInteger:
			if p.Default != nil {
				def = int64(*p.Default)
			}
		case lexicon.SchemaBoolean:
			if p.Default != nil {
				def = *p.Default
			}
		case lexicon.SchemaString:
			if p.Default != nil {
				def = *p.Default
			}
		}
		if def == nil {
			continue
		}
		kv, _ := json.Marshal(k)
		v, _ := json.Marshal(def)
		add = append(append(append(append(add, kv...), ':'), v...), ',')
		data[k] = def
	}
	if add == nil {
		return raw, data
	}
	open := bytes.IndexByte(raw, '{') + 1 // checkJSON made sure the body is an object
	if bytes.HasPrefix(bytes.TrimSpace(raw[open:]), []byte("}")) {
		add = add[:len(add)-1] // empty object: no comma before the closing brace
	}
	out := make([]byte, 0, len(raw)+len(add))
	out = append(append(append(out, raw[:open]...), add...), raw[open:]...)
	return out, data
}

func (in *inputSchema) check(data map[string]any) *Error {
	for _, k := range in.obj.Required {
		// reference-style message for the most common mistake
		if _, ok := data[k]; !ok {
			return InvalidRequest("Input must have the property %q", k)
		}
	}
	data["$type"] = syntheticInputRef
	cat := overlayCatalog{base: in.cat, rec: &lexicon.Schema{
		ID:  syntheticInputRef + "#main",
		Def: lexicon.SchemaRecord{Type: "record", Key: "any", Record: in.obj},
	}}
	err := lexicon.ValidateRecord(cat, data, syntheticInputRef, 0)
	delete(data, "$type")
	if err != nil {
		return InvalidRequest("Invalid input: %s", err.Error())
	}
	return nil
}
