package shm

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// HugePageSize is the size of the huge pages this package asks for
// (SHM_HUGETLB|SHM_HUGE_2MB), whatever the machine's default huge page size.
const HugePageSize = 2 << 20

// HugePool is a snapshot of the kernel's pool of 2 MiB huge pages.
type HugePool struct {
	Total      int // pages in the pool, surplus included
	Free       int // pages not in use by any mapping
	Reserved   int // free pages already promised to segments and mappings
	Surplus    int // pages allocated beyond the persistent pool (overcommit)
	Overcommit int // vm.nr_overcommit_hugepages: how many surplus pages may be made
	// Default is true when 2 MiB is the default huge page size, so that
	// vm.nr_hugepages sizes this pool.
	Default bool
}

// Persistent is the persistent pool size, what vm.nr_hugepages holds.
func (p HugePool) Persistent() int { return p.Total - p.Surplus }

// Available is how many pages a new segment can reserve now.
func (p HugePool) Available() int {
	n := p.Free - p.Reserved
	if extra := p.Overcommit - p.Surplus; extra > 0 {
		n += extra
	}
	return max(n, 0)
}

// FixCommand returns the command that makes room for need pages in the
// pool: vm.nr_hugepages set to the persistent pool plus the shortfall (or
// the sysfs file when 2 MiB is not the default huge page size).
func (p HugePool) FixCommand(need int) string {
	n := p.Persistent() + max(need-p.Available(), 0)
	if p.Default {
		return fmt.Sprintf("sysctl -w vm.nr_hugepages=%d", n)
	}
	return fmt.Sprintf("echo %d > %s/nr_hugepages", n, sysHugepages2M)
}

// ReadHugePool reads the 2 MiB pool from /sys/kernel/mm/hugepages. The error
// matches fs.ErrNotExist when the kernel has no 2 MiB huge pages.
func ReadHugePool() (HugePool, error) {
	var p HugePool
	for _, f := range []struct {
		name string
		dst  *int
	}{
		{"nr_hugepages", &p.Total},
		{"free_hugepages", &p.Free},
		{"resv_hugepages", &p.Reserved},
		{"surplus_hugepages", &p.Surplus},
		{"nr_overcommit_hugepages", &p.Overcommit},
	} {
		n, err := readUint(sysHugepages2M + "/" + f.name)
		if err != nil {
			return HugePool{}, fmt.Errorf("read huge page pool: %w", err)
		}
		*f.dst = int(n)
	}
	def, err := readKB(procMeminfo, "Hugepagesize")
	p.Default = err == nil && def == HugePageSize
	return p, nil
}

// hugeError explains why shmget(SHM_HUGETLB) of size bytes failed with err:
// one message (and one fix) per errno. The result wraps ErrHugePages and err.
func hugeError(size int, err error) error {
	need := size / HugePageSize
	var why string
	switch {
	case errors.Is(err, syscall.ENOMEM):
		p, perr := ReadHugePool()
		switch {
		case perr != nil:
			why = fmt.Sprintf("need %d pages of 2 MiB; the pool cannot be read (%v)", need, perr)
		case p.Available() < need:
			why = fmt.Sprintf("pool has %d free 2 MiB pages (%d of them reserved), need %d; run: %s",
				p.Free, p.Reserved, need, p.FixCommand(need))
		default:
			why = fmt.Sprintf("need %d pages of 2 MiB and the pool has %d available, yet the kernel refused "+
				"(another process took them, or a hugetlb cgroup limit applies)", need, p.Available())
		}
	case errors.Is(err, syscall.EPERM):
		grp, _ := readUint(procHugetlbGrp)
		why = fmt.Sprintf("SHM_HUGETLB needs CAP_IPC_LOCK or membership of group vm.hugetlb_shm_group (now %d); "+
			"run: sysctl -w vm.hugetlb_shm_group=%d (our group), or run with CAP_IPC_LOCK", grp, os.Getegid())
	case errors.Is(err, syscall.EINVAL):
		if _, serr := os.Stat(sysHugepages2M); serr != nil {
			why = "the kernel has no 2 MiB huge pages (" + sysHugepages2M + " is missing)"
		} else {
			why = fmt.Sprintf("the kernel refused %s of huge pages (above kernel.shmmax?)", fmtBytes(int64(size)))
		}
	default:
		why = fmt.Sprintf("need %d pages of 2 MiB", need)
	}
	return fmt.Errorf("%w: %s: %w", ErrHugePages, why, err)
}

