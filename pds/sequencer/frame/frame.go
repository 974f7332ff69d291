package frame

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/atdata"
	cbg "github.com/whyrusleeping/cbor-gen"
)

// Message types (the header's t).
const (
	TypeCommit   = "#commit"
	TypeSync     = "#sync"
	TypeIdentity = "#identity"
	TypeAccount  = "#account"
	TypeInfo     = "#info"
)

// Encode serializes a message frame: the CBOR header {t, op: 1} followed by the CBOR body.
func Encode(typ string, msg cbg.CBORMarshaler) ([]byte, error) {
	var buf bytes.Buffer
	writeMessageHeader(&buf, typ)
	if err := msg.MarshalCBOR(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeMessageHeader writes a message frame's header {t: typ, op: 1} as atdata.MarshalCBOR encodes that map
// (DAG-CBOR: the shorter key first), without its reflection: ~12 µs of every commit's event.
func writeMessageHeader(buf *bytes.Buffer, typ string) {
	cw := cbg.NewCborWriter(buf)
	cw.WriteMajorTypeHeader(cbg.MajMap, 2) // writes to a bytes.Buffer do not fail
	cw.WriteMajorTypeHeader(cbg.MajTextString, 1)
	cw.WriteString("t")
	cw.WriteMajorTypeHeader(cbg.MajTextString, uint64(len(typ)))
	cw.WriteString(typ)
	cw.WriteMajorTypeHeader(cbg.MajTextString, 2)
	cw.WriteString("op")
	cw.WriteMajorTypeHeader(cbg.MajUnsignedInt, 1)
}

// ReadHeader reads a frame's CBOR header from r, leaving r at the body: op is 1 for a message (t is its type,
// e.g. "#commit") and -1 for an error frame (whose body is {error, message}).
func ReadHeader(r io.Reader) (op int64, t string, err error) {
	cr := cbg.NewCborReader(r)
	maj, n, err := cr.ReadHeader()
	if err != nil {
		return 0, "", err
	}
	if maj != cbg.MajMap || n > 8 {
		return 0, "", fmt.Errorf("frame header: not a small map")
	}
	for range n {
		key, err := cbg.ReadStringWithMax(cr, 64)
		if err != nil {
			return 0, "", fmt.Errorf("frame header: %w", err)
		}
		switch key {
		case "t":
			if t, err = cbg.ReadStringWithMax(cr, 128); err != nil {
				return 0, "", fmt.Errorf("frame header t: %w", err)
			}
		case "op":
			maj, v, err := cr.ReadHeader()
			switch {
			case err != nil:
				return 0, "", fmt.Errorf("frame header op: %w", err)
			case maj == cbg.MajUnsignedInt:
				op = int64(v)
			case maj == cbg.MajNegativeInt:
				op = -1 - int64(v)
			default:
				return 0, "", fmt.Errorf("frame header op: not an integer")
			}
		default:
			return 0, "", fmt.Errorf("frame header: unexpected key %q", key)
		}
	}
	return op, t, nil
}

// EncodeError serializes an error frame: {op: -1} followed by {error, message}.
func EncodeError(name, message string) []byte {
	hdr, _ := atdata.MarshalCBOR(map[string]any{"op": int64(-1)})
	body := map[string]any{"error": name}
	if message != "" {
		body["message"] = message
	}
	b, _ := atdata.MarshalCBOR(body)
	return append(hdr, b...)
}

// EncodeInfo serializes an #info message (e.g. OutdatedCursor).
func EncodeInfo(name, message string) []byte {
	evt := &comatproto.SyncSubscribeRepos_Info{Name: name}
	if message != "" {
		evt.Message = &message
	}
	b, _ := Encode(TypeInfo, evt)
	return b
}

// Frame is one decoded frame: a message (Op 1, one of the typed bodies set) or an error (Op -1).
type Frame struct {
	Op       int64
	Type     string
	Seq      int64 // of #commit, #sync, #identity and #account
	Commit   *comatproto.SyncSubscribeRepos_Commit
	Sync     *comatproto.SyncSubscribeRepos_Sync
	Identity *comatproto.SyncSubscribeRepos_Identity
	Account  *comatproto.SyncSubscribeRepos_Account
	Info     *comatproto.SyncSubscribeRepos_Info
	ErrName  string // error frames
	ErrMsg   string
}

// Body is the message's typed body (nil for an error frame).
func (f *Frame) Body() cbg.CBORMarshaler {
	switch {
	case f.Commit != nil:
		return f.Commit
	case f.Sync != nil:
		return f.Sync
	case f.Identity != nil:
		return f.Identity
	case f.Account != nil:
		return f.Account
	case f.Info != nil:
		return f.Info
	}
	return nil
}

// Decode decodes one frame (header and body; error frames too). A body must be exactly one CBOR item.
func Decode(raw []byte) (*Frame, error) {
	r := bytes.NewReader(raw)
	op, typ, err := ReadHeader(r)
	if err != nil {
		return nil, err
	}
	f := &Frame{Op: op, Type: typ}
	switch {
	case op == -1:
		val, err := atdata.UnmarshalCBOR(raw[len(raw)-r.Len():])
		if err != nil {
			return nil, fmt.Errorf("error frame body: %w", err)
		}
		f.ErrName, _ = val["error"].(string)
		f.ErrMsg, _ = val["message"].(string)
		if f.ErrName == "" {
			return nil, errors.New("error frame without an error name")
		}
		return f, nil
	case op != 1:
		return nil, fmt.Errorf("frame op %d", op)
	}
	var body interface{ UnmarshalCBOR(io.Reader) error }
	switch typ {
	case TypeCommit:
		f.Commit = &comatproto.SyncSubscribeRepos_Commit{}
		body = f.Commit
	case TypeSync:
		f.Sync = &comatproto.SyncSubscribeRepos_Sync{}
		body = f.Sync
	case TypeIdentity:
		f.Identity = &comatproto.SyncSubscribeRepos_Identity{}
		body = f.Identity
	case TypeAccount:
		f.Account = &comatproto.SyncSubscribeRepos_Account{}
		body = f.Account
	case TypeInfo:
		f.Info = &comatproto.SyncSubscribeRepos_Info{}
		body = f.Info
	default:
		return nil, fmt.Errorf("unknown frame type %q", typ)
	}
	if err := body.UnmarshalCBOR(r); err != nil {
		return nil, fmt.Errorf("%s body: %w", typ, err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%s: %d trailing bytes", typ, r.Len())
	}
	switch {
	case f.Commit != nil:
		f.Seq = f.Commit.Seq
	case f.Sync != nil:
		f.Seq = f.Sync.Seq
	case f.Identity != nil:
		f.Seq = f.Identity.Seq
	case f.Account != nil:
		f.Seq = f.Account.Seq
	}
	return f, nil
}
