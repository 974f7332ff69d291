package pds

import (
	"strings"
	"testing"
	"time"
)

func TestIdentityResolutionConfig(t *testing.T) {
	env := func(m map[string]string) Getenv { return func(k string) string { return m[k] } }
	c := &Config{}
	if err := c.loadIdentityResolution(env(nil)); err != nil {
		t.Fatal(err)
	}
	if c.DisableSSRFProtection || c.IDResolverTimeout != 3*time.Second || c.HandleDNSServer != "" {
		t.Fatalf("defaults: %+v", c)
	}
	c = &Config{DevMode: true}
	if err := c.loadIdentityResolution(env(map[string]string{
		"PDS_HANDLE_DNS_SERVER":         "127.0.0.1:5353",
		"PDS_HANDLE_BACKUP_NAMESERVERS": "1.1.1.1, [2001:db8::1]:53,ns.example.com",
		"PDS_ID_RESOLVER_TIMEOUT":       "1500",
	})); err != nil {
		t.Fatal(err)
	}
	if !c.DisableSSRFProtection || c.HandleDNSServer != "127.0.0.1:5353" || c.IDResolverTimeout != 1500*time.Millisecond {
		t.Fatalf("parsed: %+v", c)
	}
	want := []string{"1.1.1.1:53", "[2001:db8::1]:53", "ns.example.com:53"}
	if strings.Join(c.HandleBackupNameservers, " ") != strings.Join(want, " ") {
		t.Fatalf("backup nameservers %v, want %v", c.HandleBackupNameservers, want)
	}
	for _, bad := range []map[string]string{
		{"PDS_ID_RESOLVER_TIMEOUT": "0"},
		{"PDS_DISABLE_SSRF_PROTECTION": "maybe"},
		{"PDS_HANDLE_DNS_SERVER": "a:b:c"},
	} {
		if err := (&Config{}).loadIdentityResolution(env(bad)); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
}
