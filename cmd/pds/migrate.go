package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
	"github.com/dustin/go-humanize"

	"github.com/pdsgo/pds/migrate"
	"github.com/pdsgo/pds/pds/accounts"
)

// Account moves: `pds migrate` (a user's account from any PDS to this one, over the public API, package
// migrate) and `pds account export` / `pds account import` (an operator's archive between its own servers,
// pds/accounts/archive.go). See docs/migration.md.

// ---- pds migrate ----

func runMigrate(ctx context.Context, cl *cli, args []string) error {
	fs := cl.flagSet("migrate")
	var o migrate.Options
	fs.StringVar(&o.OldPDS, "from", "", "URL of the PDS the account is on now (required)")
	fs.StringVar(&o.NewPDS, "to", "", "URL of the PDS to move to (default this server: $PDS_ADMIN_SERVER_URL or http://127.0.0.1:$PDS_PORT)")
	fs.StringVar(&o.Identifier, "identifier", "", "handle, DID or email of the account (required)")
	fs.StringVar(&o.Password, "password", "", "the account's password (default $PDS_MIGRATE_PASSWORD, else asked on stdin)")
	fs.StringVar(&o.AuthFactorToken, "auth-factor-token", "", "the old PDS's emailed sign-in code, if it asks for one")
	fs.StringVar(&o.NewHandle, "new-handle", "", "handle at the new PDS (default: the current one)")
	fs.StringVar(&o.NewEmail, "new-email", "", "email at the new PDS (default: the current one)")
	fs.StringVar(&o.NewPassword, "new-password", "", "password at the new PDS (default: the same)")
	fs.StringVar(&o.InviteCode, "invite-code", "", "invite code, if the new PDS requires one")
	fs.StringVar(&o.PLCToken, "plc-token", "", "the token the old PDS emailed for the PLC operation (else it is requested and asked on stdin)")
	fs.StringVar(&o.StateFile, "state", "pds-migrate.json", "progress file: a run that stops resumes from it (removed on success)")
	fs.IntVar(&o.BlobConcurrency, "concurrency", 4, "blobs copied at once")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.OldPDS == "" || o.Identifier == "" {
		return usageError{errors.New("--from and --identifier are required")}
	}
	if o.NewPDS == "" {
		o.NewPDS = localServerURL(cl)
	}
	if o.Password == "" {
		o.Password = cl.getenv("PDS_MIGRATE_PASSWORD")
	}
	if o.Password == "" {
		fmt.Fprintf(cl.stderr, "password for %s at %s: ", o.Identifier, o.OldPDS)
		pw, err := readLine(cl.stdin)
		if strings.TrimSpace(pw) == "" {
			return fmt.Errorf("no password given (%v)", err)
		}
		o.Password = strings.TrimSpace(pw)
	}
	o.PromptPLCToken = func(context.Context) (string, error) {
		fmt.Fprintf(cl.stderr, "The old PDS has emailed a confirmation code for the identity update.\ncode: ")
		tok, err := readLine(cl.stdin)
		if strings.TrimSpace(tok) == "" {
			if err == nil || errors.Is(err, io.EOF) {
				return "", migrate.ErrPLCTokenNeeded
			}
			return "", err
		}
		return tok, nil
	}
	o.Progress = cl.stderr
	res, err := migrate.Run(ctx, o)
	if errors.Is(err, migrate.ErrPLCTokenNeeded) {
		return fmt.Errorf("%w: pds migrate ... --plc-token CODE (progress is kept in %s)", err, o.StateFile)
	}
	if err != nil {
		return fmt.Errorf("%w (progress is kept in %s: run the same command again to resume)", err, o.StateFile)
	}
	os.Remove(o.StateFile)
	if *asJSON {
		return printJSON(cl.stdout, res)
	}
	fmt.Fprintf(cl.stdout, "%s (%s) moved to %s: %d records, %d blobs (%d copied), %d preferences\n",
		res.DID, res.Handle, o.NewPDS, res.Records, res.Blobs, res.BlobsCopied, res.Preferences)
	if len(res.BlobsMissing) > 0 {
		fmt.Fprintf(cl.stdout, "%d blobs the records reference were missing at the old PDS too: %s\n", len(res.BlobsMissing), strings.Join(res.BlobsMissing, ", "))
	}
	return nil
}

// ---- pds account export / import ----

