package sem

// This file holds every use of package unsafe: the views of the mapped
// semaphore as typed atomics and the futex system calls on it.

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Futex operations without FUTEX_PRIVATE_FLAG: the kernel keys a shared
// futex on a MAP_SHARED file mapping by inode and offset, so waiters and
// wakers in different processes meet whatever address each mapped it at.
// glibc uses the same shared operations because the semaphore's private
// word is 0x80 (FUTEX_SHARED, XORed into its private-flag ops).
const (
	opFutexWait = 0 // FUTEX_WAIT
	opFutexWake = 1 // FUTEX_WAKE
)

// wakeAll is the wake count that wakes every waiter.
const wakeAll = 1<<31 - 1

// words returns typed views of the mapped semaphore: the 64-bit data word
// at offset 0 (value in the low half, nwaiters in the high half) and the
// 32-bit private word at offset 8. mem must be a mapping of at least
// semSize bytes; mmap returns page-aligned memory, so both are aligned.
func words(mem []byte) (data *atomic.Uint64, private *atomic.Uint32) {
	_ = mem[semSize-1]
	base := unsafe.Pointer(&mem[0])
	return (*atomic.Uint64)(base), (*atomic.Uint32)(unsafe.Add(base, privateOffset))
}

// futexWaitValueZero sleeps while the low 32 bits of *w (the value, at
// offset 0 on little-endian) are zero, for at most timeout if it is not nil
// (relative, CLOCK_MONOTONIC). It returns 0 when woken (possibly
// spuriously), EAGAIN when the value was not zero, ETIMEDOUT, or EINTR when
// a signal interrupted a timed wait. It uses Syscall6, not RawSyscall, so
// the runtime can run other goroutines while this thread sleeps.
func futexWaitValueZero(w *atomic.Uint64, timeout *unix.Timespec) unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), opFutexWait, 0,
		uintptr(unsafe.Pointer(timeout)), 0, 0)
	return e
}

// futexWake wakes up to n waiters sleeping on the low 32 bits of *w, in this
// or any other process, C or Go. FUTEX_WAKE never sleeps, so it is made with
// RawSyscall6, as the runtime makes its own futex wakes: entering the
// scheduler's system-call state would cost more than the call (it can also
// wake the runtime's sysmon thread), and measurably slowed the
// cross-process ping-pong.
func futexWake(w *atomic.Uint64, n int) unix.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), opFutexWake, uintptr(n), 0, 0, 0)
	return e
}
