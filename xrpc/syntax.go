package xrpc

import (
	"slices"
	"strings"

	"github.com/bluesky-social/indigo/atproto/lexicon"
	"github.com/bluesky-social/indigo/atproto/syntax"
)

// Hand-written checks for the atproto string formats, used as a fast path in
// front of indigo's regexp-based ones (regexps were ~5% of the server's CPU
// under getRecord load). Each isX mirrors indigo's ParseX (the ground truth,
// pinned in go.mod) exactly, except isDatetime, which accepts a strict subset
// (a false means "ask indigo"). Callers only ever skip indigo on true, so no
// decision changes; errors and their messages stay indigo's. The
// differential tests (syntax_test.go) hold them to that over the interop
// vectors and by fuzzing.

// Byte classes, one bit each, in a table indexed by byte.
const (
	cAlpha   = 1 << iota // a-z A-Z
	cDigit               // 0-9
	cLower               // a-z
	cTIDRest             // 2-7 a-z (base32-sortable)
	cTIDHead             // 2-7 a-j (first TID char: top bit 0)
	cRKey                // a-z A-Z 0-9 _ ~ . : -
	cDIDID               // a-z A-Z 0-9 . _ : % -  (DID identifier body)
	cCID                 // a-z A-Z 0-9 + =
)

var byteClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= cAlpha | cLower | cTIDRest | cRKey | cDIDID | cCID
		if c <= 'j' {
			t[c] |= cTIDHead
		}
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= cAlpha | cRKey | cDIDID | cCID
	}
	for c := '0'; c <= '9'; c++ {
		t[c] |= cDigit | cRKey | cDIDID | cCID
		if c >= '2' && c <= '7' {
			t[c] |= cTIDRest | cTIDHead
		}
	}
	for _, c := range "_~.:-" {
		t[c] |= cRKey
	}
	for _, c := range "._:%-" {
		t[c] |= cDIDID
	}
	t['+'] |= cCID
	t['='] |= cCID
	return t
}()

func isAlnum(c byte) bool { return byteClass[c]&(cAlpha|cDigit) != 0 }

// dnsLabel reports whether s is 1-63 of [a-zA-Z0-9-] not starting or ending
// with '-' (a handle / NSID authority segment); firstAlpha also requires a
// letter first.
func dnsLabel(s string, firstAlpha bool) bool {
	n := len(s)
	if n == 0 || n > 63 || !isAlnum(s[0]) || !isAlnum(s[n-1]) {
		return false
	}
	if firstAlpha && byteClass[s[0]]&cAlpha == 0 {
		return false
	}
	for i := 1; i < n-1; i++ {
		if !isAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// isNSID mirrors syntax.ParseNSID: at most 317 chars; a first segment that
// starts with a letter, one or more further authority segments (DNS labels),
// and a name of 1-63 letters and digits starting with a letter.
func isNSID(s string) bool {
	if len(s) == 0 || len(s) > 317 {
		return false
	}
	last := strings.LastIndexByte(s, '.')
	if last < 0 {
		return false
	}
	name := s[last+1:]
	if len(name) == 0 || len(name) > 63 || byteClass[name[0]]&cAlpha == 0 {
		return false
	}
	for i := 1; i < len(name); i++ {
		if !isAlnum(name[i]) {
			return false
		}
	}
	auth := s[:last]
	dot := strings.IndexByte(auth, '.')
	if dot < 0 || !dnsLabel(auth[:dot], true) { // at least two authority segments
		return false
	}
	for rest := auth[dot+1:]; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			return dnsLabel(rest, false)
		}
		if !dnsLabel(rest[:i], false) {
			return false
		}
		rest = rest[i+1:]
	}
}

// isHandle mirrors syntax.ParseHandle: at most 253 chars, two or more DNS
// labels, the last (TLD) starting with a letter.
func isHandle(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	last := strings.LastIndexByte(s, '.')
	if last < 0 || !dnsLabel(s[last+1:], true) {
		return false
	}
	for rest := s[:last]; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			return dnsLabel(rest, false)
		}
		if !dnsLabel(rest[:i], false) {
			return false
		}
		rest = rest[i+1:]
	}
}

