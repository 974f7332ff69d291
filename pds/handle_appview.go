package pds

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/labstack/echo/v4"

	"github.com/pdsgo/pds/pds/accountstore"
	"github.com/pdsgo/pds/pds/auth"
	"github.com/pdsgo/pds/xrpc"
)

// app.bsky methods the PDS serves itself: preferences (kept in account.sqlite) and getFeed (which needs a
// token for the feed generator). The reference serves them only when an AppView is configured; here they
// are always served, so preferences work on a PDS without an AppView too.

const (
	prefNamespace       = "app.bsky"
	prefPersonalDetails = "app.bsky.actor.defs#personalDetailsPref"
	prefDeclaredAge     = "app.bsky.actor.defs#declaredAgePref" // computed from personalDetailsPref, never stored
)

// fullPreferences: personal details are for full-access sessions, and for OAuth grants allowed the reference's
// made-up method <lxm>Full at the AppView (transition:generic allows it).
func (s *Server) fullPreferences(c echo.Context, v *auth.Caller) bool {
	if !v.IsOAuth() {
		return v.Scope == auth.ScopeAccess
	}
	nsid := xrpc.MethodNSID(c)
	aud, err := s.proxy.Audience(c, nsid)
	return err == nil && v.RequireRPC(nsid+"Full", aud) == nil
}

func (s *Server) handleGetPreferences(c echo.Context) error {
	v := auth.CallerOf(c)
	if s.proxy.ProxiedElsewhere(c) {
		return s.proxy.Call(c, v.DID, xrpc.MethodNSID(c))
	}
	prefs, err := s.accounts.Preferences(c.Request().Context(), v.DID, prefNamespace)
	if err != nil {
		return err
	}
	full := s.fullPreferences(c, v)
	out := []json.RawMessage{}
	var birthDate string
	for _, p := range prefs {
		if p.Name == prefPersonalDetails {
			var pd struct {
				BirthDate string `json:"birthDate"`
			}
			if json.Unmarshal(p.Value, &pd) == nil {
				birthDate = pd.BirthDate
			}
			if !full {
				continue // personal details are for full-access sessions only
			}
		}
		out = append(out, p.Value)
	}
	if birthDate != "" {
		if born, err := syntax.ParseDatetimeLenient(birthDate); err == nil {
			age := ageOn(born.Time(), time.Now())
			b, _ := json.Marshal(map[string]any{"$type": prefDeclaredAge,
				"isOverAge13": age >= 13, "isOverAge16": age >= 16, "isOverAge18": age >= 18})
			out = append(out, b)
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"preferences": out})
}

// ageOn is the age in whole years on the day now, of someone born on born (UTC dates).
func ageOn(born, now time.Time) int {
	born, now = born.UTC(), now.UTC()
	age := now.Year() - born.Year()
	if now.Month() < born.Month() || now.Month() == born.Month() && now.Day() < born.Day() {
		age--
	}
	return age
}

func (s *Server) handlePutPreferences(c echo.Context) error {
	v := auth.CallerOf(c)
	if s.proxy.ProxiedElsewhere(c) {
		return s.proxy.Call(c, v.DID, xrpc.MethodNSID(c))
	}
	var in struct {
		Preferences []json.RawMessage `json:"preferences"`
	}
	if err := xrpc.ReadJSON(c, xrpc.JSONBodyLimit, &in); err != nil {
		return err
	}
	if in.Preferences == nil {
		return xrpc.InvalidRequest("Input must have the property \"preferences\"")
	}
	full := s.fullPreferences(c, v)
	var prefs []accountstore.Preference
	var outside, forbidden []string
	for _, raw := range in.Preferences {
		var head struct {
			Type any `json:"$type"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return xrpc.InvalidRequest("Preference must be an object")
		}
		name, ok := head.Type.(string)
		if !ok || name == "" {
			return xrpc.InvalidRequest("Preference is missing a $type")
		}
		switch {
		case name != prefNamespace && !strings.HasPrefix(name, prefNamespace+"."):
			outside = append(outside, name)
		case name == prefPersonalDetails && !full:
			forbidden = append(forbidden, name)
		case name == prefDeclaredAge:
			// read-only: computed on read
		default:
			var buf bytes.Buffer
			if err := json.Compact(&buf, raw); err != nil {
				return xrpc.InvalidRequest("Preference must be an object")
			}
			prefs = append(prefs, accountstore.Preference{Name: name, Value: buf.Bytes()})
		}
	}
	if len(outside) > 0 {
		return xrpc.InvalidRequest("Some preferences are not in the %s namespace", prefNamespace)
	}
	if len(forbidden) > 0 {
		return xrpc.InvalidRequest("Do not have authorization to set preferences: %s", strings.Join(forbidden, ", "))
	}
	var keep []string
	if !full {
		keep = []string{prefPersonalDetails} // a session that may not see them may not erase them either
	}
	if err := s.accounts.PutPreferences(c.Request().Context(), v.DID, prefNamespace, prefs, keep); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}
