package shm

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers match them with errors.Is; the errors returned by
// this package wrap them together with the errno (as *os.SyscallError) and a
// message that names the figures and the fix. Errors about existence and
// permission also match fs.ErrExist, fs.ErrNotExist and fs.ErrPermission.
var (
	// ErrDetached is returned by Segment.Stat after Detach (Bytes then
	// returns nil).
	ErrDetached = errors.New("segment detached")
	// ErrRemoved is returned by a second Remove of the same Segment.
	ErrRemoved = errors.New("segment already removed")
	// ErrHugePages means huge pages were required (HugePages: On) and could
	// not be had: the pool is too small, the caller may not use them, or the
	// kernel has no 2 MiB pages. The message says which and how to fix it.
	ErrHugePages = errors.New("huge pages unavailable")
	// ErrLock means locking was required (Lock: On) and mlock failed,
	// typically because RLIMIT_MEMLOCK is too small. The message gives the
	// limit and the fix.
	ErrLock = errors.New("cannot lock segment in memory")
	// ErrSize means a size that cannot be used: not positive, above SHMMAX
	// or the machine's memory, or different from the existing segment's.
	ErrSize = errors.New("bad segment size")
	// ErrName means a ring NAME that breaks the rule (see ValidName).
	ErrName = errors.New("invalid ring name")
	// ErrKey means a key that is not a usable System V key (0 or wider
	// than 32 bits).
	ErrKey = errors.New("invalid key")
	// ErrOptions means an Options value out of range: a Policy other than
	// Auto, On or Off, or a Perm outside 0777 or without 0600.
	ErrOptions = errors.New("invalid options")
)

// fmtKey prints a key the way ipcs does.
func fmtKey(key int) string { return fmt.Sprintf("0x%08x", uint32(key)) }

// fmtBytes prints a byte count in binary units for messages: exact when it
// is a whole number of the unit, else to a tenth of GiB or MiB.
func fmtBytes(n int64) string {
	const (
		kiB = 1 << 10
		miB = 1 << 20
		giB = 1 << 30
	)
	switch {
	case n >= giB && n%giB == 0:
		return fmt.Sprintf("%d GiB", n/giB)
	case n >= miB && n%miB == 0:
		return fmt.Sprintf("%d MiB", n/miB)
	case n >= giB:
		return fmt.Sprintf("%.1f GiB", float64(n)/giB)
	case n >= miB:
		return fmt.Sprintf("%.1f MiB", float64(n)/miB)
	case n >= kiB && n%kiB == 0:
		return fmt.Sprintf("%d KiB", n/kiB)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}
