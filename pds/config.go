package pds

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/bluesky-social/indigo/atproto/syntax"

	"github.com/pdsgo/pds/pds/backup"
	"github.com/pdsgo/pds/pds/blobstore"
)

// Config is the server's whole configuration. It is built from the environment (the reference PDS's variable
// names, so an operator's pds.env keeps working) and passed explicitly; nothing reads the environment later.
type Config struct {
	Hostname    string // PDS_HOSTNAME
	Port        int    // PDS_PORT
	BindAddress string // PDS_BIND_ADDRESS: 127.0.0.1 for localhost, else all interfaces
	PublicURL   string // https://<hostname>, or http://localhost:<port> for local runs
	ServiceDID  string // PDS_SERVICE_DID, default did:web:<hostname>
	ServiceName string // PDS_SERVICE_NAME
	// Shown by describeServer (links, contact), as the reference.
	PrivacyPolicyURL    string    // PDS_PRIVACY_POLICY_URL
	TermsOfServiceURL   string    // PDS_TERMS_OF_SERVICE_URL
	ContactEmailAddress string    // PDS_CONTACT_EMAIL_ADDRESS
	DataDirectory       string    // PDS_DATA_DIRECTORY
	TLS                 TLSConfig // PDS_TLS=auto: HTTPS served by the PDS itself (config_tls.go)

	PLCURL               string   // PDS_DID_PLC_URL; for the embedded directory, set by New once it listens
	EmbeddedPLC          bool     // localhost without PDS_DID_PLC_URL: New runs identity/plcserver on <data>/plc.sqlite
	EmbeddedPLCAddr      string   // PDS_EMBEDDED_PLC_ADDR (default 127.0.0.1:2582): where the embedded directory listens
	ServiceHandleDomains []string // PDS_SERVICE_HANDLE_DOMAINS, each starting with "."
	InviteRequired       bool     // PDS_INVITE_REQUIRED
	RecoveryDIDKey       string   // PDS_RECOVERY_DID_KEY: an operator-held rotation key added to new accounts
	DevMode              bool     // PDS_DEV_MODE

	// Identity resolution of user-named hosts (custom-domain handles, did:web documents).
	DisableSSRFProtection   bool          // PDS_DISABLE_SSRF_PROTECTION (default PDS_DEV_MODE): allow private/loopback targets
	IDResolverTimeout       time.Duration // PDS_ID_RESOLVER_TIMEOUT (ms, default 3 s): per DNS/HTTP resolution
	HandleDNSServer         string        // PDS_HANDLE_DNS_SERVER (host:port): ask this server for _atproto TXT records instead of the system resolver
	HandleBackupNameservers []string      // PDS_HANDLE_BACKUP_NAMESERVERS: tried when the first lookup finds no record

	JWTSecret     []byte                   // PDS_JWT_SECRET
	AdminPassword string                   // PDS_ADMIN_PASSWORD
	RotationKey   *atcrypto.PrivateKeyK256 // PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX

	// Firehose.
	BackfillLimit         time.Duration // PDS_REPO_BACKFILL_LIMIT_MS
	MaxSubscriptionBuffer int           // PDS_MAX_SUBSCRIPTION_BUFFER
	Crawlers              []string      // PDS_CRAWLERS

	// Invites earned by users (getAccountInviteCodes createAvailable).
	InviteInterval time.Duration // PDS_INVITE_INTERVAL (ms): a user earns a code per interval; 0 = never
	InviteEpoch    time.Time     // PDS_INVITE_EPOCH (ms since 1970): only intervals after it count

	// Services reached on behalf of accounts (XRPC proxying, see pds/proxy); each URL needs its DID.
	BskyAppView   *ServiceConfig // PDS_BSKY_APP_VIEW_URL / _DID (+ _CDN_URL_PATTERN): app.bsky and chat.bsky
	ModService    *ServiceConfig // PDS_MOD_SERVICE_URL / _DID: tools.ozone
	ReportService *ServiceConfig // PDS_REPORT_SERVICE_URL / _DID (default the mod service): createReport
	Proxy         ProxyConfig    // PDS_PROXY_HEADERS_TIMEOUT, _BODY_TIMEOUT (ms), _MAX_RESPONSE_SIZE (bytes)

	// Email.
	EmailSMTPURL     string // PDS_EMAIL_SMTP_URL: smtp:// or smtps://; empty = mail is logged, not sent
	EmailFromAddress string // PDS_EMAIL_FROM_ADDRESS

	// Rate limits and client addresses.
	RateLimitsEnabled  bool     // PDS_RATE_LIMITS_ENABLED (default true)
	RateLimitBypassKey string   // PDS_RATE_LIMIT_BYPASS_KEY: requests with header x-ratelimit-bypass: <key> are not limited
	RateLimitBypassIPs []string // PDS_RATE_LIMIT_BYPASS_IPS: client IPs that are not limited (and are trusted proxies)
	// TrustedProxies: peers whose X-Forwarded-For is believed (PDS_TRUSTED_PROXIES, IPs or CIDRs; default
	// loopback, link-local and private ranges, as the reference; "none" trusts no one).
	TrustedProxies []netip.Prefix

	// Blobs (config_blobs.go, pds/blobs): on disk under the data directory, or in an S3-compatible bucket when one is configured.
	BlobUploadLimit  int64               // PDS_BLOB_UPLOAD_LIMIT (bytes, default 100 MiB)
	BlobstoreDisk    string              // PDS_BLOBSTORE_DISK_LOCATION (default <data>/blobs)
	BlobstoreDiskTmp string              // PDS_BLOBSTORE_DISK_TMP_LOCATION (default <disk location>/tmp)
	BlobstoreS3      *blobstore.S3Config // PDS_BLOBSTORE_S3_BUCKET, _REGION, _ENDPOINT, ...; nil = disk
	BlobTempExpiry   time.Duration       // PDS_BLOB_TEMP_EXPIRY_MS (default 1 h): unreferenced uploads are deleted
	BlobGCGrace      time.Duration       // PDS_BLOB_GC_GRACE_MS (default 1 h): a blob no record uses any more is kept so long

	// Repository imports (handle_import.go): account migration into this server.
	AcceptingRepoImports bool  // PDS_ACCEPTING_REPO_IMPORTS (default true)
	MaxRepoImportSize    int64 // PDS_MAX_REPO_IMPORT_SIZE (bytes, default 1 GiB)

	// Backup is the continuous backup (PDS_BACKUP_URL, _KEY, _INTERVAL, _RETENTION, _S3_*); nil = off.
	Backup *backup.Config

	// MemoryLimit is the Go runtime's soft memory limit in bytes that cmd/pds applies when GOMEMLIMIT is not
	// set (PDS_MEMORY_LIMIT, default 64 MiB; 0 = none). See docs/operators.md.
	MemoryLimit int64

	// Observability: logs and metrics (config_observability.go).
	Observability ObservabilityConfig

	// GeneratedSecrets lists what LoadConfig generated and saved in the data directory (for the start-up log).
	GeneratedSecrets []string
}

