package shm

// Readers of the /proc and /sys files the package consults. The paths are
// variables so that tests can point them at fixtures.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

var (
	procSysvShm     = "/proc/sysvipc/shm"
	procShmmax      = "/proc/sys/kernel/shmmax"
	procShmall      = "/proc/sys/kernel/shmall"
	procShmmni      = "/proc/sys/kernel/shmmni"
	procRmidForced  = "/proc/sys/kernel/shm_rmid_forced"
	procHugetlbGrp  = "/proc/sys/vm/hugetlb_shm_group"
	procNrHugepages = "/proc/sys/vm/nr_hugepages"
	procMeminfo     = "/proc/meminfo"
	procSelfSmaps   = "/proc/self/smaps"
	procSelfStatus  = "/proc/self/status"
	sysHugepages2M  = "/sys/kernel/mm/hugepages/hugepages-2048kB"
)

// readUint reads a file holding one unsigned decimal number, saturating at
// math.MaxInt64 (kernel.shmmax is often ULONG_MAX minus a little).
func readUint(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	if u > math.MaxInt64 {
		return math.MaxInt64, nil
	}
	return int64(u), nil
}

// readKB returns the value of a "Name:   123 kB" line of a /proc status-like
// file, in bytes, or an error if the line is missing.
func readKB(path, name string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || string(k) != name {
			continue
		}
		f := strings.Fields(string(v))
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s %s: %w", path, name, err)
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		return n, nil
	}
	return 0, fmt.Errorf("read %s: no %q line", path, name)
}

// smapsEntry holds the fields of one mapping's /proc/self/smaps entry that
// the package and its tests use, in bytes.
type smapsEntry struct {
	Start, End     uintptr
	Size           int64
	KernelPageSize int64
	Rss            int64
	Locked         int64
	SharedHugetlb  int64
	PrivateHugetlb int64
	VMFlags        []string
}

// Hugetlb is the huge-page memory of the mapping that is resident: hugetlb
// pages are not counted in Rss, and they count as private while only one
// process maps them.
func (e smapsEntry) Hugetlb() int64 { return e.SharedHugetlb + e.PrivateHugetlb }

// readSmaps returns the smaps entry of the mapping that starts at addr.
func readSmaps(addr uintptr) (smapsEntry, error) {
	f, err := os.Open(procSelfSmaps)
	if err != nil {
		return smapsEntry{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var e smapsEntry
	found := false
	for sc.Scan() {
		line := sc.Text()
		if start, end, ok := smapsHeader(line); ok {
			if found {
				return e, nil
			}
			if start == addr {
				found = true
				e.Start, e.End = start, end
			}
			continue
		}
		if !found {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if k == "VmFlags" {
			e.VMFlags = strings.Fields(v)
			continue
		}
		var dst *int64
		switch k {
		case "Size":
			dst = &e.Size
		case "KernelPageSize":
			dst = &e.KernelPageSize
		case "Rss":
			dst = &e.Rss
		case "Locked":
			dst = &e.Locked
		case "Shared_Hugetlb":
			dst = &e.SharedHugetlb
		case "Private_Hugetlb":
			dst = &e.PrivateHugetlb
		default:
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return e, fmt.Errorf("parse %s: line %q", procSelfSmaps, line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return e, fmt.Errorf("parse %s: line %q: %w", procSelfSmaps, line, err)
		}
		*dst = n * 1024
	}
	if err := sc.Err(); err != nil {
		return e, fmt.Errorf("read %s: %w", procSelfSmaps, err)
	}
	if !found {
		return e, fmt.Errorf("read %s: no mapping starts at %#x", procSelfSmaps, addr)
	}
	return e, nil
}

// smapsHeader parses "start-end perms offset dev inode [path]".
func smapsHeader(line string) (start, end uintptr, ok bool) {
	r, _, ok := strings.Cut(line, " ")
	if !ok {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(r, "-")
	if !ok {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(a, 16, 64)
	e, err2 := strconv.ParseUint(b, 16, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uintptr(s), uintptr(e), true
}

// vmaPageSize returns the kernel page size of the mapping that starts at
// addr: PROCMAP_QUERY where the kernel has it (6.11+), else smaps.
func vmaPageSize(addr uintptr) (int64, error) {
	n, qerr := vmaPageSizeQuery(addr)
	if qerr == nil {
		return n, nil
	}
	e, err := readSmaps(addr)
	if err != nil {
		return 0, errors.Join(qerr, err)
	}
	return e.KernelPageSize, nil
}
