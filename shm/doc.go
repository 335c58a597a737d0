// Package shm owns System V shared memory segments for shmpc: it creates,
// attaches, detaches, removes, inspects and lists them, and applies the
// memory options a fast ring wants: 2 MiB huge pages, mlock, madvise hints
// and pre-touching. It depends on golang.org/x/sys/unix only, and knows
// nothing of the ring that lives inside a segment.
//
// # Keys and names
//
// A ring's NAME (see ValidName) maps to a key with KeyForName: FNV-1a-32 of
// "shmpc:"+NAME, top bit cleared, 0 replaced by 1. Keys can collide, so the
// ring header, not this package, decides whether a segment is really ours.
//
// # Create never adopts
//
// Create uses IPC_CREAT|IPC_EXCL: an existing key is an error matching
// fs.ErrExist that names the holder (id, size, owner, mode, creator pid), and
// also ErrSize when the size differs. Resuming a ring is an explicit Attach.
// Sizes are checked before the kernel sees them (positive, at most
// kernel.shmmax, at most the machine's memory) so each gets its own message.
// The mode is given to shmget, so it is exact: the umask does not apply to
// System V objects (tested); the default is 0600.
//
// # Huge pages
//
// HugePages asks for SHM_HUGETLB|SHM_HUGE_2MB, explicitly 2 MiB whatever the
// default huge page size, and rounds the size up to 2 MiB. The kernel
// reserves the pages at shmget, so a short pool fails at creation (ENOMEM)
// instead of SIGBUS at first touch. Each errno has its own message: ENOMEM
// gives pages needed and free and the exact `sysctl -w vm.nr_hugepages=N`
// (N = persistent pool + shortfall); EPERM (no CAP_IPC_LOCK, not in
// vm.hugetlb_shm_group) names the sysctl for the group. Under Auto the
// message becomes a Note and normal pages are used; under On it is an error
// matching ErrHugePages.
//
// Whether a segment is huge: for a Segment, Create knows, and Attach asks the
// kernel for the mapping's page size (the PROCMAP_QUERY ioctl of Linux 6.11+,
// else KernelPageSize in /proc/self/smaps). For a segment only seen in
// /proc/sysvipc/shm or through IPC_STAT the kernel does not say: the mode
// holds only the permission bits plus SHM_DEST and SHM_LOCKED. Info.Huge is
// therefore inferred only where the figures prove it, with Info.HugeKnown:
// SHM_LOCKED means normal pages (SHM_LOCK is a no-op on hugetlb), and a
// resident size above the segment's size means huge pages: this kernel
// (6.18) shows a hugetlb segment's rss multiplied by 512 (2 GiB for 4 MiB
// resident), which no normal segment can reach; a kernel that reports it
// unscaled just leaves HugeKnown false. To be sure, attach read-only with
// Lock: Off and ask Segment.Huge (this sets the last pid and attach time).
//
// # Lock
//
// Lock uses mlock on this process's mapping, not shmctl(SHM_LOCK): mlock is
// charged to the process's RLIMIT_MEMLOCK and ends with the mapping, while
// SHM_LOCK is charged to the user and outlives every process, which a killed
// ring would leak. mlock also faults the pages in. It does not apply to
// hugetlb mappings (the kernel skips them, and smaps shows Locked: 0 kB);
// they are never swapped anyway, so Locked reports false for huge pages. On
// failure the message gives RLIMIT_MEMLOCK, what is locked already and the
// fixes (ulimit -l, LimitMEMLOCK=, limits.conf, CAP_IPC_LOCK).
//
// # Advise and pre-touch
//
// Advise gives MADV_WILLNEED, and MADV_HUGEPAGE on normal pages, which only
// matters where /sys/kernel/mm/transparent_hugepage/shmem_enabled is advise
// or always (it is never by default; then it does nothing). Pretouch faults
// every page in before Create or Attach returns: one MADV_POPULATE_WRITE
// (READ for a read-only mapping) where the kernel has it (5.14+), else one
// atomic add of zero per page, which allocates the page without changing
// data even if another process writes the same word meanwhile.
//
// # Detach and Remove
//
// Detach (shmdt) is idempotent; afterwards Bytes is nil and Stat returns
// ErrDetached. A slice obtained before Detach cannot be revoked: using it
// faults, so callers must not keep it past Detach. Remove is IPC_RMID by id:
// the key is free at once, the memory goes at the last detach of any
// process, and a segment marked so can still be attached by id (Linux
// allows it) but not by key. A second Remove of one Segment is ErrRemoved;
// before removing, Remove checks that the id still names the segment it
// attached (creator pid and key), so a reused id is never removed.
//
// # Inspection
//
// List, Lookup and StatID read /proc/sysvipc/shm, which every user may read
// for every segment of the IPC namespace (IPC_STAT would need read
// permission), so ls and gc see other users' segments.
//
// # What each option buys on this machine
//
// BenchmarkOptionsCompare runs every configuration once per round in a
// rotating order, so the ratios come from one run. 64 MiB segments; each
// figure is the median over 3 runs of the per-run median of 9 rounds (after
// a warm-up round), on a 2-core AMD EPYC Firecracker VM, Linux 6.18, with
// other test suites running alongside (absolute times are noisy; the ratios
// are what to quote):
//
//   - Huge pages: create + pre-touch + remove takes 6.4 ms instead of 47.8 ms
//     (7.3x); touching every 4 KiB of an untouched segment costs 6.4 ms
//     instead of 41.4 ms (6.5x): 32 faults instead of 16384, each huge fault
//     being mostly the kernel zeroing 2 MiB.
//   - Pre-touch: the first full write of 64 MiB takes 5.2 ms pre-touched
//     against 47.6 ms cold on normal pages (9.2x), 4.0 ms against 10.1 ms on
//     huge pages (2.6x): the faults move from the first items to setup.
//   - MADV_POPULATE_WRITE against the page-stride fallback: 34.6 ms against
//     44.2 ms on normal pages (22% less); the fallback only matters before
//     Linux 5.14.
//   - mlock: +7 to 9% on a pre-touched normal-page create (51.3 ms against
//     47.8 ms). It buys protection from swap, not speed, and nothing for
//     huge pages.
//   - Advise: nothing measurable here: MADV_WILLNEED has nothing to read
//     ahead in a new segment, and MADV_HUGEPAGE needs shmem THP, which is
//     "never" on this machine.
package shm
