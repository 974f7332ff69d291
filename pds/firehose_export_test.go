package pds

import (
	"time"

	"github.com/pdsgo/pds/pds/firehose"
)

// SetFirehoseKeepAliveForTest sets the firehose ping interval (the read timeout is three intervals) for servers
// started afterwards; the returned function restores the defaults (call it after those servers stopped).
func SetFirehoseKeepAliveForTest(ping time.Duration) (restore func()) {
	return firehose.SetKeepAliveForTest(ping)
}
