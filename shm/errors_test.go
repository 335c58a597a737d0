package shm

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestErrnoMessages: every errno of shmget(SHM_HUGETLB), mlock and
// shmget(IPC_CREAT) gets its own message, and the errno and sentinel stay
// matchable.
func TestErrnoMessages(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]string{"nr_hugepages": "4", "free_hugepages": "3", "resv_hugepages": "1",
		"surplus_hugepages": "0", "nr_overcommit_hugepages": "0"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := sysHugepages2M
	sysHugepages2M = dir
	defer func() { sysHugepages2M = old }()

	seen := map[string]syscall.Errno{}
	distinct := func(what string, err error, errno syscall.Errno, sentinel error, subs ...string) {
		t.Helper()
		if !errors.Is(err, errno) || sentinel != nil && !errors.Is(err, sentinel) {
			t.Errorf("%s: %v does not match %v and %v", what, err, errno, sentinel)
		}
		mustContain(t, err.Error(), subs...)
		if prev, ok := seen[err.Error()]; ok {
			t.Errorf("%s: same message as for %v: %q", what, prev, err)
		}
		seen[err.Error()] = errno
	}
	wrap := func(e syscall.Errno) error { return os.NewSyscallError("shmget", e) }

	distinct("huge ENOMEM", hugeError(10*HugePageSize, wrap(syscall.ENOMEM)), syscall.ENOMEM, ErrHugePages,
		"pool has 3 free 2 MiB pages (1 of them reserved), need 10; run: ", "nr_hugepages=12")
	distinct("huge ENOMEM with room", hugeError(2*HugePageSize, wrap(syscall.ENOMEM)), syscall.ENOMEM, ErrHugePages,
		"the pool has 2 available, yet the kernel refused", "cgroup")
	distinct("huge EPERM", hugeError(HugePageSize, wrap(syscall.EPERM)), syscall.EPERM, ErrHugePages,
		"CAP_IPC_LOCK", "vm.hugetlb_shm_group")
	distinct("huge EINVAL", hugeError(HugePageSize, wrap(syscall.EINVAL)), syscall.EINVAL, ErrHugePages, "shmmax")
	distinct("huge ENOSPC", hugeError(HugePageSize, wrap(syscall.ENOSPC)), syscall.ENOSPC, ErrHugePages, "need 1 pages")
	sysHugepages2M = filepath.Join(dir, "none")
	distinct("huge EINVAL, no pool", hugeError(HugePageSize, wrap(syscall.EINVAL)), syscall.EINVAL, ErrHugePages,
		"the kernel has no 2 MiB huge pages")

	mwrap := func(e syscall.Errno) error { return os.NewSyscallError("mlock", e) }
	for _, e := range []syscall.Errno{syscall.ENOMEM, syscall.EPERM, syscall.EAGAIN} {
		why := lockWhy(8<<20, mwrap(e))
		if _, ok := seen[why]; ok {
			t.Errorf("mlock %v: message repeated: %q", e, why)
		}
		seen[why] = e
		mustContain(t, why, "mlock 8 MiB")
	}
	mustContain(t, lockWhy(1<<20, mwrap(syscall.ENOMEM)), "RLIMIT_MEMLOCK is", "are locked already", "CAP_IPC_LOCK")

	distinct("create ENOSPC", createError(1, 4096, wrap(syscall.ENOSPC)), syscall.ENOSPC, nil, "kernel.shmmni", "kernel.shmall")
	distinct("create ENOMEM", createError(1, 4096, wrap(syscall.ENOMEM)), syscall.ENOMEM, nil, "not enough memory for 4 KiB")
	distinct("create EINVAL", createError(1, 4096, wrap(syscall.EINVAL)), syscall.EINVAL, ErrSize, "refused by the kernel")
}

func TestFmtBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 bytes", 100: "100 bytes", 4096: "4 KiB", 100000: "100000 bytes",
		8 << 20: "8 MiB", 3<<20 + 1: "3.0 MiB", 3 << 30: "3 GiB", 25275222016: "23.5 GiB"} {
		if got := fmtBytes(n); got != want {
			t.Errorf("fmtBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
