package shm

// The thin layer over the raw System V and memory system calls. Everything
// else in the package calls these, never golang.org/x/sys/unix's shm calls
// directly, so that the errno handling lives in one place.

import (
	"os"

	"golang.org/x/sys/unix"
)

// Flags and mode bits from <linux/shm.h> that golang.org/x/sys/unix does not
// define.
const (
	shmHugeTLB   = 0o4000             // SHM_HUGETLB: back the segment with huge pages
	shmHugeShift = 26                 // SHM_HUGE_SHIFT
	shmHuge2MB   = 21 << shmHugeShift // SHM_HUGE_2MB: log2 of the page size, explicitly 2 MiB
	shmDest      = 0o1000             // SHM_DEST in shm_perm.mode: marked for removal
	shmLocked    = 0o2000             // SHM_LOCKED in shm_perm.mode: shmctl(SHM_LOCK) applied
	permBits     = 0o777              // the mode bits shmget and IPC_SET keep
	hugeFlags    = shmHugeTLB | shmHuge2MB
)

// shmget wraps shmget(2), returning the errno wrapped in *os.SyscallError.
func shmget(key, size, flag int) (int, error) {
	id, err := unix.SysvShmGet(key, size, flag)
	if err != nil {
		return -1, os.NewSyscallError("shmget", err)
	}
	return id, nil
}

// shmstat wraps shmctl(IPC_STAT).
func shmstat(id int) (unix.SysvShmDesc, error) {
	var d unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &d); err != nil {
		return d, os.NewSyscallError("shmctl IPC_STAT", err)
	}
	return d, nil
}

// shmrmid wraps shmctl(IPC_RMID).
func shmrmid(id int) error {
	if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
		return os.NewSyscallError("shmctl IPC_RMID", err)
	}
	return nil
}

// shmat wraps shmat(2) at an address of the kernel's choosing. The slice is
// as long as the segment's shm_segsz.
func shmat(id int, readOnly bool) ([]byte, error) {
	flag := 0
	if readOnly {
		flag = unix.SHM_RDONLY
	}
	b, err := unix.SysvShmAttach(id, 0, flag)
	if err != nil {
		return nil, os.NewSyscallError("shmat", err)
	}
	return b, nil
}

// shmdt wraps shmdt(2) (it munmaps the attachment that starts at b[0]).
func shmdt(b []byte) error {
	if err := unix.SysvShmDetach(b); err != nil {
		return os.NewSyscallError("shmdt", err)
	}
	return nil
}

// madvise wraps madvise(2).
func madvise(b []byte, advice int) error {
	if err := unix.Madvise(b, advice); err != nil {
		return os.NewSyscallError("madvise", err)
	}
	return nil
}

// mlock and munlock wrap mlock(2) and munlock(2).
func mlock(b []byte) error {
	if err := unix.Mlock(b); err != nil {
		return os.NewSyscallError("mlock", err)
	}
	return nil
}

func munlock(b []byte) error {
	if err := unix.Munlock(b); err != nil {
		return os.NewSyscallError("munlock", err)
	}
	return nil
}
