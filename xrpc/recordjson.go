package xrpc

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/ipfs/go-cid"
	"github.com/labstack/echo/v4"
)

// Stored records are DAG-CBOR; reads answer JSON. The general path decodes into maps and validates the data
// model (atdata.UnmarshalCBOR), then json.Marshal walks the maps again. AppendRecordJSON transcodes the common
// shapes straight from the CBOR bytes to the same JSON, byte for byte: object keys sorted, blobs as
// {"$type","ref","mimeType","size"}, links as {"$link"}, bytes as {"$bytes"}, strings escaped as
// encoding/json does (HTML characters included). Anything unusual — floats, indefinite lengths, non-minimal
// heads, tags other than CIDs, "$link"/"$bytes" keys, legacy blobs, bad "$type", limits — goes the general way,
// so errors and edge cases stay exactly what atdata says.

// WriteJSON answers 200 with a JSON document built by hand, as c.JSON would send it (a final newline;
// indented with ?pretty or in debug mode).
func WriteJSON(c echo.Context, doc []byte) error {
	if _, pretty := c.QueryParams()["pretty"]; pretty || c.Echo().Debug {
		return c.JSON(http.StatusOK, json.RawMessage(doc))
	}
	return c.JSONBlob(http.StatusOK, append(doc, '\n'))
}

// RecordJSON renders a stored record's CBOR as JSON.
func RecordJSON(cbor []byte) (json.RawMessage, error) {
	return AppendRecordJSON(nil, cbor)
}

