package main

import (
	"encoding/binary"
	"errors"
)

// A minimal DAG-CBOR walker: enough to read a firehose frame's header {op, t} and the body's seq and time
// without decoding the (large) blocks field, so a thousand subscribers cost the load tool little CPU.

var errCBOR = errors.New("malformed CBOR")

// head reads a CBOR item head at b[i:]: major type, argument, and the index after the head.
func head(b []byte, i int) (major byte, arg uint64, next int, err error) {
	if i >= len(b) {
		return 0, 0, 0, errCBOR
	}
	major, info := b[i]>>5, b[i]&0x1f
	i++
	switch {
	case info < 24:
		return major, uint64(info), i, nil
	case info == 24:
		if i+1 > len(b) {
			return 0, 0, 0, errCBOR
		}
		return major, uint64(b[i]), i + 1, nil
	case info == 25:
		if i+2 > len(b) {
			return 0, 0, 0, errCBOR
		}
		return major, uint64(binary.BigEndian.Uint16(b[i:])), i + 2, nil
	case info == 26:
		if i+4 > len(b) {
			return 0, 0, 0, errCBOR
		}
		return major, uint64(binary.BigEndian.Uint32(b[i:])), i + 4, nil
	case info == 27:
		if i+8 > len(b) {
			return 0, 0, 0, errCBOR
		}
		return major, binary.BigEndian.Uint64(b[i:]), i + 8, nil
	}
	return 0, 0, 0, errCBOR // indefinite lengths are not DAG-CBOR
}

// skip returns the index after the item at b[i:].
func skip(b []byte, i int) (int, error) {
	major, arg, i, err := head(b, i)
	if err != nil {
		return 0, err
	}
	switch major {
	case 0, 1, 7:
		return i, nil
	case 2, 3:
		if arg > uint64(len(b)-i) {
			return 0, errCBOR
		}
		return i + int(arg), nil
	case 4, 5:
		n := arg
		if major == 5 {
			n *= 2
		}
		if n > uint64(len(b)) {
			return 0, errCBOR
		}
		for range n {
			if i, err = skip(b, i); err != nil {
				return 0, err
			}
		}
		return i, nil
	case 6:
		return skip(b, i)
	}
	return 0, errCBOR
}

// frameFields are the parts of a frame the load tool looks at.
type frameFields struct {
	Op   int64
	Type string // header t
	Seq  int64  // body seq (0 when absent)
	Time string // body time
	Body int    // index where the body starts
}

// scanFrame reads header {op, t} and the body's seq and time.
func scanFrame(b []byte) (frameFields, error) {
	var f frameFields
	i, err := scanMap(b, 0, func(key string, b []byte, i int) (int, error) {
		switch key {
		case "op":
			major, arg, next, err := head(b, i)
			if err != nil {
				return 0, err
			}
			switch major {
			case 0:
				f.Op = int64(arg)
			case 1:
				f.Op = -1 - int64(arg)
			default:
				return 0, errCBOR
			}
			return next, nil
		case "t":
			s, next, err := text(b, i)
			f.Type = s
			return next, err
		}
		return skip(b, i)
	})
	if err != nil {
		return f, err
	}
	f.Body = i
	_, err = scanMap(b, i, func(key string, b []byte, i int) (int, error) {
		switch key {
		case "seq":
			major, arg, next, err := head(b, i)
			if err != nil {
				return 0, err
			}
			if major == 0 {
				f.Seq = int64(arg)
			}
			return next, nil
		case "time":
			s, next, err := text(b, i)
			f.Time = s
			return next, err
		}
		return skip(b, i)
	})
	return f, err
}

// scanMap calls fn for each text key of the map at b[i:]; fn returns the index after the value.
func scanMap(b []byte, i int, fn func(key string, b []byte, i int) (int, error)) (int, error) {
	major, n, i, err := head(b, i)
	if err != nil {
		return 0, err
	}
	if major != 5 || n > uint64(len(b)) {
		return 0, errCBOR
	}
	for range n {
		var key string
		if key, i, err = text(b, i); err != nil {
			return 0, err
		}
		if i, err = fn(key, b, i); err != nil {
			return 0, err
		}
	}
	return i, nil
}

func text(b []byte, i int) (string, int, error) {
	major, n, i, err := head(b, i)
	if err != nil {
		return "", 0, err
	}
	if major != 3 || n > uint64(len(b)-i) {
		return "", 0, errCBOR
	}
	return string(b[i : i+int(n)]), i + int(n), nil
}
