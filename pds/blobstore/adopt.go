package blobstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"github.com/ipfs/go-cid"
)

// ErrCrossDevice: MoveIn was given a file on another file system than the store.
var ErrCrossDevice = errors.New("blobstore: the file is on another file system")

// MoveIn moves src, a file holding did's blob c written by another server (a takeover with --move), into the
// store by renaming it, among the taken-down blobs when quarantined. It does not read or hash the file: the caller
// vouches for its content. It returns the destination path, for a caller that must undo the move; a file on
// another file system is not moved (ErrCrossDevice).
func (d *Disk) MoveIn(did syntax.DID, c cid.Cid, src string, quarantined bool) (string, error) {
	if err := checkDID(did); err != nil {
		return "", err
	}
	dst := d.FilePath(did, c, quarantined)
	if err := mkdirAllSync(filepath.Dir(dst)); err != nil {
		return "", err
	}
	if _, err := os.Stat(dst); err == nil {
		return "", fmt.Errorf("blobstore: %s already exists", dst)
	}
	if err := os.Rename(src, dst); err != nil {
		if errors.Is(err, syscall.EXDEV) {
			return "", fmt.Errorf("%w: %s", ErrCrossDevice, src)
		}
		return "", err
	}
	return dst, syncDir(filepath.Dir(dst))
}

// FilePath is the file of did's blob c (among the taken-down blobs when quarantined).
func (d *Disk) FilePath(did syntax.DID, c cid.Cid, quarantined bool) string {
	if quarantined {
		return d.quarantinePath(did, c)
	}
	return d.path(did, c)
}
