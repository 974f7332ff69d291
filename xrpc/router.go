package xrpc

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/bluesky-social/indigo/atproto/lexicon"
	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"
)

// Context keys set by the Router before a handler runs.
const (
	ctxMethod = "xrpc.method" // string: the NSID from the path
	ctxParams = "xrpc.params" // map[string]any: validated query parameters
	ctxInput  = "xrpc.input"  // *inputSchema: lexicon input body schema
)

// Router is the XRPC method registry. It owns the single echo route
// /xrpc/:nsid and dispatches by NSID itself, so that verb mismatches and
// unknown methods get XRPC answers instead of echo's 404/405.
type Router struct {
	cat lexicon.Catalog

	mu       sync.RWMutex
	methods  map[string]*method
	fallback echo.HandlerFunc
}

type method struct {
	nsid      string
	procedure bool
	params    *lexicon.SchemaParams
	input     *inputSchema
	handler   echo.HandlerFunc // with middleware applied
	mw        []echo.MiddlewareFunc
}

// MethodInfo is one registered method, as the route table declared it.
type MethodInfo struct {
	NSID       string
	Procedure  bool
	Middleware []echo.MiddlewareFunc // outermost first
}

// Methods lists the registered methods (for the route table's guard tests).
func (r *Router) Methods() []MethodInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]MethodInfo, 0, len(r.methods))
	for _, m := range r.methods {
		out = append(out, MethodInfo{NSID: m.nsid, Procedure: m.procedure, Middleware: m.mw})
	}
	return out
}

// NewRouter registers /xrpc/:nsid on e. cat may be nil (no lexicon
// validation at all).
func NewRouter(e *echo.Echo, cat lexicon.Catalog) *Router {
	r := &Router{cat: cat, methods: map[string]*method{}, fallback: notImplemented}
	e.Any("/xrpc/:nsid", r.dispatch)
	return r
}

func notImplemented(c echo.Context) error {
	return MethodNotImplemented("Method Not Implemented")
}

// Query registers a GET (and HEAD) method. Middleware runs after parameter
// validation, outermost first.
func (r *Router) Query(nsid string, h echo.HandlerFunc, mw ...echo.MiddlewareFunc) {
	r.register(nsid, false, h, mw)
}

// Procedure registers a POST method.
func (r *Router) Procedure(nsid string, h echo.HandlerFunc, mw ...echo.MiddlewareFunc) {
	r.register(nsid, true, h, mw)
}

// Subscription registers an event-stream method: a GET that the handler upgrades to a websocket. Parameters
// are validated before the upgrade, so bad ones get a plain XRPC error response.
func (r *Router) Subscription(nsid string, h echo.HandlerFunc, mw ...echo.MiddlewareFunc) {
	r.register(nsid, false, h, mw)
}

// SetFallback sets the handler for /xrpc/<nsid> when no method is registered
// for a syntactically valid NSID (any HTTP verb). MethodNSID(c) gives the
// NSID. Default: 501 MethodNotImplemented.
func (r *Router) SetFallback(h echo.HandlerFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h == nil {
		h = notImplemented
	}
	r.fallback = h
}

// Registered reports whether nsid has a handler.
func (r *Router) Registered(nsid string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.methods[nsid]
	return ok
}

// register panics on programming errors (bad NSID, duplicate, verb not
// matching the lexicon): they must fail at startup, not per request.
func (r *Router) register(nsid string, procedure bool, h echo.HandlerFunc, mw []echo.MiddlewareFunc) {
	if _, err := ParseNSID(nsid); err != nil {
		panic(fmt.Sprintf("xrpc: invalid method NSID %q: %v", nsid, err))
	}
	m := &method{nsid: nsid, procedure: procedure, mw: mw}
	if r.cat != nil {
		if s, err := r.cat.Resolve(nsid); err == nil {
			switch d := s.Def.(type) {
			case lexicon.SchemaQuery:
				if procedure {
					panic(fmt.Sprintf("xrpc: %s is a query in its lexicon, registered as procedure", nsid))
				}
				m.params = d.Parameters
			case lexicon.SchemaSubscription:
				if procedure {
					panic(fmt.Sprintf("xrpc: %s is a subscription in its lexicon, registered as procedure", nsid))
				}
				m.params = d.Parameters
			case lexicon.SchemaProcedure:
				if !procedure {
					panic(fmt.Sprintf("xrpc: %s is a procedure in its lexicon, registered as query", nsid))
				}
				m.params = d.Parameters
				m.input = newInputSchema(r.cat, nsid, d.Input)
			default:
				panic(fmt.Sprintf("xrpc: %s is not a method in its lexicon", nsid))
			}
		}
	}
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	m.handler = h
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.methods[nsid]; dup {
		panic(fmt.Sprintf("xrpc: method %s registered twice", nsid))
	}
	r.methods[nsid] = m
}

