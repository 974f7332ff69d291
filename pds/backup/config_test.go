package backup

import (
	"strings"
	"testing"
	"time"
)

func TestConfigFromEnv(t *testing.T) {
	get := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if c, err := ConfigFromEnv(get(nil)); c != nil || err != nil {
		t.Fatalf("unset: %v %v", c, err)
	}
	if _, err := ConfigFromEnv(get(map[string]string{"PDS_BACKUP_URL": "file:///b"})); err == nil || !strings.Contains(err.Error(), "PDS_BACKUP_KEY") {
		t.Fatalf("no key: %v", err)
	}
	for _, bad := range []string{"http://x/y", "file://host/p", "s3:///p", "file:"} {
		if _, err := ConfigFromEnv(get(map[string]string{"PDS_BACKUP_URL": bad, "PDS_BACKUP_KEY": "k"})); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	c, err := ConfigFromEnv(get(map[string]string{"PDS_BACKUP_URL": "s3://bkt/a/b/", "PDS_BACKUP_KEY": "k",
		"PDS_BACKUP_S3_ENDPOINT": "http://127.0.0.1:9000", "PDS_BACKUP_S3_FORCE_PATH_STYLE": "true", "PDS_BACKUP_INTERVAL": "30"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.S3.Bucket != "bkt" || c.Prefix != "a/b/" || !c.S3.ForcePathStyle || c.S3.Endpoint != "http://127.0.0.1:9000" || c.Interval != 30*time.Second || c.Retention != DefaultRetention {
		t.Fatalf("parsed %+v %+v", c, c.S3)
	}
	for _, v := range []string{"0", "-5", "soon"} {
		if _, err := ConfigFromEnv(get(map[string]string{"PDS_BACKUP_URL": "file:///b", "PDS_BACKUP_KEY": "k", "PDS_BACKUP_INTERVAL": v})); err == nil {
			t.Errorf("interval %q accepted", v)
		}
	}
	for _, v := range []string{"hourly", "yearly=3", "daily=-1", "daily=x"} {
		if _, err := ParseRetention(v); err == nil {
			t.Errorf("retention %q accepted", v)
		}
	}
}

func TestRetentionKeep(t *testing.T) {
	r, err := ParseRetention("last=2,hourly=3,daily=2")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var rounds []RoundInfo
	// A round every 20 minutes for two days.
	for i := range 144 {
		at := base.Add(time.Duration(-i) * 20 * time.Minute)
		rounds = append(rounds, RoundInfo{ID: at.Format(idFormat), Time: at})
	}
	kept := r.keep(rounds)
	want := []time.Time{
		base, base.Add(-20 * time.Minute), // last=2; also the newest of hours 12 and 11
		base.Add(-80 * time.Minute),              // the newest of hour 10 (10:40)
		base.Add(-12*time.Hour - 20*time.Minute), // the newest of the day before (23:40)
	}
	if len(kept) != len(want) {
		t.Fatalf("kept %d rounds: %v", len(kept), kept)
	}
	for _, w := range want {
		if !kept[w.Format(idFormat)] {
			t.Errorf("round at %s not kept; kept %v", w, kept)
		}
	}
}
