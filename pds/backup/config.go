package backup

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pdsgo/pds/pds/blobstore"
)

// Config is where and how to back up (PDS_BACKUP_*).
type Config struct {
	URL       string              // PDS_BACKUP_URL: s3://bucket/prefix or file:///path
	S3        *blobstore.S3Config // for s3:// (PDS_BACKUP_S3_ENDPOINT, _REGION, _FORCE_PATH_STYLE, _ACCESS_KEY_ID, _SECRET_ACCESS_KEY)
	Prefix    string              // key prefix inside the bucket ("" or ending in "/")
	Dir       string              // for file://
	Key       string              // PDS_BACKUP_KEY: an age identity (AGE-SECRET-KEY-1...) or a passphrase
	Interval  time.Duration       // PDS_BACKUP_INTERVAL (seconds, or a Go duration; default 60 s)
	Retention Retention           // PDS_BACKUP_RETENTION
}

// DefaultInterval is the time between rounds when PDS_BACKUP_INTERVAL is not set.
const DefaultInterval = 60 * time.Second

// ConfigFromEnv reads the PDS_BACKUP_* variables; nil (and no error) when PDS_BACKUP_URL is not set.
func ConfigFromEnv(getenv func(string) string) (*Config, error) {
	raw := getenv("PDS_BACKUP_URL")
	if raw == "" {
		return nil, nil
	}
	c := &Config{URL: raw, Key: getenv("PDS_BACKUP_KEY"), Interval: DefaultInterval}
	if c.Key == "" {
		return nil, fmt.Errorf("PDS_BACKUP_KEY is required with PDS_BACKUP_URL (an age identity or a passphrase)")
	}
	if err := c.setURL(raw, getenv); err != nil {
		return nil, err
	}
	if v := getenv("PDS_BACKUP_INTERVAL"); v != "" {
		d, err := parseInterval(v)
		if err != nil {
			return nil, err
		}
		c.Interval = d
	}
	r, err := ParseRetention(getenv("PDS_BACKUP_RETENTION"))
	if err != nil {
		return nil, err
	}
	c.Retention = r
	return c, nil
}

// WithURL is c with another location (pds restore --from), the S3 settings kept.
func (c *Config) WithURL(raw string, getenv func(string) string) (*Config, error) {
	n := *c
	n.S3, n.Dir, n.Prefix = nil, "", ""
	if err := n.setURL(raw, getenv); err != nil {
		return nil, err
	}
	n.URL = raw
	return &n, nil
}

func (c *Config) setURL(raw string, getenv func(string) string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("PDS_BACKUP_URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		if u.Path == "" || u.Host != "" {
			return fmt.Errorf("PDS_BACKUP_URL %q: want file:///absolute/path", raw)
		}
		c.Dir = u.Path
	case "s3":
		if u.Host == "" {
			return fmt.Errorf("PDS_BACKUP_URL %q: want s3://bucket/prefix", raw)
		}
		s3 := &blobstore.S3Config{
			Bucket:          u.Host,
			Region:          getenv("PDS_BACKUP_S3_REGION"),
			Endpoint:        getenv("PDS_BACKUP_S3_ENDPOINT"),
			AccessKeyID:     getenv("PDS_BACKUP_S3_ACCESS_KEY_ID"),
			SecretAccessKey: getenv("PDS_BACKUP_S3_SECRET_ACCESS_KEY"),
		}
		switch strings.ToLower(getenv("PDS_BACKUP_S3_FORCE_PATH_STYLE")) {
		case "", "false", "0", "no":
		case "true", "1", "yes":
			s3.ForcePathStyle = true
		default:
			return fmt.Errorf("PDS_BACKUP_S3_FORCE_PATH_STYLE: not a boolean")
		}
		c.S3 = s3
		if p := strings.Trim(u.Path, "/"); p != "" {
			c.Prefix = p + "/"
		}
	default:
		return fmt.Errorf("PDS_BACKUP_URL %q: scheme must be s3 or file", raw)
	}
	return nil
}

func parseInterval(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("PDS_BACKUP_INTERVAL: %q is not a number of seconds or a duration", v)
	}
	return d, nil
}

// Retention says which rounds pruning keeps: the newest round of each of the last N periods of each kind, and
// the Last newest rounds. A round any rule keeps is kept with every object it refers to.
type Retention struct {
	Last, Hourly, Daily, Weekly, Monthly int
}

// DefaultRetention: an hour of rounds at the default interval, hourly for two days, daily for a month.
var DefaultRetention = Retention{Last: 60, Hourly: 48, Daily: 30}

// ParseRetention parses "last=60,hourly=48,daily=30,weekly=8,monthly=12" ("" = DefaultRetention).
func ParseRetention(v string) (Retention, error) {
	if strings.TrimSpace(v) == "" {
		return DefaultRetention, nil
	}
	var r Retention
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if !ok || err != nil || n < 0 {
			return r, fmt.Errorf("PDS_BACKUP_RETENTION: %q is not kind=N", part)
		}
		switch strings.TrimSpace(k) {
		case "last":
			r.Last = n
		case "hourly":
			r.Hourly = n
		case "daily":
			r.Daily = n
		case "weekly":
			r.Weekly = n
		case "monthly":
			r.Monthly = n
		default:
			return r, fmt.Errorf("PDS_BACKUP_RETENTION: unknown kind %q (last, hourly, daily, weekly, monthly)", k)
		}
	}
	if r.Last < 1 {
		r.Last = 1 // the newest round is always kept
	}
	return r, nil
}

// keep returns the IDs of the rounds (sorted by time) that r keeps.
func (r Retention) keep(rounds []RoundInfo) map[string]bool {
	sorted := append([]RoundInfo(nil), rounds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Time.After(sorted[j].Time) })
	kept := map[string]bool{}
	rule := func(n int, period func(time.Time) string) {
		seen := map[string]bool{}
		for _, ri := range sorted {
			if len(seen) >= n {
				return
			}
			p := period(ri.Time)
			if !seen[p] {
				seen[p] = true
				kept[ri.ID] = true
			}
		}
	}
	for i, ri := range sorted {
		if i < r.Last {
			kept[ri.ID] = true
		}
	}
	rule(r.Hourly, func(t time.Time) string { return t.UTC().Format("2006010215") })
	rule(r.Daily, func(t time.Time) string { return t.UTC().Format("20060102") })
	rule(r.Weekly, func(t time.Time) string { y, w := t.UTC().ISOWeek(); return fmt.Sprint(y, w) })
	rule(r.Monthly, func(t time.Time) string { return t.UTC().Format("200601") })
	return kept
}