func (r *Router) dispatch(c echo.Context) error {
	nsid := c.Param("nsid")
	if _, err := ParseNSID(nsid); err != nil {
		return InvalidRequest("Invalid XRPC method name: not an NSID")
	}
	c.Set(ctxMethod, nsid)
	r.mu.RLock()
	m, ok := r.methods[nsid]
	fb := r.fallback
	r.mu.RUnlock()
	if !ok {
		return fb(c)
	}
	verb := c.Request().Method
	if m.procedure {
		if verb != http.MethodPost {
			return InvalidRequest("Incorrect HTTP method")
		}
	} else if verb != http.MethodGet && verb != http.MethodHead {
		return InvalidRequest("Incorrect HTTP method")
	}
	params, err := validateParams(m.params, c.QueryParams())
	if err != nil {
		return err
	}
	c.Set(ctxParams, params)
	if m.input != nil {
		c.Set(ctxInput, m.input)
	}
	return m.handler(c)
}

// MethodNSID is the NSID of the XRPC method being served ("" outside /xrpc/).
func MethodNSID(c echo.Context) string {
	s, _ := c.Get(ctxMethod).(string)
	return s
}

func validatedParams(c echo.Context) (map[string]any, bool) {
	p, ok := c.Get(ctxParams).(map[string]any)
	return p, ok
}

// ParamString is a validated string parameter ("" when absent).
func ParamString(c echo.Context, name string) string {
	if p, ok := validatedParams(c); ok {
		if s, ok := p[name].(string); ok {
			return s
		}
		if _, known := p[name]; known {
			return fmt.Sprint(p[name])
		}
	}
	return c.QueryParam(name)
}

// ParamInt is a validated integer parameter; the lexicon default applies
// when absent, then def.
func ParamInt(c echo.Context, name string, def int) int {
	if p, ok := validatedParams(c); ok {
		if v, ok := p[name].(int64); ok {
			return int(v)
		}
	}
	if v, err := strconv.ParseInt(c.QueryParam(name), 10, 64); err == nil {
		return int(v)
	}
	return def
}

// ParamBool is a validated boolean parameter; the lexicon default applies
// when absent, then def.
func ParamBool(c echo.Context, name string, def bool) bool {
	if p, ok := validatedParams(c); ok {
		if v, ok := p[name].(bool); ok {
			return v
		}
	}
	switch c.QueryParam(name) {
	case "true":
		return true
	case "false":
		return false
	}
	return def
}

// ParamStrings is a validated array parameter (?a=x&a=y), nil when absent.
func ParamStrings(c echo.Context, name string) []string {
	if p, ok := validatedParams(c); ok {
		switch v := p[name].(type) {
		case []string:
			return v
		case []any:
			out := make([]string, len(v))
			for i, x := range v {
				out[i] = fmt.Sprint(x)
			}
			return out
		case string:
			return []string{v}
		}
	}
	return c.QueryParams()[name]
}

// ParamPresent reports whether the client sent the parameter.
func ParamPresent(c echo.Context, name string) bool {
	_, ok := c.QueryParams()[name]
	return ok
}

// validateParams checks query parameters against the lexicon `parameters`
// and returns them typed: string, int64, bool, or for arrays []string,
// []any (of int64/bool). Parameters the schema does not declare are left
// out (handlers can still read them raw). Lexicon defaults are filled in.
func validateParams(s *lexicon.SchemaParams, q map[string][]string) (map[string]any, error) {
	out := map[string]any{}
	if s == nil {
		return out, nil
	}
	for _, k := range s.Required {
		if vs := q[k]; len(vs) == 0 {
			return nil, InvalidRequest("Params must have the property %q", k)
		}
	}
	for name, def := range s.Properties {
		vs, present := q[name]
		if !present || len(vs) == 0 {
			if d := paramDefault(def.Inner); d != nil {
				out[name] = d
			}
			continue
		}
		switch d := def.Inner.(type) {
		case lexicon.SchemaArray:
			if d.MaxLength != nil && len(vs) > *d.MaxLength {
				return nil, InvalidRequest("%s must not have more than %d elements", name, *d.MaxLength)
			}
			if d.MinLength != nil && len(vs) < *d.MinLength {
				return nil, InvalidRequest("%s must not have fewer than %d elements", name, *d.MinLength)
			}
			if _, isStr := d.Items.Inner.(lexicon.SchemaString); isStr {
				arr := make([]string, len(vs))
				for i, v := range vs {
					if _, err := parseParam(name, i, d.Items.Inner, v); err != nil {
						return nil, err
					}
					arr[i] = v
				}
				out[name] = arr
				continue
			}
			arr := make([]any, len(vs))
			for i, v := range vs {
				x, err := parseParam(name, i, d.Items.Inner, v)
				if err != nil {
					return nil, err
				}
				arr[i] = x
			}
			out[name] = arr
		default:
			x, err := parseParam(name, -1, def.Inner, vs[0])
			if err != nil {
				return nil, err
			}
			out[name] = x
		}
	}
	return out, nil
}

