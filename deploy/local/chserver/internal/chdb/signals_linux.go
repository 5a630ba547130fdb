package chdb

import (
	"syscall"
	"unsafe"
)

// kernelSigaction is struct sigaction as the Linux rt_sigaction system call takes it on amd64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// savedSignals holds the dispositions of every catchable signal.
type savedSignals [65]kernelSigaction

// saveSignals reads the current handler of every signal. chDB installs its own handlers
// for SIGSEGV, SIGABRT and others when it starts; Go's handlers must be put back afterwards
// or a Go panic (and the Go scheduler's own use of signals) can hang the process.
func saveSignals() *savedSignals {
	var s savedSignals
	for sig := 1; sig < len(s); sig++ {
		if sig == int(syscall.SIGKILL) || sig == int(syscall.SIGSTOP) {
			continue
		}
		_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&s[sig])), 8, 0, 0)
	}
	return &s
}

// restore puts back the handlers read by saveSignals.
func (s *savedSignals) restore() {
	for sig := 1; sig < len(s); sig++ {
		if sig == int(syscall.SIGKILL) || sig == int(syscall.SIGSTOP) {
			continue
		}
		_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&s[sig])), 0, 8, 0, 0)
	}
}
