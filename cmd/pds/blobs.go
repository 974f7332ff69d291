package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/pdsgo/pds/pds"
	"github.com/pdsgo/pds/pds/blobstore"
)

const blobsMigrateHelp = `Copies every blob from one blob store to another, verifying that each copy hashes to its CID; taken-down
(quarantined) blobs stay quarantined. FROM and TO are:
  disk         PDS_BLOBSTORE_DISK_LOCATION (default <PDS_DATA_DIRECTORY>/blobs)
  disk:PATH    a disk store at PATH
  s3           the bucket of PDS_BLOBSTORE_S3_BUCKET, _REGION, _ENDPOINT, _FORCE_PATH_STYLE, _ACCESS_KEY_ID, ...
It can be interrupted and run again: blobs already at the destination are skipped (with --verify they are
re-read and re-hashed, and replaced if they differ). Run it with the server stopped, or run it once live and
again after stopping the server, then switch the configuration to the new store.
`

func runBlobsMigrate(ctx context.Context, cl *cli, args []string) error {
	fs := cl.flagSet("blobs migrate")
	verify := fs.Bool("verify", false, "re-hash blobs already at the destination")
	concurrency := fs.Int("concurrency", 4, "blobs copied at once")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{errors.New("need FROM and TO")}
	}
	cfg, err := pds.LoadConfig(cl.getenv)
	if err != nil {
		return err
	}
	src, err := openBlobstoreArg(cfg, pos[0])
	if err != nil {
		return fmt.Errorf("FROM: %w", err)
	}
	dst, err := openBlobstoreArg(cfg, pos[1])
	if err != nil {
		return fmt.Errorf("TO: %w", err)
	}
	if pos[0] == pos[1] {
		return errors.New("FROM and TO are the same store")
	}
	bar := newProgressBar(cl.stderr)
	p, failures, err := blobstore.Migrate(ctx, src, dst, blobstore.MigrateOptions{
		Verify: *verify, Concurrency: *concurrency, Progress: bar.update,
	})
	bar.finish(p)
	for _, f := range failures {
		fmt.Fprintf(cl.stderr, "failed: %s %s: %v\n", f.Entry.DID, f.Entry.CID, f.Err)
	}
	fmt.Fprintf(cl.stdout, "%d blobs (%s): %d copied, %d already there, %d failed\n",
		p.Total, humanize.IBytes(uint64(p.TotalBytes)), p.Copied, p.Skipped, p.Failed)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return errors.New("interrupted; run the same command again to resume")
		}
		return err
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d blobs could not be copied", len(failures))
	}
	return nil
}

func openBlobstoreArg(cfg *pds.Config, arg string) (blobstore.Backend, error) {
	switch {
	case arg == "disk":
		return blobstore.NewDisk(cfg.BlobstoreDisk, cfg.BlobstoreDiskTmp)
	case strings.HasPrefix(arg, "disk:"):
		dir := strings.TrimPrefix(arg, "disk:")
		if dir == "" {
			return nil, errors.New("disk: needs a path")
		}
		return blobstore.NewDisk(dir, "")
	case arg == "s3":
		if cfg.BlobstoreS3 == nil {
			return nil, errors.New("PDS_BLOBSTORE_S3_BUCKET is not set")
		}
		return blobstore.NewS3(*cfg.BlobstoreS3)
	}
	return nil, fmt.Errorf("%q is not disk, disk:PATH or s3", arg)
}

// progressBar draws the migration's progress: redrawn in place on a terminal, a line every few seconds otherwise.
type progressBar struct {
	w        io.Writer
	tty      bool
	start    time.Time
	last     time.Time
	interval time.Duration
}

func newProgressBar(w io.Writer) *progressBar {
	b := &progressBar{w: w, start: time.Now(), interval: 5 * time.Second}
	if f, ok := w.(*os.File); ok {
		if info, err := f.Stat(); err == nil && info.Mode()&os.ModeCharDevice != 0 {
			b.tty, b.interval = true, 100*time.Millisecond
		}
	}
	return b
}

func (b *progressBar) update(p blobstore.MigrateProgress) {
	if now := time.Now(); now.Sub(b.last) >= b.interval {
		b.last = now
		b.draw(p)
	}
}

func (b *progressBar) finish(p blobstore.MigrateProgress) {
	b.draw(p)
	if b.tty {
		fmt.Fprintln(b.w)
	}
}

func (b *progressBar) draw(p blobstore.MigrateProgress) {
	const width = 30
	frac := 1.0
	if p.TotalBytes > 0 {
		frac = float64(p.DoneBytes) / float64(p.TotalBytes)
	} else if p.Total > 0 {
		frac = float64(p.Done) / float64(p.Total)
	}
	filled := int(frac * width)
	rate := float64(p.DoneBytes) / max(time.Since(b.start).Seconds(), 0.001)
	line := fmt.Sprintf("[%s%s] %3.0f%% %d/%d blobs %s/%s %s/s  copied %d, skipped %d, failed %d",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), frac*100,
		p.Done, p.Total, humanize.IBytes(uint64(p.DoneBytes)), humanize.IBytes(uint64(p.TotalBytes)), humanize.IBytes(uint64(rate)),
		p.Copied, p.Skipped, p.Failed)
	if b.tty {
		fmt.Fprintf(b.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(b.w, line)
	}
}