func paramDefault(def any) any {
	switch d := def.(type) {
	case lexicon.SchemaInteger:
		if d.Default != nil {
			return int64(*d.Default)
		}
	case lexicon.SchemaBoolean:
		if d.Default != nil {
			return *d.Default
		}
	case lexicon.SchemaString:
		if d.Default != nil {
			return *d.Default
		}
	}
	return nil
}

// parseParam checks one parameter value; idx is its position in an array
// parameter, or -1.
func parseParam(name string, idx int, def any, v string) (any, error) {
	switch d := def.(type) {
	case lexicon.SchemaInteger:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, InvalidRequest("%s must be an integer", paramPath(name, idx))
		}
		if d.Const != nil && n != int64(*d.Const) {
			return nil, InvalidRequest("%s must be %d", paramPath(name, idx), *d.Const)
		}
		if d.Minimum != nil && n < int64(*d.Minimum) {
			return nil, InvalidRequest("%s can not be less than %d", paramPath(name, idx), *d.Minimum)
		}
		if d.Maximum != nil && n > int64(*d.Maximum) {
			return nil, InvalidRequest("%s can not be greater than %d", paramPath(name, idx), *d.Maximum)
		}
		if len(d.Enum) > 0 && !containsInt(d.Enum, n) {
			return nil, InvalidRequest("%s must be one of %v", paramPath(name, idx), d.Enum)
		}
		return n, nil
	case lexicon.SchemaBoolean:
		var b bool
		switch v {
		case "true":
			b = true
		case "false":
			b = false
		default:
			return nil, InvalidRequest("%s must be a boolean", paramPath(name, idx))
		}
		if d.Const != nil && b != *d.Const {
			return nil, InvalidRequest("%s must be %v", paramPath(name, idx), *d.Const)
		}
		return b, nil
	case lexicon.SchemaString:
		if fastStringValid(&d, v) {
			return v, nil
		}
		// Reuse indigo's string rules (lengths, graphemes, enum, const,
		// formats) and only rewrite its message into a parameter message.
		if err := d.Validate(v, 0); err != nil {
			if !(d.Format != nil && *d.Format == "language" && privateUseLang.MatchString(v) && validWithoutFormat(d, v)) {
				return nil, stringParamError(paramPath(name, idx), d, v)
			}
		}
		return v, nil
	}
	// Lexicons only allow boolean/integer/string (or arrays of them) here.
	return v, nil
}

// paramPath names a parameter in errors: "name", or "name/idx" for an array
// item (built only when there is an error to report).
func paramPath(name string, idx int) string {
	if idx < 0 {
		return name
	}
	return name + "/" + strconv.Itoa(idx)
}

func stringParamError(path string, d lexicon.SchemaString, v string) *Error {
	if d.Const != nil && v != *d.Const {
		return InvalidRequest("%s must be %q", path, *d.Const)
	}
	if d.MaxLength != nil && len(v) > *d.MaxLength {
		return InvalidRequest("%s must not be longer than %d characters", path, *d.MaxLength)
	}
	if d.MinLength != nil && len(v) < *d.MinLength {
		return InvalidRequest("%s must not be shorter than %d characters", path, *d.MinLength)
	}
	if len(d.Enum) > 0 {
		return InvalidRequest("%s must be one of (%s)", path, strings.Join(d.Enum, "|"))
	}
	if d.Format != nil {
		return InvalidRequest("%s must be a valid %s", path, formatName(*d.Format))
	}
	if d.MinGraphemes != nil || d.MaxGraphemes != nil {
		return InvalidRequest("%s has an invalid length (graphemes)", path)
	}
	return InvalidRequest("%s is invalid", path)
}

// privateUseLang is the BCP 47 private-use form ("x-whatever"), valid per the
// interop vectors but missing from indigo's language regex.
var privateUseLang = regexp.MustCompile(`^[xX](-[a-zA-Z0-9]{1,8})+$`)

func validWithoutFormat(d lexicon.SchemaString, v string) bool {
	d.Format = nil
	return d.Validate(v, 0) == nil
}

func formatName(f string) string {
	switch f {
	case "at-identifier":
		return "did or handle"
	case "at-uri":
		return "at-uri"
	case "datetime":
		return "datetime (RFC 3339)"
	case "language":
		return "language tag (BCP 47)"
	}
	return f
}

func containsInt(xs []int, n int64) bool {
	for _, x := range xs {
		if int64(x) == n {
			return true
		}
	}
	return false
}

// ParamDID is a DID parameter, validated by the method's lexicon (format "did"); "" when absent.
func ParamDID(c echo.Context, name string) syntax.DID { return syntax.DID(ParamString(c, name)) }
