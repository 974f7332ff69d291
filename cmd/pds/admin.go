package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// adminClient calls a running server's XRPC API with the admin password (HTTP Basic admin:<password>).
type adminClient struct {
	base     string
	password string
	http     *http.Client
}

// xrpcError is an XRPC error answer.
type xrpcError struct {
	Status  int
	Name    string `json:"error"`
	Message string `json:"message"`
}

func (e *xrpcError) Error() string {
	if e.Message != "" {
		return fmt.Sprintf("%s: %s (HTTP %d)", e.Name, e.Message, e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Name, e.Status)
}

// adminFlags are the flags every admin command takes.
type adminFlags struct {
	server, password string
	json             bool
}

// adminFlagSet is an admin command's flag set, with the flags every admin command takes already registered.
func (cl *cli) adminFlagSet(name string) (*flag.FlagSet, *adminFlags) {
	fs := cl.flagSet(name)
	f := &adminFlags{}
	fs.StringVar(&f.server, "server", "", "server URL (default http://127.0.0.1:$PDS_PORT)")
	fs.StringVar(&f.password, "admin-password", "", "admin password (default $PDS_ADMIN_PASSWORD or the data directory's secrets.json)")
	fs.BoolVar(&f.json, "json", false, "print JSON")
	return fs, f
}

// parseAccount parses an account command's flags and its one argument (DID or handle), then resolves it.
func (f *adminFlags) parseAccount(ctx context.Context, cl *cli, fs *flag.FlagSet, args []string) (*adminClient, string, error) {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, "", err
	}
	if len(pos) != 1 {
		return nil, "", usageError{errors.New("give one DID or handle")}
	}
	return f.account(ctx, cl, pos[0])
}

// account builds the admin client and resolves the account an admin command names (a DID or a handle).
func (f *adminFlags) account(ctx context.Context, cl *cli, id string) (*adminClient, string, error) {
	c, err := f.client(cl)
	if err != nil {
		return nil, "", err
	}
	did, err := c.resolveDID(ctx, id)
	if err != nil {
		return nil, "", err
	}
	return c, did, nil
}

// localServerURL is the address admin commands use for this server.
func localServerURL(cl *cli) string {
	if u := cl.getenv("PDS_ADMIN_SERVER_URL"); u != "" {
		return u
	}
	port := cl.getenv("PDS_PORT")
	if port == "" {
		port = "2583"
	}
	return "http://127.0.0.1:" + port
}

// client builds the admin client from flags, then the server's own environment. It never creates or changes
// configuration: a missing password is an error, not a freshly generated one.
func (f *adminFlags) client(cl *cli) (*adminClient, error) {
	base := f.server
	if base == "" {
		base = localServerURL(cl)
	}
	pw := f.password
	if pw == "" {
		pw = cl.getenv("PDS_ADMIN_PASSWORD")
	}
	if pw == "" {
		dir := cl.getenv("PDS_DATA_DIRECTORY")
		if dir == "" {
			dir = "./data"
		}
		raw, err := os.ReadFile(filepath.Join(dir, "secrets.json"))
		if err == nil {
			var s struct {
				AdminPassword string `json:"adminPassword"`
			}
			if json.Unmarshal(raw, &s) == nil {
				pw = s.AdminPassword
			}
		}
	}
	if pw == "" {
		return nil, errors.New("no admin password: pass --admin-password or set PDS_ADMIN_PASSWORD")
	}
	return &adminClient{base: strings.TrimRight(base, "/"), password: pw, http: &http.Client{Timeout: 60 * time.Second}}, nil
}