// Getenv is the environment lookup LoadConfig uses; tests pass a map's lookup.
type Getenv func(string) string

// Lookup is an environment lookup that tells an unset variable from one set to "" (os.LookupEnv).
type Lookup func(string) (string, bool)

// LoadConfig builds the configuration. Secrets that are not configured are generated once and kept in
// <data>/secrets.json (mode 0600), so a bare `pds serve` works and keeps working across restarts. A variable
// set to "" counts as unset; LoadConfigLookup tells them apart (an empty service variable turns it off).
func LoadConfig(getenv Getenv) (*Config, error) {
	return LoadConfigLookup(func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	})
}

// LoadConfigLookup is LoadConfig with a lookup that can say a variable is set to "".
func LoadConfigLookup(lookup Lookup) (*Config, error) { return loadConfig(lookup, true) }

// InspectConfig is LoadConfigLookup without touching the disk: the data directory is not created and no
// secret is generated (those not configured stay empty). `pds doctor` uses it.
func InspectConfig(lookup Lookup) (*Config, error) { return loadConfig(lookup, false) }

func loadConfig(lookup Lookup, write bool) (*Config, error) {
	getenv := func(k string) string { v, _ := lookup(k); return v }
	c := &Config{
		Hostname:              or(getenv("PDS_HOSTNAME"), "localhost"),
		ServiceName:           or(getenv("PDS_SERVICE_NAME"), "PDS"),
		DataDirectory:         or(getenv("PDS_DATA_DIRECTORY"), "./data"),
		RecoveryDIDKey:        getenv("PDS_RECOVERY_DID_KEY"),
		PrivacyPolicyURL:      getenv("PDS_PRIVACY_POLICY_URL"),
		TermsOfServiceURL:     getenv("PDS_TERMS_OF_SERVICE_URL"),
		ContactEmailAddress:   getenv("PDS_CONTACT_EMAIL_ADDRESS"),
		AdminPassword:         getenv("PDS_ADMIN_PASSWORD"),
		EmailSMTPURL:          getenv("PDS_EMAIL_SMTP_URL"),
		EmailFromAddress:      getenv("PDS_EMAIL_FROM_ADDRESS"),
		BackfillLimit:         24 * time.Hour,
		MaxSubscriptionBuffer: 500,
	}
	var err error
	if c.Port, err = intEnv(getenv, "PDS_PORT", 2583); err != nil {
		return nil, err
	}
	if c.DevMode, err = boolEnv(getenv, "PDS_DEV_MODE", false); err != nil {
		return nil, err
	}
	local := c.Hostname == "localhost"
	if c.InviteRequired, err = boolEnv(getenv, "PDS_INVITE_REQUIRED", !local); err != nil {
		return nil, err
	}
	if ms, err := intEnv(getenv, "PDS_INVITE_INTERVAL", 0); err != nil {
		return nil, err
	} else if ms > 0 {
		c.InviteInterval = time.Duration(ms) * time.Millisecond
	}
	if ms, err := intEnv(getenv, "PDS_INVITE_EPOCH", 0); err != nil {
		return nil, err
	} else {
		c.InviteEpoch = time.UnixMilli(int64(ms))
	}
	if ms, err := intEnv(getenv, "PDS_REPO_BACKFILL_LIMIT_MS", 0); err != nil {
		return nil, err
	} else if ms > 0 {
		c.BackfillLimit = time.Duration(ms) * time.Millisecond
	}
	if c.MaxSubscriptionBuffer, err = intEnv(getenv, "PDS_MAX_SUBSCRIPTION_BUFFER", 500); err != nil {
		return nil, err
	}
	if err := c.loadRateLimits(getenv); err != nil {
		return nil, err
	}
	if err := c.loadIdentityResolution(getenv); err != nil {
		return nil, err
	}
	if err := c.loadBlobConfig(getenv); err != nil {
		return nil, err
	}
	if err := c.loadImportConfig(getenv); err != nil {
		return nil, err
	}
	if err := c.loadMemoryLimit(getenv); err != nil {
		return nil, err
	}
	if err := c.loadObservability(getenv); err != nil {
		return nil, err
	}
	if err := c.loadServices(getenv); err != nil {
		return nil, err
	}
	if err := c.loadNetworkDefaults(lookup, local); err != nil {
		return nil, err
	}
	if c.Backup, err = backup.ConfigFromEnv(getenv); err != nil {
		return nil, err
	}

	if _, err := syntax.ParseHandle(c.Hostname); err != nil && !local {
		return nil, fmt.Errorf("PDS_HOSTNAME %q is not a valid hostname", c.Hostname)
	}
	if err := c.loadTLS(getenv, local); err != nil {
		return nil, err
	}
	c.BindAddress = getenv("PDS_BIND_ADDRESS")
	if c.BindAddress == "" {
		c.BindAddress = "0.0.0.0"
		if local || c.TLS.Auto { // with built-in HTTPS the plain port serves only this machine (admin commands, health)
			c.BindAddress = "127.0.0.1"
		}
	}
	if local {
		c.PublicURL = fmt.Sprintf("http://localhost:%d", c.Port)
	} else {
		c.PublicURL = "https://" + c.Hostname
	}
	c.ServiceDID = getenv("PDS_SERVICE_DID")
	if c.ServiceDID == "" {
		c.ServiceDID = "did:web:" + c.Hostname
	}
	if _, err := syntax.ParseDID(c.ServiceDID); err != nil {
		return nil, fmt.Errorf("PDS_SERVICE_DID: %w", err)
	}
	if v := getenv("PDS_SERVICE_HANDLE_DOMAINS"); v != "" {
		c.ServiceHandleDomains = splitList(v)
	} else if local {
		c.ServiceHandleDomains = []string{".test"}
	} else {
		c.ServiceHandleDomains = []string{"." + c.Hostname}
	}
	for i, d := range c.ServiceHandleDomains {
		if !strings.HasPrefix(d, ".") {
			c.ServiceHandleDomains[i] = "." + d
		}
	}
	if c.RecoveryDIDKey != "" {
		if _, err := atcrypto.ParsePublicDIDKey(c.RecoveryDIDKey); err != nil {
			return nil, fmt.Errorf("PDS_RECOVERY_DID_KEY: %w", err)
		}
	}
	if !write {
		return c, nil
	}
	if err := os.MkdirAll(c.DataDirectory, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := c.loadSecrets(getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// secretsFile holds the secrets generated on first start.
type secretsFile struct {
	JWTSecret      string `json:"jwtSecret"`
	AdminPassword  string `json:"adminPassword"`
	RotationKeyHex string `json:"plcRotationKeyK256PrivateKeyHex"`
}

func (c *Config) loadSecrets(getenv Getenv) error {
	path := filepath.Join(c.DataDirectory, "secrets.json")
	var saved secretsFile
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &saved); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	changed := false
	if v := getenv("PDS_JWT_SECRET"); v != "" {
		c.JWTSecret = []byte(v)
	} else {
		if saved.JWTSecret == "" {
			saved.JWTSecret = randomHex(32)
			changed = true
			c.GeneratedSecrets = append(c.GeneratedSecrets, "PDS_JWT_SECRET")
		}
		c.JWTSecret = []byte(saved.JWTSecret)
	}
	if c.AdminPassword == "" {
		if saved.AdminPassword == "" {
			saved.AdminPassword = randomHex(16)
			changed = true
			c.GeneratedSecrets = append(c.GeneratedSecrets, "PDS_ADMIN_PASSWORD")
		}
		c.AdminPassword = saved.AdminPassword
	}
	keyHex := getenv("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX")
	if keyHex == "" {
		if saved.RotationKeyHex == "" {
			k, err := atcrypto.GeneratePrivateKeyK256()
			if err != nil {
				return err
			}
			saved.RotationKeyHex = hex.EncodeToString(k.Bytes())
			changed = true
			c.GeneratedSecrets = append(c.GeneratedSecrets, "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX")
		}
		keyHex = saved.RotationKeyHex
	}
	raw, err := hex.DecodeString(keyHex)
	if err != nil {
		return fmt.Errorf("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: not hex")
	}
	if c.RotationKey, err = atcrypto.ParsePrivateBytesK256(raw); err != nil {
		return fmt.Errorf("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: %w", err)
	}
	if !changed {
		return nil
	}
	b, _ := json.MarshalIndent(saved, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// IsServiceHandle reports whether handle is under one of the service handle domains.
func (c *Config) IsServiceHandle(handle string) bool {
	for _, d := range c.ServiceHandleDomains {
		if strings.HasSuffix(handle, d) {
			return true
		}
	}
	return false
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func intEnv(getenv Getenv, name string, def int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s: not an integer: %q", name, v)
	}
	return n, nil
}

func boolEnv(getenv Getenv, name string, def bool) (bool, error) {
	switch strings.ToLower(getenv(name)) {
	case "":
		return def, nil
	case "true", "1", "yes":
		return true, nil
	case "false", "0", "no":
		return false, nil
	}
	return false, fmt.Errorf("%s: not a boolean: %q", name, getenv(name))
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // the OS random source does not fail on Linux
	}
	return hex.EncodeToString(b)
}
