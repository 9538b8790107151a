//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit, since
// every subscriber is a file descriptor and the usual soft default (1024)
// is far below a load test's needs. It returns the resulting soft limit.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur >= lim.Max {
		return uint64(lim.Cur), nil //nolint:unconvert // int64 on some BSDs
	}
	want := lim
	want.Cur = want.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return uint64(lim.Cur), fmt.Errorf("setrlimit to %d: %w", want.Max, err) //nolint:unconvert // int64 on some BSDs
	}
	return uint64(want.Cur), nil //nolint:unconvert // int64 on some BSDs
}
