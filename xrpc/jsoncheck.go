package xrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

const (
	// maxSafeInteger is 2^53-1: integers beyond it do not survive a trip
	// through a JavaScript (or float64) client, so the data model forbids them.
	maxSafeInteger = 1<<53 - 1
	// Nesting limits for records and for whole request bodies (a body wraps a
	// record in a few levels, e.g. applyWrites). encoding/json would go to 10000.
	maxRecordDepth = 128
	maxBodyDepth   = maxRecordDepth + 8
)

// checkJSON enforces, on raw JSON, the data-model rules encoding/json and
// atdata.UnmarshalJSON let through: valid UTF-8 (including no lone
// surrogate escapes, which Go would silently turn into U+FFFD), a single
// top-level object with no trailing data, no duplicate keys, numbers that are
// integers (123.0 counts, as for a JavaScript peer) within ±(2^53-1), and a
// nesting limit. Error messages never quote the input.
func checkJSON(raw []byte, maxDepth int) error {
	if !utf8.Valid(raw) {
		return errors.New("not valid UTF-8")
	}
	if err := checkSurrogates(raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return errSyntax
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errNotObject
	}
	type frame struct {
		obj  bool
		keys map[string]struct{}
		key  bool // next token in this object is a key
	}
	stack := []frame{{obj: true, keys: map[string]struct{}{}, key: true}}
	for len(stack) > 0 {
		tok, err := dec.Token()
		if err != nil {
			return errSyntax
		}
		top := &stack[len(stack)-1]
		if top.obj {
			if top.key {
				if d, ok := tok.(json.Delim); ok && d == '}' {
					stack = stack[:len(stack)-1]
					continue
				}
				k, ok := tok.(string)
				if !ok {
					return errSyntax
				}
				if _, dup := top.keys[k]; dup {
					return errors.New("duplicate object key")
				}
				top.keys[k] = struct{}{}
				top.key = false
				continue
			}
			top.key = true
		} else if d, ok := tok.(json.Delim); ok && d == ']' {
			stack = stack[:len(stack)-1]
			continue
		}
		// a value
		switch v := tok.(type) {
		case json.Delim:
			if len(stack) >= maxDepth {
				return fmt.Errorf("nested deeper than %d levels", maxDepth)
			}
			if v == '{' {
				stack = append(stack, frame{obj: true, keys: map[string]struct{}{}, key: true})
			} else {
				stack = append(stack, frame{})
			}
		case json.Number:
			if err := checkNumber(string(v)); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailing
	}
	return nil
}

var (
	errSyntax    = errors.New("malformed JSON")
	errNotObject = errors.New("not a JSON object")
	errTrailing  = errors.New("unexpected data after the JSON object")
)

func checkNumber(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return errors.New("number out of range")
	}
	if f != math.Trunc(f) {
		return errors.New("floating-point numbers are not allowed (integers only)")
	}
	if f > maxSafeInteger || f < -maxSafeInteger {
		return errors.New("integer out of range (must be within ±(2^53-1))")
	}
	return nil
}

// checkSurrogates rejects \uD800-\uDFFF escapes that are not a proper
// high+low pair: they cannot be represented in UTF-8.
func checkSurrogates(raw []byte) error {
	inStr := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !inStr {
			if c == '"' {
				inStr = true
			}
			continue
		}
		switch c {
		case '"':
			inStr = false
		case '\\':
			if i+1 >= len(raw) {
				return nil // syntax error, reported by the decoder
			}
			if raw[i+1] != 'u' {
				i++
				continue
			}
			r, ok := hex4(raw, i+2)
			if !ok {
				return nil
			}
			i += 5
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return errors.New("unpaired UTF-16 surrogate escape")
			case r >= 0xD800 && r <= 0xDBFF:
				if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					if lo, ok := hex4(raw, i+3); ok && lo >= 0xDC00 && lo <= 0xDFFF {
						i += 6
						continue
					}
				}
				return errors.New("unpaired UTF-16 surrogate escape")
			}
		}
	}
	return nil
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return 0, false
		}
	}
	return r, true
}