// HugeReservation is a number of pages this process added to the 2 MiB pool
// with ReserveHugePages. Release gives them back.
type HugeReservation struct {
	// Pages is how many pages were added to the persistent pool.
	Pages    int
	released bool
}

// hugeLockPath serialises every change to the pool made by shmpc's tests,
// benchmarks and tools: no test sets vm.nr_hugepages to an absolute value.
const hugeLockPath = "/tmp/shmpc-hugepages.lock"

// ReserveHugePages makes n more free pages in the 2 MiB pool, for tests,
// benchmarks and tools that need huge pages (it needs root). It never sets an
// absolute value: under an exclusive flock on /tmp/shmpc-hugepages.lock it
// reads the persistent pool size, adds to it and checks that the kernel made
// the pages, so that several processes doing the same compose. Surplus pages
// (pages in use beyond the persistent pool, left when someone shrank the pool
// under a user) are turned back into persistent pages before new ones are
// made, so the addition is n plus the surplus; Release subtracts exactly what
// was added. It waits at most wait for the lock. If the kernel could not make
// the pages (memory fragmentation), it gives back what it got and fails.
//
// Other processes may still use the new pages (any HugePages: Auto create
// does): a caller that needs them should retry with more on ENOMEM. The
// caller must Release the reservation, also on failure paths.
func ReserveHugePages(n int, wait time.Duration) (*HugeReservation, error) {
	if n <= 0 {
		return nil, fmt.Errorf("reserve huge pages: %d pages: %w", n, ErrSize)
	}
	var got int
	err := withHugeLock(wait, func() error {
		before, err := readPoolSize()
		if err != nil {
			return err
		}
		pool, err := ReadHugePool()
		if err != nil {
			return err
		}
		want := n + pool.Surplus
		if err := writePoolSize(before + want); err != nil {
			return err
		}
		after, err := readPoolSize()
		if err != nil {
			return err
		}
		got = after - before
		if got < want {
			werr := writePoolSize(after - max(got, 0))
			return errors.Join(fmt.Errorf("the kernel made %d of %d pages (memory fragmented?)", got, want), werr)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reserve huge pages: %w", err)
	}
	return &HugeReservation{Pages: got}, nil
}

// Release subtracts the reserved pages from the pool (under the same lock).
// Pages still mapped by some segment leave the pool when they are freed. A
// second Release does nothing.
func (r *HugeReservation) Release(wait time.Duration) error {
	if r == nil || r.released {
		return nil
	}
	err := withHugeLock(wait, func() error {
		cur, err := readPoolSize()
		if err != nil {
			return err
		}
		return writePoolSize(max(cur-r.Pages, 0))
	})
	if err != nil {
		return fmt.Errorf("release huge pages: %w", err)
	}
	r.released = true
	return nil
}

// poolSizePath is vm.nr_hugepages when 2 MiB is the default huge page size,
// else the 2 MiB pool's own sysfs file.
func poolSizePath() string {
	if def, err := readKB(procMeminfo, "Hugepagesize"); err == nil && def == HugePageSize {
		return procNrHugepages
	}
	return sysHugepages2M + "/nr_hugepages"
}

func readPoolSize() (int, error) {
	if p := poolSizePath(); p == procNrHugepages {
		n, err := readUint(p)
		return int(n), err
	}
	pool, err := ReadHugePool()
	return pool.Persistent(), err
}

func writePoolSize(n int) error {
	return os.WriteFile(poolSizePath(), []byte(strconv.Itoa(n)+"\n"), 0)
}

// withHugeLock runs fn holding an exclusive flock on hugeLockPath, waiting at
// most wait for it.
func withHugeLock(wait time.Duration, fn func() error) error {
	// Open before create: with fs.protected_regular, O_CREAT on another
	// user's file in sticky /tmp fails even for root.
	f, err := os.Open(hugeLockPath)
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.OpenFile(hugeLockPath, os.O_RDONLY|os.O_CREATE, 0o644)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return os.NewSyscallError("flock", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lock %s: held by another process for %v: %w", hugeLockPath, wait, os.ErrDeadlineExceeded)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return fn()
}
