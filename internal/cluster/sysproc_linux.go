package cluster

import "syscall"

// sysProcAttr makes the kernel kill a child when the test process dies
// (a panic, a -timeout), so no bookhub or nginx outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
