//go:build !unix

package main

// raiseFileLimit is a no-op where RLIMIT_NOFILE does not exist; 0 means
// "unknown", so no warning is printed.
func raiseFileLimit() (uint64, error) { return 0, nil }