// isDID mirrors syntax.ParseDID: "did:", a method of [a-z]+, ":", then
// [a-zA-Z0-9._:%-]* not ending in ':' or '%'; at most 2048 chars.
func isDID(s string) bool {
	if len(s) > 2048 || !strings.HasPrefix(s, "did:") {
		return false
	}
	i := 4
	for i < len(s) && byteClass[s[i]]&cLower != 0 {
		i++
	}
	if i == 4 || i == len(s) || s[i] != ':' {
		return false
	}
	id := s[i+1:]
	if len(id) == 0 {
		return false
	}
	for j := 0; j < len(id); j++ {
		if byteClass[id[j]]&cDIDID == 0 {
			return false
		}
	}
	end := id[len(id)-1]
	return end != ':' && end != '%'
}

// isAtIdentifier mirrors syntax.ParseAtIdentifier: a DID if it starts with
// "did:", else a handle.
func isAtIdentifier(s string) bool {
	if strings.HasPrefix(s, "did:") {
		return isDID(s)
	}
	return isHandle(s)
}

// isRecordKey mirrors syntax.ParseRecordKey: 1-512 of [a-zA-Z0-9_~.:-],
// not "." or "..".
func isRecordKey(s string) bool {
	if len(s) == 0 || len(s) > 512 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		if byteClass[s[i]]&cRKey == 0 {
			return false
		}
	}
	return true
}

// isTID mirrors syntax.ParseTID: 13 base32-sortable chars, the first in 2-7a-j.
func isTID(s string) bool {
	if len(s) != 13 || byteClass[s[0]]&cTIDHead == 0 {
		return false
	}
	for i := 1; i < 13; i++ {
		if byteClass[s[i]]&cTIDRest == 0 {
			return false
		}
	}
	return true
}

// isCID mirrors syntax.ParseCID: 8-256 of [a-zA-Z0-9+=], not a CIDv0 ("Qmb").
func isCID(s string) bool {
	if len(s) < 8 || len(s) > 256 || strings.HasPrefix(s, "Qmb") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if byteClass[s[i]]&cCID == 0 {
			return false
		}
	}
	return true
}

// isLanguage mirrors syntax.ParseLanguage: "i" or 2-3 of [a-z], then any
// number of "-" + [a-zA-Z0-9]+; at most 128 chars.
func isLanguage(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	i := 0
	for i < len(s) && byteClass[s[i]]&cLower != 0 {
		i++
	}
	if !(i == 2 || i == 3 || (i == 1 && s[0] == 'i')) {
		return false
	}
	for i < len(s) {
		if s[i] != '-' {
			return false
		}
		i++
		start := i
		for i < len(s) && isAlnum(s[i]) {
			i++
		}
		if i == start {
			return false
		}
	}
	return true
}

// isATURI mirrors syntax.ParseATURI: "at://" authority ["/" collection
// ["/" rkey]], the authority an at-identifier, the collection an NSID and
// the rkey a record key; at most 8192 chars.
func isATURI(s string) bool {
	if len(s) > 8192 || !strings.HasPrefix(s, "at://") {
		return false
	}
	rest := s[5:]
	auth, path, hasPath := strings.Cut(rest, "/")
	// The authority's regexp class [a-zA-Z0-9._:%-] is implied by
	// at-identifier syntax.
	if !isAtIdentifier(auth) {
		return false
	}
	if !hasPath {
		return true
	}
	coll, rkey, hasRKey := strings.Cut(path, "/")
	if !isNSID(coll) {
		return false
	}
	return !hasRKey || isRecordKey(rkey)
}