func runAccountExport(ctx context.Context, cl *cli, args []string) error {
	fs, af := cl.adminFlagSet("account export")
	deactivate := fs.Bool("deactivate", false, "deactivate the account first if it is active (required for an active account)")
	to := fs.String("to", "", "URL of the server the account moves to: the archive then carries the PLC operation that hands the DID over")
	toKey := fs.String("to-rotation-key", "", "that server's PLC rotation key (did:key; `pds plc rotation-key` there prints it)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return errors.New("usage: pds account export DID|HANDLE FILE [--deactivate] [--to URL --to-rotation-key KEY]")
	}
	if (*to == "") != (*toKey == "") {
		return errors.New("--to and --to-rotation-key go together")
	}
	c, did, err := af.account(ctx, cl, pos[0])
	if err != nil {
		return err
	}
	file := pos[1]
	body, err := json.Marshal(map[string]any{"did": did, "deactivate": *deactivate || *to != "", "targetUrl": *to, "targetRotationKey": *toKey})
	if err != nil {
		return err
	}
	resp, err := c.stream(ctx, http.MethodPost, "org.pdsgo.admin.exportAccount", "application/json", strings.NewReader(string(body)), int64(len(body)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// The archive holds the signing key and password hashes: owner-only, complete or not at all.
	tmp, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".partial-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, resp.Body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the archive: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return err
	}
	return report(cl, af.json, map[string]any{"did": did, "file": file, "bytes": n},
		"%s exported to %s (%s); it holds the account's signing key and password hash: keep it secret\n", did, file, humanize.IBytes(uint64(n)))
}

func runAccountImport(ctx context.Context, cl *cli, args []string) error {
	fs, af := cl.adminFlagSet("account import")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: pds account import FILE")
	}
	c, err := af.client(cl)
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	resp, err := c.stream(ctx, http.MethodPost, "org.pdsgo.admin.importAccount", "application/x-tar", f, fi.Size())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out accounts.ImportAccountResult
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return err
	}
	if af.json {
		return printJSON(cl.stdout, importReport(&out))
	}
	fmt.Fprintf(cl.stdout, "%s (%s) imported: %d records, %d blobs, %d preferences, %d app passwords\n",
		out.DID, out.Handle, out.Records, out.Blobs, out.Preferences, out.AppPasswords)
	switch {
	case out.Activated:
		fmt.Fprintf(cl.stdout, "the account is active here (PLC operation submitted: %v)\n", out.PLCSubmitted)
	default:
		fmt.Fprintf(cl.stdout, "the account is deactivated: %s\n", out.Note)
	}
	return nil
}

// stream makes an admin call whose body or answer is not JSON, or too large to hold: the caller closes the
// answer's body.
func (c *adminClient) stream(ctx context.Context, method, nsid, contentType string, body io.Reader, length int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/xrpc/"+nsid, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	req.ContentLength = length
	req.SetBasicAuth("admin", c.password)
	hc := *c.http
	hc.Timeout = 0 // archives can be large: the context bounds the call
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		xe := &xrpcError{Status: resp.StatusCode}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(raw, xe) != nil || xe.Name == "" {
			xe.Name = http.StatusText(resp.StatusCode)
		}
		return nil, xe
	}
	return resp, nil
}

// ---- pds plc rotation-key ----

// runRotationKey prints this server's PLC rotation key as a did:key (from the environment, or the data
// directory's secrets.json; nothing is generated).
func runRotationKey(ctx context.Context, cl *cli, args []string) error {
	if rest, err := parseFlags(cl.flagSet("plc rotation-key"), args); err != nil {
		return err
	} else if len(rest) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", rest[0])}
	}
	keyHex := cl.getenv("PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX")
	if keyHex == "" {
		dir := cl.getenv("PDS_DATA_DIRECTORY")
		if dir == "" {
			dir = "./data"
		}
		raw, err := os.ReadFile(filepath.Join(dir, "secrets.json"))
		if err != nil {
			return fmt.Errorf("no PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX and no secrets.json: %w", err)
		}
		var s struct {
			Key string `json:"plcRotationKeyK256PrivateKeyHex"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		keyHex = s.Key
	}
	raw, err := hex.DecodeString(keyHex)
	if err != nil {
		return errors.New("the rotation key is not hex")
	}
	key, err := atcrypto.ParsePrivateBytesK256(raw)
	if err != nil {
		return err
	}
	pub, err := key.PublicKey()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(cl.stdout, pub.DIDKey())
	return err
}

// importReport is the -json output of an account import: the server's answer, with "note" always present
// (the server omits it when empty; scripts read it).
func importReport(res *accounts.ImportAccountResult) any {
	return struct {
		*accounts.ImportAccountResult
		Note string `json:"note"`
	}{res, res.Note}
}
