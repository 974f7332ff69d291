package blobstore

import (
	"bytes"
	"mime"
	"net/http"
	"strings"
)

// DetectMIME returns the media type of content that starts with head, from binary signatures only, or "" when it
// has none (text, unknown formats): the caller then falls back to the declared type, as the reference PDS does.
// Text is never "detected": an SVG, JSON or CSV upload keeps its declared type instead of becoming text/plain or
// text/xml. It adds to net/http.DetectContentType the formats that one lacks: ISO base media files by brand
// (MP4, QuickTime, M4V/M4A, 3GPP, AVIF, HEIC/HEIF), TIFF and JPEG XL.
func DetectMIME(head []byte) string {
	if t := detectFtyp(head); t != "" {
		return t
	}
	switch {
	case bytes.HasPrefix(head, []byte("II*\x00")), bytes.HasPrefix(head, []byte("MM\x00*")):
		return "image/tiff"
	case bytes.HasPrefix(head, []byte{0xFF, 0x0A}),
		bytes.HasPrefix(head, []byte("\x00\x00\x00\x0cJXL \x0d\x0a\x87\x0a")):
		return "image/jxl"
	}
	t, _, err := mime.ParseMediaType(http.DetectContentType(head))
	if err != nil || t == "application/octet-stream" || strings.HasPrefix(t, "text/") {
		return ""
	}
	return t
}

// detectFtyp recognises ISO base media files (a leading "ftyp" box) by their major brand, with the same names the
// reference PDS's detector (file-type) gives them, so a blob keeps its MIME type when an account migrates.
func detectFtyp(b []byte) string {
	if len(b) < 12 || string(b[4:8]) != "ftyp" || b[8] == 0 {
		return ""
	}
	brand := strings.TrimRight(string(b[8:12]), " \x00")
	switch brand {
	case "avif", "avis":
		return "image/avif"
	case "mif1":
		return "image/heif"
	case "msf1":
		return "image/heif-sequence"
	case "heic", "heix":
		return "image/heic"
	case "hevc", "hevx":
		return "image/heic-sequence"
	case "qt":
		return "video/quicktime"
	case "M4V", "M4VH", "M4VP":
		return "video/x-m4v"
	case "M4P":
		return "video/mp4"
	case "M4B":
		return "audio/mp4"
	case "M4A":
		return "audio/x-m4a"
	case "F4V", "F4P":
		return "video/mp4"
	case "F4A", "F4B":
		return "audio/mp4"
	case "crx":
		return "image/x-canon-cr3"
	case "jp2":
		return "image/jp2"
	}
	if strings.HasPrefix(brand, "3g2") {
		return "video/3gpp2"
	}
	if strings.HasPrefix(brand, "3g") {
		return "video/3gpp"
	}
	for _, c := range []byte(brand) {
		if c < 0x20 || c > 0x7e {
			return "" // not a brand: not an ftyp box after all
		}
	}
	return "video/mp4"
}

// NormalizeMIME returns the media type of a Content-Type header without parameters, lower-cased, or "" when it is
// not a concrete type/subtype (missing, malformed, or a wildcard).
func NormalizeMIME(contentType string) string {
	t, _, err := mime.ParseMediaType(contentType)
	if err != nil || strings.Contains(t, "*") || !strings.Contains(t, "/") {
		return ""
	}
	return t
}
