package takeover

import (
	"bytes"
	"fmt"

	comatproto "github.com/bluesky-social/indigo/api/atproto"
	"github.com/bluesky-social/indigo/atproto/syntax"
	lexutil "github.com/bluesky-social/indigo/lex/util"
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/pdsgo/pds/pds/sequencer"
	"github.com/pdsgo/pds/takeover/refpds"
)

// convertEvent turns a row of the reference's log into the firehose message the reference sends for it
// (subscribeRepos: the stored event with seq and time added). ok is false for the legacy types the reference no
// longer sends (rebase, handle, migrate, tombstone).
func convertEvent(e *refpds.Event) (_ *sequencer.AdoptedEvent, ok bool, err error) {
	did, err := syntax.ParseDID(e.DID)
	if err != nil {
		return nil, false, fmt.Errorf("sequencer.sqlite: seq %d: %w", e.Seq, err)
	}
	var typ string
	var msg interface {
		cbg.CBORMarshaler
		cbg.CBORUnmarshaler
	}
	switch e.Type {
	case "append":
		typ, msg = sequencer.TypeCommit, &comatproto.SyncSubscribeRepos_Commit{}
	case "sync":
		typ, msg = sequencer.TypeSync, &comatproto.SyncSubscribeRepos_Sync{}
	case "identity":
		typ, msg = sequencer.TypeIdentity, &comatproto.SyncSubscribeRepos_Identity{}
	case "account":
		typ, msg = sequencer.TypeAccount, &comatproto.SyncSubscribeRepos_Account{}
	default:
		return nil, false, nil
	}
	if err := msg.UnmarshalCBOR(bytes.NewReader(e.Body)); err != nil {
		return nil, false, fmt.Errorf("sequencer.sqlite: seq %d (%s): %w", e.Seq, e.Type, err)
	}
	switch m := msg.(type) {
	case *comatproto.SyncSubscribeRepos_Commit:
		m.Seq, m.Time = e.Seq, e.SequencedAtRaw
		if m.Blobs == nil {
			m.Blobs = []lexutil.LexLink{}
		}
		if m.Ops == nil {
			m.Ops = []*comatproto.SyncSubscribeRepos_RepoOp{}
		}
	case *comatproto.SyncSubscribeRepos_Sync:
		m.Seq, m.Time = e.Seq, e.SequencedAtRaw
	case *comatproto.SyncSubscribeRepos_Identity:
		m.Seq, m.Time = e.Seq, e.SequencedAtRaw
	case *comatproto.SyncSubscribeRepos_Account:
		m.Seq, m.Time = e.Seq, e.SequencedAtRaw
	}
	return &sequencer.AdoptedEvent{Seq: e.Seq, DID: did, Type: typ, Time: e.SequencedAt, Msg: msg}, true, nil
}
