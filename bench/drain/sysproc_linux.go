package main

import "syscall"

// sysProcAttr puts a child in its own process group and has the kernel
// kill it should the harness die without cleaning up (SIGKILL, a panic).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
