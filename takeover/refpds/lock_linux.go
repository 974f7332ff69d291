package refpds

import (
	"os"
	"syscall"
)

// heldOpen reports whether another process has the SQLite database at path open in WAL mode, and which: every
// connection holds a shared lock on the "dead man switch" byte of the -shm file (offset 128, SQLite's
// UNIX_SHM_DMS) for as long as it is open. Testing the lock (F_GETLK) changes nothing.
func heldOpen(path string) (pid int, held bool) {
	f, err := os.Open(path + "-shm")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 128, Len: 1}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		return 0, false
	}
	if lk.Type == syscall.F_UNLCK {
		return 0, false
	}
	return int(lk.Pid), true
}