// AppendRecordJSON appends the JSON of a stored record to dst.
func AppendRecordJSON(dst, cbor []byte) ([]byte, error) {
	if out, ok := transcodeRecord(dst, cbor); ok {
		return out, nil
	}
	val, err := atdata.UnmarshalCBOR(cbor)
	if err != nil {
		return dst, err
	}
	b, err := json.Marshal(val)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// transcodeRecord is the fast path; ok is false when the record needs the general one (dst is then unchanged
// in its first len(dst) bytes).
func transcodeRecord(dst, cbor []byte) ([]byte, bool) {
	if len(cbor) == 0 || len(cbor) > atdata.MAX_CBOR_RECORD_SIZE || cbor[0]>>5 != majorMap {
		return dst, false
	}
	t := transcoder{in: cbor}
	out, end, ok := t.value(dst, 0, 0)
	if !ok || end != len(cbor) {
		return dst, false
	}
	return out, true
}

const (
	majorUint = iota
	majorNegInt
	majorBytes
	majorText
	majorArray
	majorMap
	majorTag
	majorSimple
)

const maxTranscodeDepth = atdata.MAX_CBOR_NESTED_LEVELS

type transcoder struct{ in []byte }

// head reads a data item's head at pos: major type, argument, position after the head. Only definite,
// minimally encoded heads are accepted.
func (t *transcoder) head(pos int) (major byte, arg uint64, next int, ok bool) {
	if pos >= len(t.in) {
		return 0, 0, 0, false
	}
	b := t.in[pos]
	major, info := b>>5, b&0x1f
	pos++
	switch {
	case info < 24:
		return major, uint64(info), pos, true
	case info == 24 && pos+1 <= len(t.in):
		arg = uint64(t.in[pos])
		return major, arg, pos + 1, arg >= 24
	case info == 25 && pos+2 <= len(t.in):
		arg = uint64(binary.BigEndian.Uint16(t.in[pos:]))
		return major, arg, pos + 2, arg > math.MaxUint8 && major != majorSimple
	case info == 26 && pos+4 <= len(t.in):
		arg = uint64(binary.BigEndian.Uint32(t.in[pos:]))
		return major, arg, pos + 4, arg > math.MaxUint16 && major != majorSimple
	case info == 27 && pos+8 <= len(t.in):
		arg = binary.BigEndian.Uint64(t.in[pos:])
		return major, arg, pos + 8, arg > math.MaxUint32 && major != majorSimple
	}
	return 0, 0, 0, false // indefinite length, reserved, truncated
}

// span returns the bytes of a byte or text string whose head ends at pos.
func (t *transcoder) span(pos int, n uint64) ([]byte, int, bool) {
	if n > uint64(len(t.in)-pos) {
		return nil, 0, false
	}
	end := pos + int(n)
	return t.in[pos:end], end, true
}

// value appends the JSON of the item at pos.
func (t *transcoder) value(dst []byte, pos, depth int) ([]byte, int, bool) {
	if depth > maxTranscodeDepth {
		return dst, 0, false
	}
	major, arg, pos, ok := t.head(pos)
	if !ok {
		return dst, 0, false
	}
	switch major {
	case majorUint:
		if arg > math.MaxInt64 {
			return dst, 0, false
		}
		return strconv.AppendInt(dst, int64(arg), 10), pos, true
	case majorNegInt:
		if arg > math.MaxInt64 {
			return dst, 0, false
		}
		return strconv.AppendInt(dst, -1-int64(arg), 10), pos, true
	case majorBytes:
		b, end, ok := t.span(pos, arg)
		if !ok {
			return dst, 0, false
		}
		dst = append(dst, `{"$bytes":"`...)
		dst = base64.RawStdEncoding.AppendEncode(dst, b)
		return append(dst, `"}`...), end, true
	case majorText:
		s, end, ok := t.span(pos, arg)
		if !ok || len(s) > atdata.MAX_RECORD_STRING_LEN || !utf8.Valid(s) {
			return dst, 0, false
		}
		return AppendJSONString(dst, s), end, true
	case majorArray:
		if arg > atdata.MAX_CBOR_CONTAINER_LEN {
			return dst, 0, false
		}
		dst = append(dst, '[')
		for i := range arg {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, pos, ok = t.value(dst, pos, depth+1); !ok {
				return dst, 0, false
			}
		}
		return append(dst, ']'), pos, true
	case majorMap:
		return t.object(dst, pos, arg, depth)
	case majorTag:
		if arg != 42 {
			return dst, 0, false
		}
		c, end, ok := t.link(pos)
		if !ok {
			return dst, 0, false
		}
		return appendLink(dst, c), end, true
	case majorSimple:
		switch arg {
		case 20:
			return append(dst, "false"...), pos, true
		case 21:
			return append(dst, "true"...), pos, true
		case 22:
			return append(dst, "null"...), pos, true
		}
	}
	return dst, 0, false // floats, undefined, other simple values
}

// link reads the byte string of a tag-42 CID at pos.
func (t *transcoder) link(pos int) (cid.Cid, int, bool) {
	major, n, pos, ok := t.head(pos)
	if !ok || major != majorBytes {
		return cid.Undef, 0, false
	}
	b, end, ok := t.span(pos, n)
	if !ok || len(b) < 2 || b[0] != 0 {
		return cid.Undef, 0, false
	}
	c, err := cid.Cast(b[1:])
	if err != nil || !c.Defined() {
		return cid.Undef, 0, false
	}
	return c, end, true
}

func appendLink(dst []byte, c cid.Cid) []byte {
	dst = append(dst, `{"$link":"`...)
	dst = append(dst, c.String()...)
	return append(dst, `"}`...)
}

type mapEntry struct {
	key        []byte
	start, end int // the value's CBOR
}

// object appends a map of n entries whose head ends at pos, keys sorted as encoding/json sorts them.
func (t *transcoder) object(dst []byte, pos int, n uint64, depth int) ([]byte, int, bool) {
	if n > atdata.MAX_CBOR_CONTAINER_LEN {
		return dst, 0, false
	}
	var buf [16]mapEntry
	entries := buf[:0]
	var typ []byte
	for range n {
		major, kl, p, ok := t.head(pos)
		if !ok || major != majorText {
			return dst, 0, false
		}
		key, p, ok := t.span(p, kl)
		if !ok || len(key) > atdata.MAX_OBJECT_KEY_LEN || !utf8.Valid(key) {
			return dst, 0, false
		}
		end, ok := t.skip(p, depth+1)
		if !ok {
			return dst, 0, false
		}
		switch string(key) {
		case "$link", "$bytes": // atdata reads these as links and bytes: the general path
			return dst, 0, false
		case "$type":
			m, tl, tp, ok := t.head(p)
			if !ok || m != majorText || tl == 0 {
				return dst, 0, false // atdata: $type must be a non-empty string
			}
			typ, _, _ = t.span(tp, tl)
		}
		entries = append(entries, mapEntry{key: key, start: p, end: end})
		pos = end
	}
	if string(typ) == "blob" {
		out, ok := t.blob(dst, entries)
		return out, pos, ok
	}
	if n == 2 && hasKey(entries, "mimeType") && hasKey(entries, "cid") {
		return dst, 0, false // a legacy blob
	}
	slices.SortFunc(entries, func(a, b mapEntry) int { return bytes.Compare(a.key, b.key) })
	dst = append(dst, '{')
	for i, e := range entries {
		if i > 0 {
			if bytes.Equal(e.key, entries[i-1].key) {
				return dst, 0, false // duplicate key
			}
			dst = append(dst, ',')
		}
		dst = AppendJSONString(dst, e.key)
		dst = append(dst, ':')
		var ok bool
		if dst, _, ok = t.value(dst, e.start, depth+1); !ok {
			return dst, 0, false
		}
	}
	return append(dst, '}'), pos, true
}

func hasKey(entries []mapEntry, key string) bool {
	for _, e := range entries {
		if string(e.key) == key {
			return true
		}
	}
	return false
}

// blob appends a {"$type":"blob"} object in atdata.BlobSchema's field order: exactly $type, ref (a CID link),
// mimeType (a string) and size (a non-negative integer), or the general path.
func (t *transcoder) blob(dst []byte, entries []mapEntry) ([]byte, bool) {
	if len(entries) != 4 {
		return dst, false
	}
	var ref cid.Cid
	var mime []byte
	size := int64(-1)
	for _, e := range entries {
		major, arg, p, ok := t.head(e.start)
		if !ok {
			return dst, false
		}
		switch string(e.key) {
		case "$type":
		case "ref":
			if major != majorTag || arg != 42 {
				return dst, false
			}
			if ref, _, ok = t.link(p); !ok {
				return dst, false
			}
		case "mimeType":
			if major != majorText {
				return dst, false
			}
			if mime, _, ok = t.span(p, arg); !ok || !utf8.Valid(mime) {
				return dst, false
			}
		case "size":
			if major != majorUint || arg > math.MaxInt64 {
				return dst, false
			}
			size = int64(arg)
		default:
			return dst, false
		}
	}
	if !ref.Defined() || mime == nil || size < 0 {
		return dst, false
	}
	dst = append(dst, `{"$type":"blob","ref":`...)
	dst = appendLink(dst, ref)
	dst = append(dst, `,"mimeType":`...)
	dst = AppendJSONString(dst, mime)
	dst = append(dst, `,"size":`...)
	dst = strconv.AppendInt(dst, size, 10)
	return append(dst, '}'), true
}

// skip returns the position after the item at pos, checking it as value would.
func (t *transcoder) skip(pos, depth int) (int, bool) {
	if depth > maxTranscodeDepth {
		return 0, false
	}
	major, arg, pos, ok := t.head(pos)
	if !ok {
		return 0, false
	}
	switch major {
	case majorUint, majorNegInt:
		return pos, true
	case majorBytes, majorText:
		_, end, ok := t.span(pos, arg)
		return end, ok
	case majorArray, majorMap:
		items := arg
		if major == majorMap {
			items *= 2
		}
		if arg > atdata.MAX_CBOR_CONTAINER_LEN {
			return 0, false
		}
		for range items {
			if pos, ok = t.skip(pos, depth+1); !ok {
				return 0, false
			}
		}
		return pos, true
	case majorTag:
		return t.skip(pos, depth+1)
	case majorSimple:
		return pos, arg >= 20 && arg <= 22
	}
	return 0, false
}

// AppendJSONString appends s as a JSON string exactly as encoding/json does with HTML escaping (its default,
// and what echo's JSON responses use). s is valid UTF-8.
func AppendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRune(s[i:])
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			start = i + size
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
