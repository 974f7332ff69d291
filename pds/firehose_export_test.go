package pds

import "time"

// SetFirehoseKeepAliveForTest sets the firehose ping interval (the read timeout is three intervals) for servers
// started afterwards; the returned function restores the defaults (call it after those servers stopped).
func SetFirehoseKeepAliveForTest(ping time.Duration) (restore func()) {
	oldPing, oldRead := pingInterval, readTimeout
	pingInterval, readTimeout = ping, 3*ping
	return func() { pingInterval, readTimeout = oldPing, oldRead }
}
