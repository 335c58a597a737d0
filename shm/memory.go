package shm

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// advise gives the madvise hints. They are hints: a failure becomes a note.
// Called before the Segment is shared with other goroutines.
func (s *Segment) advise() {
	if err := madvise(s.mem, unix.MADV_WILLNEED); err != nil {
		s.addNote("madvise WILLNEED: %v", err)
	}
	if !s.huge {
		if err := madvise(s.mem, unix.MADV_HUGEPAGE); err != nil && !errors.Is(err, syscall.EINVAL) {
			// EINVAL: a kernel without transparent huge pages.
			s.addNote("madvise HUGEPAGE: %v", err)
		}
	}
}

// noPopulate makes pretouch skip MADV_POPULATE_*, as on kernels before 5.14
// (tests set it to exercise the page-stride path).
var noPopulate atomic.Bool

// pretouch faults every page in: MADV_POPULATE_WRITE (READ for a read-only
// mapping) in one system call, else one access per page. Neither changes the
// data. Called before the Segment is shared with other goroutines.
func (s *Segment) pretouch() error {
	advice := unix.MADV_POPULATE_WRITE
	if s.readOnly {
		advice = unix.MADV_POPULATE_READ
	}
	var err error = syscall.EINVAL
	if !noPopulate.Load() {
		err = madvise(s.mem, advice)
	}
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("pretouch %s: %w", fmtBytes(int64(len(s.mem))), err)
	}
	page := os.Getpagesize()
	if s.huge {
		page = HugePageSize
	}
	if s.readOnly {
		touchRead(s.mem, page)
	} else {
		touchWrite(s.mem, page)
	}
	return nil
}

// lock mlocks the mapping (normal pages only). With required a failure is an
// error wrapping ErrLock, otherwise a note. Called before the Segment is
// shared with other goroutines.
func (s *Segment) lock(required bool) error {
	if s.huge {
		if required {
			s.addNote("mlock: not applied: huge pages are never swapped out")
		}
		return nil
	}
	err := mlock(s.mem)
	if err == nil {
		s.locked = true
		return nil
	}
	_ = munlock(s.mem)
	why := lockWhy(len(s.mem), err)
	if required {
		return fmt.Errorf("%w: %s: %w", ErrLock, why, err)
	}
	s.addNote("not locked in memory (it may be swapped out): %s", why)
	return nil
}

// lockWhy explains a failed mlock of n bytes: one message per errno, with
// RLIMIT_MEMLOCK and the fix.
func lockWhy(n int, err error) string {
	var lim unix.Rlimit
	limit := "unknown"
	if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim) == nil {
		if lim.Cur == unix.RLIM_INFINITY {
			limit = "unlimited"
		} else {
			limit = fmtBytes(int64(lim.Cur))
		}
	}
	held, _ := readKB(procSelfStatus, "VmLck")
	const fix = "raise it (ulimit -l unlimited; LimitMEMLOCK=infinity in a systemd unit; " +
		"memlock in /etc/security/limits.conf) or run with CAP_IPC_LOCK"
	switch {
	case errors.Is(err, syscall.ENOMEM):
		return fmt.Sprintf("mlock %s: RLIMIT_MEMLOCK is %s and %s are locked already; %s",
			fmtBytes(int64(n)), limit, fmtBytes(held), fix)
	case errors.Is(err, syscall.EPERM):
		return fmt.Sprintf("mlock %s: RLIMIT_MEMLOCK is %s and the process lacks CAP_IPC_LOCK; %s",
			fmtBytes(int64(n)), limit, fix)
	case errors.Is(err, syscall.EAGAIN):
		return fmt.Sprintf("mlock %s: some pages could not be locked (memory pressure); free memory or lock less",
			fmtBytes(int64(n)))
	}
	return fmt.Sprintf("mlock %s", fmtBytes(int64(n)))
}