func (c *adminClient) call(ctx context.Context, method, nsid string, params url.Values, body, out any) error {
	u := c.base + "/xrpc/" + nsid
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth("admin", c.password)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		xe := &xrpcError{Status: resp.StatusCode}
		if json.Unmarshal(raw, xe) != nil || xe.Name == "" {
			xe.Name = http.StatusText(resp.StatusCode)
		}
		return xe
	}
	if out != nil && len(raw) > 0 {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func (c *adminClient) query(ctx context.Context, nsid string, params url.Values, out any) error {
	return c.call(ctx, http.MethodGet, nsid, params, nil, out)
}

func (c *adminClient) procedure(ctx context.Context, nsid string, body, out any) error {
	return c.call(ctx, http.MethodPost, nsid, nil, body, out)
}

// resolveDID turns a handle into the account's DID (a DID is returned as it is).
func (c *adminClient) resolveDID(ctx context.Context, id string) (string, error) {
	id = strings.TrimSpace(id)
	if strings.HasPrefix(id, "did:") {
		return id, nil
	}
	var out struct {
		DID string `json:"did"`
	}
	handle := strings.ToLower(strings.TrimPrefix(id, "@"))
	err := c.query(ctx, "com.atproto.identity.resolveHandle", url.Values{"handle": {handle}}, &out)
	if err == nil {
		return out.DID, nil
	}
	// resolveHandle hides taken-down and deactivated accounts; the admin list does not.
	cursor := ""
	for {
		q := url.Values{"limit": {"100"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Cursor   string        `json:"cursor"`
			Accounts []accountView `json:"accounts"`
		}
		if lerr := c.query(ctx, "com.atproto.admin.searchAccounts", q, &page); lerr != nil {
			return "", fmt.Errorf("resolving handle %s: %w", id, err)
		}
		for _, a := range page.Accounts {
			if a.Handle == handle {
				return a.DID, nil
			}
		}
		if page.Cursor == "" || len(page.Accounts) == 0 {
			return "", fmt.Errorf("no account has the handle %s", handle)
		}
		cursor = page.Cursor
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// randomPassword is a password for accounts created or reset from the command line.
func randomPassword() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 24)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// ---- invites ----

func runCreateInvite(ctx context.Context, cl *cli, args []string) error {
	fs, af := cl.adminFlagSet("create-invite")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	uses := 1
	if len(pos) > 0 {
		if uses, err = strconv.Atoi(pos[0]); err != nil || uses < 1 {
			return usageError{errors.New("N must be a positive integer")}
		}
	}
	return createInvites(ctx, cl, af, uses, 1, nil)
}

func runInviteCreate(ctx context.Context, cl *cli, args []string) error {
	fs, af := cl.adminFlagSet("invite create")
	uses := fs.Int("uses", 1, "how many accounts each code can create")
	count := fs.Int("count", 1, "how many codes")
	forAccounts := fs.String("for", "", "comma-separated DIDs the codes belong to (default: admin)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *uses < 1 || *count < 1 {
		return errors.New("--uses and --count must be at least 1")
	}
	var accts []string
	for _, a := range strings.Split(*forAccounts, ",") {
		if a = strings.TrimSpace(a); a != "" {
			accts = append(accts, a)
		}
	}
	return createInvites(ctx, cl, af, *uses, *count, accts)
}

func createInvites(ctx context.Context, cl *cli, af *adminFlags, uses, count int, forAccounts []string) error {
	c, err := af.client(cl)
	if err != nil {
		return err
	}
	body := map[string]any{"useCount": uses, "codeCount": count}
	if len(forAccounts) > 0 {
		body["forAccounts"] = forAccounts
	}
	var out struct {
		Codes []struct {
			Account string   `json:"account"`
			Codes   []string `json:"codes"`
		} `json:"codes"`
	}
	if err := c.procedure(ctx, "com.atproto.server.createInviteCodes", body, &out); err != nil {
		return err
	}
	if af.json {
		return printJSON(cl.stdout, out.Codes)
	}
	for _, g := range out.Codes {
		for _, code := range g.Codes {
			fmt.Fprintln(cl.stdout, code)
		}
	}
	return nil
}

// ---- accounts ----

type accountView struct {
	DID           string `json:"did"`
	Handle        string `json:"handle"`
	Email         string `json:"email,omitempty"`
	IndexedAt     string `json:"indexedAt"`
	DeactivatedAt string `json:"deactivatedAt,omitempty"`
}

type listedAccount struct {
	DID       string `json:"did"`
	Handle    string `json:"handle"`
	Email     string `json:"email"`
	Status    string `json:"status"`
	CreatedAt string `json:"createdAt"`
}

func runAccountList(ctx context.Context, cl *cli, args []string) error {
	fs, af := cl.adminFlagSet("account list")
	limit := fs.Int("limit", 0, "stop after this many accounts (0: all)")
	email := fs.String("email", "", "only accounts whose email starts with this")
	pageSize := fs.Int("page-size", 100, "accounts per request")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := af.client(cl)
	if err != nil {
		return err
	}
	if *pageSize < 1 || *pageSize > 100 {
		return errors.New("--page-size must be 1 to 100")
	}
	var all []listedAccount
	cursor := ""
	for {
		q := url.Values{"limit": {strconv.Itoa(*pageSize)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if *email != "" {
			q.Set("email", *email)
		}
		var page struct {
			Cursor   string        `json:"cursor"`
			Accounts []accountView `json:"accounts"`
		}
		if err := c.query(ctx, "com.atproto.admin.searchAccounts", q, &page); err != nil {
			return err
		}
		rows, err := c.withStatus(ctx, page.Accounts)
		if err != nil {
			return err
		}
		all = append(all, rows...)
		if *limit > 0 && len(all) >= *limit {
			all = all[:*limit]
			break
		}
		if page.Cursor == "" || len(page.Accounts) == 0 {
			break
		}
		cursor = page.Cursor
	}
	if af.json {
		if all == nil {
			all = []listedAccount{}
		}
		return printJSON(cl.stdout, all)
	}
	tw := tabwriter.NewWriter(cl.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HANDLE\tDID\tEMAIL\tSTATUS\tCREATED")
	for _, a := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Handle, a.DID, orDash(a.Email), a.Status, a.CreatedAt)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// withStatus adds each account's status (active, deactivated, takendown), asking the server a few at a time.
func (c *adminClient) withStatus(ctx context.Context, accts []accountView) ([]listedAccount, error) {
	out := make([]listedAccount, len(accts))
	errs := make([]error, len(accts))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, a := range accts {
		created := a.IndexedAt
		if t, err := time.Parse(time.RFC3339Nano, a.IndexedAt); err == nil {
			created = t.UTC().Format("2006-01-02 15:04")
		}
		out[i] = listedAccount{DID: a.DID, Handle: a.Handle, Email: a.Email, CreatedAt: created, Status: "active"}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var st struct {
				Takedown    struct{ Applied bool } `json:"takedown"`
				Deactivated struct{ Applied bool } `json:"deactivated"`
			}
			if err := c.query(ctx, "com.atproto.admin.getSubjectStatus", url.Values{"did": {a.DID}}, &st); err != nil {
				errs[i] = err
				return
			}
			switch {
			case st.Takedown.Applied:
				out[i].Status = "takendown"
			case st.Deactivated.Applied:
				out[i].Status = "deactivated"
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func runAccountCreate(ctx context.Context, cl *cli, args []string) error {
	fs, af := cl.adminFlagSet("account create")
	handle := fs.String("handle", "", "handle, e.g. alice.example.com")
	email := fs.String("email", "", "email address")
	password := fs.String("password", "", "password (default: a random one, printed)")
	invite := fs.String("invite", "", "invite code (default: one is created when the server requires it)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	// pdsadmin's positional form: account create EMAIL HANDLE.
	if *email == "" && len(pos) > 0 {
		*email = pos[0]
	}
	if *handle == "" && len(pos) > 1 {
		*handle = pos[1]
	}
	if *handle == "" || *email == "" {
		return usageError{errors.New("--handle and --email are required")}
	}
	c, err := af.client(cl)
	if err != nil {
		return err
	}
	pw := *password
	if pw == "" {
		pw = randomPassword()
	}
	code := *invite
	if code == "" {
		var desc struct {
			InviteCodeRequired bool `json:"inviteCodeRequired"`
		}
		if err := c.query(ctx, "com.atproto.server.describeServer", nil, &desc); err != nil {
			return err
		}
		if desc.InviteCodeRequired {
			var out struct {
				Code string `json:"code"`
			}
			if err := c.procedure(ctx, "com.atproto.server.createInviteCode", map[string]any{"useCount": 1}, &out); err != nil {
				return err
			}
			code = out.Code
		}
	}
	body := map[string]any{"handle": *handle, "email": *email, "password": pw}
	if code != "" {
		body["inviteCode"] = code
	}
	var out struct {
		DID    string `json:"did"`
		Handle string `json:"handle"`
	}
	if err := c.procedure(ctx, "com.atproto.server.createAccount", body, &out); err != nil {
		return err
	}
	if af.json {
		return printJSON(cl.stdout, map[string]string{"did": out.DID, "handle": out.Handle, "email": *email, "password": pw})
	}
	tw := tabwriter.NewWriter(cl.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Account created\nHandle\t%s\nDID\t%s\nEmail\t%s\nPassword\t%s\n", out.Handle, out.DID, *email, pw)
	return tw.Flush()
}

func runAccountDelete(ctx context.Context, cl *cli, args []string) error {
	fs, af := cl.adminFlagSet("account delete")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	c, did, err := af.parseAccount(ctx, cl, fs, args)
	if err != nil {
		return err
	}
	if !*yes {
		fmt.Fprintf(cl.stderr, "This deletes %s and all its data, for good. Type the DID to confirm: ", did)
		line, _ := readLine(cl.stdin)
		if strings.TrimSpace(line) != did {
			return errors.New("not confirmed; nothing deleted")
		}
	}
	if err := c.procedure(ctx, "com.atproto.admin.deleteAccount", map[string]any{"did": did}, nil); err != nil {
		return err
	}
	return report(cl, af.json, map[string]string{"did": did, "result": "deleted"}, "%s deleted\n", did)
}

func readLine(r io.Reader) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for {
		n, err := r.Read(one)
		if n == 1 {
			if one[0] == '\n' {
				return string(b), nil
			}
			b = append(b, one[0])
		}
		if err != nil {
			return string(b), err
		}
	}
}

func report(cl *cli, asJSON bool, v any, format string, args ...any) error {
	if asJSON {
		return printJSON(cl.stdout, v)
	}
	_, err := fmt.Fprintf(cl.stdout, format, args...)
	return err
}

func runAccountTakedown(apply bool) func(ctx context.Context, cl *cli, args []string) error {
	return func(ctx context.Context, cl *cli, args []string) error {
		name := "account takedown"
		if !apply {
			name = "account untakedown"
		}
		fs, af := cl.adminFlagSet(name)
		ref := new(string)
		if apply { // untakedown takes no reference
			fs.StringVar(ref, "ref", "", "takedown reference (e.g. a ticket); default the current time")
		}
		c, did, err := af.parseAccount(ctx, cl, fs, args)
		if err != nil {
			return err
		}
		td := map[string]any{"applied": apply}
		if apply && *ref != "" {
			td["ref"] = *ref
		}
		body := map[string]any{"subject": map[string]any{"$type": "com.atproto.admin.defs#repoRef", "did": did}, "takedown": td}
		if err := c.procedure(ctx, "com.atproto.admin.updateSubjectStatus", body, nil); err != nil {
			return err
		}
		result := "taken down"
		if !apply {
			result = "restored"
		}
		return report(cl, af.json, map[string]string{"did": did, "result": result}, "%s %s\n", did, result)
	}
}

func runAccountResetPassword(ctx context.Context, cl *cli, args []string) error {
	fs, af := cl.adminFlagSet("account reset-password")
	password := fs.String("password", "", "new password (default: a random one, printed)")
	c, did, err := af.parseAccount(ctx, cl, fs, args)
	if err != nil {
		return err
	}
	pw := *password
	if pw == "" {
		pw = randomPassword()
	}
	if err := c.procedure(ctx, "com.atproto.admin.updateAccountPassword", map[string]any{"did": did, "password": pw}, nil); err != nil {
		return err
	}
	return report(cl, af.json, map[string]string{"did": did, "password": pw}, "New password for %s: %s\n", did, pw)
}

// ---- relays ----

func runRequestCrawl(ctx context.Context, cl *cli, args []string) error {
	fs := cl.flagSet("request-crawl")
	asJSON := fs.Bool("json", false, "print JSON")
	hostname := fs.String("hostname", "", "this PDS's public hostname (default $PDS_HOSTNAME)")
	relays, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *hostname == "" {
		*hostname = cl.getenv("PDS_HOSTNAME")
	}
	if *hostname == "" {
		return errors.New("no hostname: pass --hostname or set PDS_HOSTNAME")
	}
	if len(relays) == 0 {
		for _, r := range strings.Split(cl.getenv("PDS_CRAWLERS"), ",") {
			if r = strings.TrimSpace(r); r != "" {
				relays = append(relays, r)
			}
		}
	}
	if len(relays) == 0 {
		return errors.New("no relays: name them or set PDS_CRAWLERS")
	}
	client := &http.Client{Timeout: 30 * time.Second}
	type result struct {
		Relay string `json:"relay"`
		OK    bool   `json:"ok"`
		Error string `json:"error,omitempty"`
	}
	var results []result
	failed := 0
	for _, relay := range relays {
		base := relay
		if !strings.Contains(base, "://") {
			base = "https://" + base
		}
		body, _ := json.Marshal(map[string]string{"hostname": *hostname})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/xrpc/com.atproto.sync.requestCrawl", bytes.NewReader(body))
		res := result{Relay: relay}
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			var resp *http.Response
			if resp, err = client.Do(req); err == nil {
				msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
				}
			}
		}
		if err != nil {
			res.Error = err.Error()
			failed++
		} else {
			res.OK = true
		}
		results = append(results, res)
	}
	if *asJSON {
		if err := printJSON(cl.stdout, results); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			if r.OK {
				fmt.Fprintf(cl.stdout, "%s: crawl requested for %s\n", r.Relay, *hostname)
			} else {
				fmt.Fprintf(cl.stdout, "%s: failed: %s\n", r.Relay, r.Error)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d relays failed", failed, len(relays))
	}
	return nil
}
