package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// command is one `pds` subcommand. Names may have several words ("account list"); the longest name that
// matches the start of the arguments wins, so adding a command is adding a row to commands.
type command struct {
	name    string
	args    string // usage synopsis after the name
	summary string
	help    string // longer description for --help (optional)
	run     func(ctx context.Context, cl *cli, args []string) error
}

// cli is what a command gets: its output streams and the environment (tests pass their own).
type cli struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string
	lookupenv      func(string) (string, bool) // nil: getenv, with "" as unset
	lastFlags      *flag.FlagSet               // the flag set the command defined (cli.go reads it for help)
}

// commands is the command table. Other subcommands (blob migration, account export/import) add rows here.
var commands = []command{
	{name: "serve", args: "[--env-file FILE]", summary: "start the PDS (configuration: PDS_* environment variables, and a pds.env file for those not set; see README.md)",
		run: runServe},
	{name: "create-invite", args: "[N]", summary: "create an invite code usable N times (default 1); same as `invite create --uses N`",
		run: runCreateInvite},
	{name: "invite create", args: "[--uses N] [--count N] [--for DID,...]", summary: "create invite codes", run: runInviteCreate},
	{name: "account list", args: "[--limit N] [--email PREFIX]", summary: "list accounts: handle, DID, email, status, created", run: runAccountList},
	{name: "account create", args: "--handle H --email E [--password P] [--invite CODE]", summary: "create an account (prints its password)", run: runAccountCreate},
	{name: "account delete", args: "DID|HANDLE [--yes]", summary: "delete an account and everything it has", run: runAccountDelete},
	{name: "account takedown", args: "DID|HANDLE [--ref REF]", summary: "take an account down (sessions end, repo hidden)", run: runAccountTakedown(true)},
	{name: "account untakedown", args: "DID|HANDLE", summary: "reverse a takedown", run: runAccountTakedown(false)},
	{name: "account reset-password", args: "DID|HANDLE [--password P]", summary: "set a new password (prints it) and end all sessions", run: runAccountResetPassword},
	{name: "request-crawl", args: "[RELAY_HOST ...]", summary: "ask relays (default PDS_CRAWLERS) to crawl this PDS", run: runRequestCrawl},
	{name: "blobs migrate", args: "FROM TO [--verify] [--concurrency N]", summary: "copy every blob between blob stores (disk, disk:PATH, s3), resumable, hash-verified (blobs.go)", help: blobsMigrateHelp, run: runBlobsMigrate},
	{name: "migrate", args: "--from URL --identifier H [--to URL] [--password P] [--plc-token T] [--state FILE]", summary: "move a user's account from another PDS to this one with their credentials, resumable (migrate.go, docs/migration.md)", run: runMigrate},
	{name: "account export", args: "DID|HANDLE FILE [--deactivate] [--to URL --to-rotation-key KEY]", summary: "write an account's archive (repo, blobs, preferences, keys) to move it to another server of yours", run: runAccountExport},
	{name: "account import", args: "FILE", summary: "host an account from an archive of `account export` (activated when its DID points here)", run: runAccountImport},
	{name: "health", args: "[--server URL] [--timeout D]", summary: "exit 0 if the running server answers /xrpc/_health (for container health checks), else 1", run: runHealth},
	{name: "doctor", args: "[--env-file F] [--mail-to ADDR] [--dns-server H:P] [--https-port N] [--ca-certs F]", summary: "check a configuration before and after going live: DNS, HTTPS, PLC/AppView/crawlers, SMTP, disk, data directory", run: runDoctor},
	{name: "version", summary: "print the version", run: runVersion},
	{name: "backup now", args: "[--json]", summary: "back the data directory up once to PDS_BACKUP_URL (the server does it every PDS_BACKUP_INTERVAL; docs/backups.md)", run: runBackupNow},
	{name: "backup list", args: "[--json]", summary: "list the backup's rounds: time, firehose seq, accounts, blobs", run: runBackupList},
	{name: "backup verify", args: "[ROUND]", summary: "restore a round (default the newest) into a temp dir and check every repository, signature, record index and blob", run: runBackupVerify},
	{name: "restore", args: "--to DIR [--from URL] [--at TIME]", summary: "write a data directory from a backup (offline; PDS_BACKUP_* variables), then start the server on it", run: runRestore},
	{name: "plc rotation-key", summary: "print this server's PLC rotation key (did:key), for `account export --to-rotation-key`", run: runRotationKey},
}

const commonHelp = `
Admin commands talk to a running server through its admin API:
  --server URL            default http://127.0.0.1:$PDS_PORT (env PDS_ADMIN_SERVER_URL overrides)
  --admin-password PW     default $PDS_ADMIN_PASSWORD, else adminPassword in $PDS_DATA_DIRECTORY/secrets.json
  --json                  machine-readable output

Help: pds help COMMAND..., or --help on any command. Shell completion: pds completion bash|zsh|fish.
`

// run runs the command line on the command tree (cli.go) and maps the outcome to an exit code: 0, 1 for a
// runtime error, 2 for a usage error.
func run(ctx context.Context, cl *cli, args []string) int {
	err := newApp(cl).Run(ctx, append([]string{"pds"}, args...))
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	name := "pds"
	var ce *commandError
	if errors.As(err, &ce) {
		name, err = ce.name, ce.err
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(cl.stderr, "%s: %v (see '%s --help')\n", name, ue.error, name)
		return 2
	}
	fmt.Fprintf(cl.stderr, "%s: %v\n", name, err)
	return 1
}

// parseFlags parses flags that may come before, between or after positional arguments, and returns the
// positional ones. A bad flag is a usage error (exit 2); -h/--help returns flag.ErrHelp, and the dispatcher
// prints the command's help to stdout (cli.go).
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// flagSet is a subcommand's flag set. It prints nothing itself: errors and help go through the dispatcher,
// which finds the flag set's definitions in cl.lastFlags (for help, and for the tree's shell completion).
func (cl *cli) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	cl.lastFlags = fs
	return fs
}

func defaultCLI() *cli {
	return &cli{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, getenv: os.Getenv, lookupenv: os.LookupEnv}
}
