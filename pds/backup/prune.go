package backup

import (
	"context"
	"strings"
	"time"
)

// pruneGrace keeps an unreferenced object this long: a round in progress (of this process or of `pds backup
// now` beside it) uploads its objects before its manifest refers to them.
const pruneGrace = time.Hour

// PruneStats is what Prune removed.
type PruneStats struct {
	Rounds, Objects int
	Bytes           int64
}

// Prune deletes the rounds the retention does not keep, then the objects no kept round refers to (older than
// an hour, so a round in progress keeps its uploads). A kept round's objects are never deleted, whichever
// round uploaded them.
func (b *Backup) Prune(ctx context.Context, now time.Time) (*PruneStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rounds, err := b.Rounds(ctx)
	if err != nil || len(rounds) == 0 {
		return &PruneStats{}, err
	}
	kept := b.cfg.Retention.keep(rounds)
	// Read every kept manifest before deleting anything: one that cannot be read stops the prune.
	refs := map[string]bool{keyObject: true}
	for _, r := range rounds {
		if !kept[r.ID] {
			continue
		}
		m, err := b.Manifest(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		for _, f := range m.Files {
			refs[f.Key()] = true
		}
		if m.Log != nil {
			refs[m.Log.Base.Key()] = true
			for _, f := range m.Log.Segments {
				refs[f.Key()] = true
			}
		}
		for _, a := range m.Accounts {
			refs[a.Repo.Key()] = true
			for _, c := range a.Blobs {
				refs["blobs/"+c] = true
			}
		}
	}
	ps := &PruneStats{}
	for _, r := range rounds {
		if kept[r.ID] {
			continue
		}
		if err := b.st.Delete(ctx, "rounds/"+r.ID); err != nil {
			return ps, err
		}
		ps.Rounds++
	}
	var drop []Object
	for _, p := range []string{"objects/", "blobs/"} {
		if err := b.st.List(ctx, p, func(o Object) error {
			if !refs[o.Key] && now.Sub(o.Modified) > pruneGrace && !strings.HasSuffix(o.Key, "/") {
				drop = append(drop, o)
			}
			return nil
		}); err != nil {
			return ps, err
		}
	}
	for _, o := range drop {
		if err := b.st.Delete(ctx, o.Key); err != nil {
			return ps, err
		}
		if b.known != nil {
			delete(b.known, o.Key)
		}
		ps.Objects++
		ps.Bytes += o.Size
	}
	return ps, nil
}
