package pds

import (
	"bytes"

	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car"
	carutil "github.com/ipld/go-car/util"

	"github.com/pdsgo/pds/repo"
)

// commitOnlyCAR builds the #sync event's blocks: a CAR holding only the commit block, taken from the commit's
// event CAR.
func commitOnlyCAR(res *repo.CommitResult) []byte {
	rd, err := car.NewCarReader(bytes.NewReader(res.Event.Blocks))
	if err != nil {
		return nil
	}
	for {
		blk, err := rd.Next()
		if err != nil {
			return nil
		}
		if blk.Cid().Equals(res.Commit) {
			return singleBlockCAR(res.Commit, blk.RawData())
		}
	}
}

func singleBlockCAR(c cid.Cid, data []byte) []byte {
	var buf bytes.Buffer
	car.WriteHeader(&car.CarHeader{Roots: []cid.Cid{c}, Version: 1}, &buf)
	carutil.LdWrite(&buf, c.Bytes(), data)
	return buf.Bytes()
}
