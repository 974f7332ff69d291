package main

import (
	"bytes"
	"testing"

	"github.com/pdsgo/pds/pds/accounts"
)

// The -json output of `pds account import` keeps "note" when it is empty (the server's answer omits it).
func TestImportReportJSON(t *testing.T) {
	res := accounts.ImportAccountResult{DID: "did:plc:abc", Handle: "a.test", Records: 3, Blobs: 2, Preferences: 1, AppPasswords: 4, PLCSubmitted: true}
	var out bytes.Buffer
	if err := printJSON(&out, importReport(&res)); err != nil {
		t.Fatal(err)
	}
	want := `{
  "did": "did:plc:abc",
  "handle": "a.test",
  "records": 3,
  "blobs": 2,
  "preferences": 1,
  "appPasswords": 4,
  "plcSubmitted": true,
  "activated": false,
  "note": ""
}
`
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}
