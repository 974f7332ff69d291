package takeover

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Report is what a run found and carried (with --check: what it would carry).
type Report struct {
	From, To string
	Hostname string
	// RunningPID: the reference was running (that process has its databases open) while a dry run read it.
	RunningPID int
	Done       bool   // the new directory is in place (false for --check)
	BlobStore  string // where the blobs are and what happens to them

	Accounts, Deactivated, TakenDown int
	AppPasswords, Sessions           int
	InviteCodes, InviteUses          int
	Preferences                      int
	RecordTakedowns, BlobTakedowns   int
	Records, Blocks                  int64 // as the reference counts them (its blocks may include unreachable ones)
	Blobs, BlobBytes                 int64
	// MissingBlobFiles: blobs whose file is in neither the blob directory nor the quarantine (an error).
	MissingBlobFiles int64
	FirstMissingBlob string
	// MissingBlobRefs: blobs records reference that the account never had (listed by listMissingBlobs, as before).
	MissingBlobRefs int64

	SeqHead     int64     // the reference's last seq: this server's next event is SeqHead+1
	Events      int64     // firehose events carried (those sequenced since EventsSince)
	EventsSince time.Time // the start of the reference's backfill window

	Settings [][2]string // PDS_* settings written to pds.env
	Secrets  []string    // the reference's secrets written to secrets.json
	Dropped  []string    // the reference's PDS_* settings not carried

	NotCarried []Item   // what cannot be carried, with counts
	Warnings   []string // inconsistencies found in the reference's files that did not stop the takeover
}

// Item is something the takeover does not carry.
type Item struct {
	What  string
	Count int64
	Why   string
}

func (r *Report) notCarried(n int64, what, why string) {
	if n == 0 {
		return
	}
	for i := range r.NotCarried {
		if r.NotCarried[i].What == what {
			r.NotCarried[i].Count += n
			return
		}
	}
	r.NotCarried = append(r.NotCarried, Item{What: what, Count: n, Why: why})
}

// WriteText writes the report for an operator.
func (r *Report) WriteText(w io.Writer) {
	verb := "would carry"
	if r.Done {
		verb = "carried"
	}
	fmt.Fprintf(w, "reference PDS %s (%s) -> %s\n", r.From, r.Hostname, r.To)
	if r.RunningPID != 0 {
		fmt.Fprintf(w, "the reference is running (process %d): these counts are as of this check; stop it before the takeover\n", r.RunningPID)
	}
	fmt.Fprintf(w, "%s:\n", verb)
	fmt.Fprintf(w, "  accounts           %d (%d deactivated, %d taken down)\n", r.Accounts, r.Deactivated, r.TakenDown)
	fmt.Fprintf(w, "  app passwords      %d\n", r.AppPasswords)
	fmt.Fprintf(w, "  sessions           %d (unexpired refresh tokens; access tokens stay valid: same JWT secret)\n", r.Sessions)
	fmt.Fprintf(w, "  invite codes       %d (%d uses)\n", r.InviteCodes, r.InviteUses)
	fmt.Fprintf(w, "  preferences        %d\n", r.Preferences)
	fmt.Fprintf(w, "  takedowns          %d accounts, %d records, %d blobs\n", r.TakenDown, r.RecordTakedowns, r.BlobTakedowns)
	fmt.Fprintf(w, "  repositories       %d records, %d blocks (heads, revs and signatures unchanged)\n", r.Records, r.Blocks)
	fmt.Fprintf(w, "  blobs              %d (%s): %s\n", r.Blobs, humanBytes(r.BlobBytes), r.BlobStore)
	fmt.Fprintf(w, "  firehose           %d events since %s; the next seq is %d\n", r.Events, r.EventsSince.UTC().Format(time.RFC3339), r.SeqHead+1)
	fmt.Fprintf(w, "  secrets            %s -> secrets.json\n", strings.Join(r.Secrets, ", "))
	names := make([]string, 0, len(r.Settings))
	for _, kv := range r.Settings {
		names = append(names, kv[0])
	}
	fmt.Fprintf(w, "  settings           %s -> pds.env\n", strings.Join(names, ", "))
	if r.MissingBlobRefs > 0 {
		fmt.Fprintf(w, "  (records reference %d blobs their accounts never uploaded; listMissingBlobs lists them, as before)\n", r.MissingBlobRefs)
	}
	if len(r.Dropped) > 0 || len(r.NotCarried) > 0 {
		fmt.Fprintf(w, "not carried:\n")
		if len(r.Dropped) > 0 {
			fmt.Fprintf(w, "  %d settings: %s (this server's own layout replaces the paths; the others it does not use)\n", len(r.Dropped), strings.Join(r.Dropped, ", "))
		}
		for _, it := range r.NotCarried {
			fmt.Fprintf(w, "  %d %s: %s\n", it.Count, it.What, it.Why)
		}
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
