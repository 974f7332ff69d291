package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one `pds` subcommand. Names may have several words ("account list"); the longest name that
// matches the start of the arguments wins, so adding a command is adding a row to commands.
type command struct {
	name    string
	args    string // usage synopsis after the name
	summary string
	run     func(ctx context.Context, cl *cli, args []string) error
}

// cli is what a command gets: its output streams and the environment (tests pass their own).
type cli struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string
}

// commands is the command table. Other subcommands (blob migration, account export/import) add rows here.
var commands = []command{
	{name: "serve", summary: "start the PDS (configuration: PDS_* environment variables, see README.md)",
		run: func(ctx context.Context, cl *cli, args []string) error { return serve() }},
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
	{name: "blobs migrate", args: "FROM TO [--verify] [--concurrency N]", summary: "copy every blob between blob stores (disk, disk:PATH, s3), resumable, hash-verified (blobs.go)", run: runBlobsMigrate},
	{name: "migrate", args: "--from URL --identifier H [--to URL] [--password P] [--plc-token T] [--state FILE]", summary: "move a user's account from another PDS to this one with their credentials, resumable (migrate.go, docs/migration.md)", run: runMigrate},
	{name: "account export", args: "DID|HANDLE FILE [--deactivate] [--to URL --to-rotation-key KEY]", summary: "write an account's archive (repo, blobs, preferences, keys) to move it to another server of yours", run: runAccountExport},
	{name: "account import", args: "FILE", summary: "host an account from an archive of `account export` (activated when its DID points here)", run: runAccountImport},
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
`

func usageText() string {
	var b strings.Builder
	b.WriteString("usage: pds <command> [flags]\n\ncommands:\n")
	rows := append([]command(nil), commands...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	for _, c := range rows {
		left := c.name
		if c.args != "" {
			left += " " + c.args
		}
		fmt.Fprintf(&b, "  %s\n      %s\n", left, c.summary)
	}
	b.WriteString(commonHelp)
	return b.String()
}

// findCommand picks the command whose name is the longest prefix (in words) of args.
func findCommand(args []string) (*command, []string) {
	var best *command
	bestLen := 0
	for i := range commands {
		words := strings.Fields(commands[i].name)
		if len(words) > len(args) || len(words) <= bestLen {
			continue
		}
		match := true
		for j, w := range words {
			if args[j] != w {
				match = false
				break
			}
		}
		if match {
			best, bestLen = &commands[i], len(words)
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, args[bestLen:]
}

// run executes the command line and returns the exit code.
func run(ctx context.Context, cl *cli, args []string) int {
	if len(args) == 0 {
		args = []string{"serve"}
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(cl.stdout, usageText())
		return 0
	}
	cmd, rest := findCommand(args)
	if cmd == nil {
		fmt.Fprintf(cl.stderr, "pds: unknown command %q\n\n%s", strings.Join(args, " "), usageText())
		return 2
	}
	if err := cmd.run(ctx, cl, rest); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintf(cl.stderr, "pds %s: %v\n", cmd.name, err)
		return 1
	}
	return 0
}

// parseFlags parses flags that may come before, between or after positional arguments, and returns the
// positional ones.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// flagSet is a subcommand's flag set: errors and -h go to stderr; run turns them into exit codes (-h 0, a
// bad flag 1).
func (cl *cli) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(cl.stderr)
	return fs
}

func defaultCLI() *cli {
	return &cli{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, getenv: os.Getenv}
}
