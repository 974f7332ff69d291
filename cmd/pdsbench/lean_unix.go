//go:build unix

package main

import (
	"net"
	"syscall"
)

// peerClosed says whether an idle connection can no longer carry a request: the server closed it (a read
// returns end of file), sent bytes nobody asked for, or it failed. It does not block.
func peerClosed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var buf [1]byte
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		_, rerr := syscall.Read(int(fd), buf[:])
		alive = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait for readiness
	})
	return err != nil || !alive
}
