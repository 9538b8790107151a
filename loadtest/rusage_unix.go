//go:build unix

package loadtest

import (
	"fmt"
	"runtime"
	"syscall"
	"time"
)

// readUsage returns this process's CPU time so far (user plus system, all
// threads) and its peak resident set, from getrusage(RUSAGE_SELF).
func readUsage() (processUsage, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return processUsage{}, fmt.Errorf("getrusage: %w", err)
	}
	tv := func(t syscall.Timeval) time.Duration {
		return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond //nolint:unconvert // int32 on some platforms
	}
	// ru_maxrss is in KiB on Linux and the BSDs, in bytes on macOS.
	rss := int64(ru.Maxrss) //nolint:unconvert // int32 on some platforms
	if runtime.GOOS != "darwin" && runtime.GOOS != "ios" {
		rss *= 1024
	}
	return processUsage{CPU: tv(ru.Utime) + tv(ru.Stime), MaxRSSBytes: rss, OK: true}, nil
}
