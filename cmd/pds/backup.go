package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pdsgo/pds/pds/backup"
)

// Backups (pds/backup, docs/backups.md): `pds backup now|list|verify` and `pds restore` read the PDS_BACKUP_*
// variables the server uses; they work on the bucket and the data directory directly, with or without a
// running server.

// backupConfig reads PDS_BACKUP_*; from, if set, replaces PDS_BACKUP_URL.
func backupConfig(cl *cli, from string) (*backup.Config, error) {
	getenv := cl.getenv
	if from != "" {
		getenv = func(k string) string {
			if k == "PDS_BACKUP_URL" {
				return from
			}
			return cl.getenv(k)
		}
	}
	cfg, err := backup.ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, errors.New("no backup location: set PDS_BACKUP_URL (and PDS_BACKUP_KEY)")
	}
	return cfg, nil
}

// backupSource is the data directory the environment names, as the server sees it.
func backupSource(cl *cli) backup.Source {
	dir := cl.getenv("PDS_DATA_DIRECTORY")
	if dir == "" {
		dir = "./data"
	}
	src := backup.Source{DataDirectory: dir}
	if cl.getenv("PDS_BLOBSTORE_S3_BUCKET") == "" {
		src.BlobDirectory = cl.getenv("PDS_BLOBSTORE_DISK_LOCATION")
		if src.BlobDirectory == "" {
			src.BlobDirectory = filepath.Join(dir, "blobs")
		}
	}
	return src
}

// openBackupCommand parses the flags of a backup command that takes only --json and opens the backup named by
// the PDS_BACKUP_* variables (create: a first round may set the location up).
func openBackupCommand(ctx context.Context, cl *cli, name string, args []string, create bool) (*backup.Backup, bool, error) {
	fs := cl.flagSet(name)
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parseFlags(fs, args); err != nil {
		return nil, false, err
	} else if len(pos) != 0 {
		return nil, false, errors.New("takes no arguments")
	}
	cfg, err := backupConfig(cl, "")
	if err != nil {
		return nil, false, err
	}
	b, err := backup.Open(ctx, cfg, nil, create)
	return b, *asJSON, err
}

func runBackupNow(ctx context.Context, cl *cli, args []string) error {
	b, asJSON, err := openBackupCommand(ctx, cl, "backup now", args, true)
	if err != nil {
		return err
	}
	m, st, err := b.Round(ctx, backupSource(cl))
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(cl.stdout).Encode(map[string]any{"round": m.ID, "seq": m.Seq, "accounts": st.Accounts,
			"copied": st.Copied, "objects": st.Objects, "bytes": st.Bytes, "blobs": st.Blobs, "seconds": st.Duration.Seconds()})
	}
	fmt.Fprintf(cl.stdout, "round %s: seq %d, %d accounts (%d copied), %d objects, %d bytes uploaded, %s\n",
		m.ID, m.Seq, st.Accounts, st.Copied, st.Objects, st.Bytes, st.Duration.Round(time.Millisecond))
	return nil
}

func runBackupList(ctx context.Context, cl *cli, args []string) error {
	b, asJSON, err := openBackupCommand(ctx, cl, "backup list", args, false)
	if err != nil {
		return err
	}
	rounds, err := b.Rounds(ctx)
	if err != nil {
		return err
	}
	type row struct {
		Round    string    `json:"round"`
		Time     time.Time `json:"time"`
		Seq      int64     `json:"seq"`
		Accounts int       `json:"accounts"`
		Blobs    int       `json:"blobs"`
	}
	var rows []row
	for _, r := range rounds {
		m, err := b.Manifest(ctx, r.ID)
		if err != nil {
			return err
		}
		rows = append(rows, row{Round: m.ID, Time: m.Time, Seq: m.Seq, Accounts: len(m.Accounts), Blobs: m.Blobs})
	}
	if asJSON {
		return json.NewEncoder(cl.stdout).Encode(rows)
	}
	tw := tabwriter.NewWriter(cl.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUND\tTIME\tSEQ\tACCOUNTS\tBLOBS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", r.Round, r.Time.Format(time.RFC3339), r.Seq, r.Accounts, r.Blobs)
	}
	return tw.Flush()
}

func runBackupVerify(ctx context.Context, cl *cli, args []string) error {
	fs := cl.flagSet("backup verify")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return errors.New("give at most one round (default the newest)")
	}
	cfg, err := backupConfig(cl, "")
	if err != nil {
		return err
	}
	b, err := backup.Open(ctx, cfg, nil, false)
	if err != nil {
		return err
	}
	id := ""
	if len(pos) == 1 {
		id = pos[0]
	} else if id, err = b.Find(ctx, time.Time{}); err != nil {
		return err
	}
	rep, err := b.Verify(ctx, id, backupProgress(cl.stderr, "verifying "+id))
	if err != nil {
		return fmt.Errorf("round %s does NOT verify: %w", id, err)
	}
	fmt.Fprintf(cl.stdout, "round %s verifies: seq %d, %d repositories (%d records), %d blobs\n", rep.Round, rep.Seq, rep.Accounts, rep.Records, rep.Blobs)
	return nil
}

func runRestore(ctx context.Context, cl *cli, args []string) error {
	fs := cl.flagSet("restore")
	from := fs.String("from", "", "backup location (default $PDS_BACKUP_URL): s3://bucket/prefix or file:///path")
	at := fs.String("at", "", "restore the newest round at or before this time (RFC 3339, or a round ID); default the newest")
	to := fs.String("to", "", "the new data directory (must not exist or be empty)")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return errors.New("takes no positional arguments")
	}
	if *to == "" {
		return errors.New("--to DIR is required")
	}
	cfg, err := backupConfig(cl, *from)
	if err != nil {
		return err
	}
	b, err := backup.Open(ctx, cfg, nil, false)
	if err != nil {
		return err
	}
	var when time.Time
	if *at != "" {
		if when, err = time.Parse(time.RFC3339, *at); err != nil {
			if when, err = time.Parse("20060102T150405.000Z", *at); err != nil {
				return fmt.Errorf("--at %q: want RFC 3339 (2006-01-02T15:04:05Z) or a round ID", *at)
			}
		}
	}
	id, err := b.Find(ctx, when)
	if err != nil {
		return err
	}
	m, err := b.Restore(ctx, id, *to, backupProgress(cl.stderr, "restoring "+id))
	if err != nil {
		return err
	}
	fmt.Fprintf(cl.stdout, "restored round %s (seq %d, %d accounts) into %s\n", m.ID, m.Seq, len(m.Accounts), *to)
	fmt.Fprintf(cl.stdout, "start the server on it (PDS_DATA_DIRECTORY=%s): the firehose continues above every seq served and announces each account with #sync\n", *to)
	return nil
}

// backupProgress draws "label [#####.....] 52% 120/230 objects": redrawn in place on a terminal, a line every
// few seconds otherwise (the blob migration's progressBar rules).
func backupProgress(w io.Writer, label string) backup.Progress {
	pb := newProgressBar(w)
	return func(done, total int) {
		now := time.Now()
		if done != total && now.Sub(pb.last) < pb.interval {
			return
		}
		pb.last = now
		pct := 100
		if total > 0 {
			pct = done * 100 / total
		}
		const width = 30
		fill := pct * width / 100
		start, end := "\r", ""
		if !pb.tty {
			start, end = "", "\n"
		} else if done == total {
			end = "\n"
		}
		fmt.Fprintf(w, "%s%s [%s%s] %3d%% %d/%d objects%s", start, label, strings.Repeat("#", fill), strings.Repeat(".", width-fill), pct, done, total, end)
	}
}
