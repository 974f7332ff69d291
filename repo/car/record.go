package car

import (
	"errors"
	"fmt"

	"github.com/bluesky-social/indigo/atproto/atdata"
	"github.com/ipfs/go-cid"
)

// BlobRefs returns the distinct blobs a record references: blob objects and, like the reference PDS,
// the legacy {cid, mimeType} form of early records.
func BlobRefs(record []byte) ([]cid.Cid, error) {
	if err := CheckNesting(record, MaxRecordNesting); err != nil {
		return nil, err
	}
	val, err := atdata.UnmarshalCBOR(record)
	if err != nil {
		return nil, err
	}
	var out []cid.Cid
	seen := map[cid.Cid]bool{}
	add := func(c cid.Cid) {
		if c.Defined() && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for _, b := range atdata.ExtractBlobs(val) {
		add(cid.Cid(b.Ref))
	}
	var legacy func(v any)
	legacy = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 2 {
				cs, ok1 := x["cid"].(string)
				_, ok2 := x["mimeType"].(string)
				if ok1 && ok2 {
					if c, err := cid.Decode(cs); err == nil {
						add(c)
						return
					}
				}
			}
			for _, e := range x {
				legacy(e)
			}
		case []any:
			for _, e := range x {
				legacy(e)
			}
		}
	}
	legacy(val)
	return out, nil
}

// MaxRecordNesting is the deepest record accepted, the limit createRecord applies to JSON records.
const MaxRecordNesting = 128

// CheckNesting scans one CBOR item without recursion and refuses nesting deeper than max, indefinite
// lengths (not DAG-CBOR), truncation and trailing bytes, so a nesting bomb never reaches a recursive decoder.
func CheckNesting(b []byte, max int) error {
	stack := []uint64{1} // items still expected in each open container; the bottom is the top-level item
	i := 0
	for len(stack) > 0 {
		top := len(stack) - 1
		if stack[top] == 0 {
			stack = stack[:top]
			continue
		}
		stack[top]--
		if i >= len(b) {
			return errors.New("truncated CBOR")
		}
		major, info := b[i]>>5, b[i]&0x1f
		i++
		var arg uint64
		switch {
		case info < 24:
			arg = uint64(info)
		case info <= 27:
			n := 1 << (info - 24)
			if len(b)-i < n {
				return errors.New("truncated CBOR")
			}
			for _, c := range b[i : i+n] {
				arg = arg<<8 | uint64(c)
			}
			i += n
		default:
			return errors.New("indefinite-length or reserved CBOR item")
		}
		switch major {
		case 2, 3: // byte and text strings
			if arg > uint64(len(b)-i) {
				return errors.New("truncated CBOR")
			}
			i += int(arg)
		case 4, 5, 6: // arrays, maps (two items per entry), tags (one item)
			if major == 5 {
				arg *= 2
			} else if major == 6 {
				arg = 1
			}
			if arg > uint64(len(b)-i) {
				return errors.New("truncated CBOR")
			}
			if len(stack) > max {
				return fmt.Errorf("nested deeper than %d levels", max)
			}
			stack = append(stack, arg)
		}
	}
	if i != len(b) {
		return errors.New("trailing bytes after the CBOR item")
	}
	return nil
}