// isDatetime accepts a strict subset of what syntax.ParseDatetime accepts
// (its regexp, no "-00:00", time.Parse(RFC3339Nano), not before year 0):
// YYYY-MM-DDTHH:MM:SS, an optional "." and 1-20 digits, then "Z" or ±HH:MM,
// every field in range. It leaves to indigo the odd forms its regexp and Go's
// general time parser let through (a ',' before the fraction, offsets of
// 24-29 hours).
func isDatetime(s string) bool {
	if len(s) < 20 || len(s) > 46 {
		return false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18} {
		if byteClass[s[i]]&cDigit == 0 {
			return false
		}
	}
	if s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return false
	}
	year := num4(s[0:4])
	month := num2(s[5:7])
	day := num2(s[8:10])
	hour, minute, sec := num2(s[11:13]), num2(s[14:16]), num2(s[17:19])
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return false
	}
	rest := s[19:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && byteClass[rest[n]]&cDigit != 0 {
			n++
		}
		if n == 1 || n > 21 {
			return false
		}
		rest = rest[n:]
	}
	if rest == "Z" {
		return true
	}
	if len(rest) != 6 || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':' ||
		byteClass[rest[1]]&cDigit == 0 || byteClass[rest[2]]&cDigit == 0 ||
		byteClass[rest[4]]&cDigit == 0 || byteClass[rest[5]]&cDigit == 0 {
		return false
	}
	oh, om := num2(rest[1:3]), num2(rest[4:6])
	if oh > 23 || om > 59 {
		return false
	}
	if rest[0] == '-' {
		return !(oh == 0 && om == 0) // "-00:00" is not allowed
	}
	// A positive offset moves the instant earlier: not before 0000-01-01T00:00Z.
	if year == 0 && month == 1 && day == 1 {
		return hour*3600+minute*60+sec >= oh*3600+om*60
	}
	return true
}

func num2(s string) int { return int(s[0]-'0')*10 + int(s[1]-'0') }
func num4(s string) int { return num2(s[0:2])*100 + num2(s[2:4]) }

// daysIn is the proleptic Gregorian month length (as package time uses).
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// fastFormat reports whether v certainly has the string format f (false:
// not certain, ask indigo). Formats without a fast check return false.
func fastFormat(f, v string) bool {
	switch f {
	case "nsid":
		return isNSID(v)
	case "record-key":
		return isRecordKey(v)
	case "at-identifier":
		return isAtIdentifier(v)
	case "did":
		return isDID(v)
	case "handle":
		return isHandle(v)
	case "tid":
		return isTID(v)
	case "datetime":
		return isDatetime(v)
	case "cid":
		return isCID(v)
	case "language":
		return isLanguage(v)
	case "at-uri":
		return isATURI(v)
	}
	return false
}

// fastStringValid reports whether d.Validate(v, 0) certainly succeeds, without
// regexps or grapheme segmentation; false means "call indigo" (which decides
// and words the error).
func fastStringValid(d *lexicon.SchemaString, v string) bool {
	if d.Const != nil && v != *d.Const {
		return false
	}
	if (d.MinLength != nil && len(v) < *d.MinLength) || (d.MaxLength != nil && len(v) > *d.MaxLength) {
		return false
	}
	if len(d.Enum) > 0 && !slices.Contains(d.Enum, v) {
		return false
	}
	// A grapheme cluster is at least one byte, so len(v) bounds the count from
	// above; ASCII without CR is exactly one cluster per byte.
	if d.MaxGraphemes != nil && len(v) > *d.MaxGraphemes {
		return false
	}
	if d.MinGraphemes != nil && (len(v) < *d.MinGraphemes || !asciiNoCR(v)) {
		return false
	}
	return d.Format == nil || fastFormat(*d.Format, v)
}

func asciiNoCR(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == '\r' {
			return false
		}
	}
	return true
}

// The Parse functions below are drop-in replacements for indigo's
// syntax.ParseX: same results and errors, without a regexp for the usual
// valid input.

// ParseNSID is syntax.ParseNSID with a fast path.
func ParseNSID(raw string) (syntax.NSID, error) {
	if isNSID(raw) {
		return syntax.NSID(raw), nil
	}
	return syntax.ParseNSID(raw)
}

// ParseRecordKey is syntax.ParseRecordKey with a fast path.
func ParseRecordKey(raw string) (syntax.RecordKey, error) {
	if isRecordKey(raw) {
		return syntax.RecordKey(raw), nil
	}
	return syntax.ParseRecordKey(raw)
}

// ParseTID is syntax.ParseTID with a fast path.
func ParseTID(raw string) (syntax.TID, error) {
	if isTID(raw) {
		return syntax.TID(raw), nil
	}
	return syntax.ParseTID(raw)
}
