package shm

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Info describes a segment as the kernel reports it: a snapshot, stale as
// soon as it is returned.
type Info struct {
	Key  int         // the key; 0 (IPC_PRIVATE) once the segment is marked for removal
	ID   int         // the shmid
	Size int64       // shm_segsz: the size it was created with
	Mode os.FileMode // the permission bits (0777 mask)

	UID, GID   int // the owner; only it (or root) may remove the segment or change its mode
	CUID, CGID int // the creator

	CreatorPID int // shm_cpid: the process that created it
	LastPID    int // shm_lpid: the last process to attach or detach
	Attached   int // shm_nattch: current attachments, over all processes

	// Huge reports whether the segment is backed by huge pages (SHM_HUGETLB),
	// valid when HugeKnown is set. Neither /proc/sysvipc/shm nor IPC_STAT
	// says so, so only Segment.Stat (which knows its own mapping) always
	// sets HugeKnown. For List, Lookup and StatID it is set only when the
	// figures prove it: a segment locked with SHM_LOCK is not huge (SHM_LOCK
	// is a no-op on hugetlb), and a resident size above the segment's size
	// proves huge pages (Linux 6.18 reports hugetlb residency in
	// /proc/sysvipc/shm multiplied by the pages per huge page). To know for
	// sure, attach the segment read-only with Lock: Off and call
	// Segment.Huge.
	Huge      bool
	HugeKnown bool

	// Locked reports SHM_LOCKED: some process applied shmctl(SHM_LOCK).
	// This package locks with mlock, which is per mapping and does not show
	// here; Segment.Locked reports that.
	Locked bool
	// Removed reports SHM_DEST: the segment is marked for removal and is
	// destroyed at its last detach. Its key is then 0.
	Removed bool

	ATime, DTime, CTime time.Time // last attach, last detach, last change; zero if never

	// Resident and Swapped are the bytes in memory and in swap, from
	// /proc/sysvipc/shm (zero when the Info came from IPC_STAT). For huge
	// pages the kernel's figure can be inflated (see Huge).
	Resident, Swapped int64
}

// List returns every segment of this IPC namespace, from /proc/sysvipc/shm,
// which any user may read (no IPC_STAT permission is needed). Segments of
// other users are included. The order is the kernel's.
func List() ([]Info, error) {
	f, err := os.Open(procSysvShm)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	defer f.Close()
	infos, err := parseSysvShm(bufio.NewScanner(f))
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	return infos, nil
}

// sysvColumns are the columns of /proc/sysvipc/shm the parser needs; they
// are found by their header names so that added columns do not matter.
var sysvColumns = []string{"key", "shmid", "perms", "size", "cpid", "lpid", "nattch",
	"uid", "gid", "cuid", "cgid", "atime", "dtime", "ctime", "rss", "swap"}

func parseSysvShm(sc *bufio.Scanner) ([]Info, error) {
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("parse %s: empty", procSysvShm)
	}
	header := strings.Fields(sc.Text())
	col := make(map[string]int, len(header))
	for i, h := range header {
		col[h] = i
	}
	idx := make([]int, len(sysvColumns))
	for i, name := range sysvColumns {
		j, ok := col[name]
		if !ok && name != "rss" && name != "swap" {
			return nil, fmt.Errorf("parse %s: no %q column in header %q", procSysvShm, name, sc.Text())
		}
		if !ok {
			j = -1
		}
		idx[i] = j
	}
	var out []Info
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) < len(header) {
			return nil, fmt.Errorf("parse %s: short line %q", procSysvShm, sc.Text())
		}
		var v [16]int64
		for i, j := range idx {
			if j < 0 {
				continue
			}
			base := 10
			if sysvColumns[i] == "perms" {
				base = 8
			}
			n, err := strconv.ParseInt(fields[j], base, 64)
			if err != nil {
				// size, rss and swap are unsigned longs in the kernel.
				u, uerr := strconv.ParseUint(fields[j], base, 64)
				if uerr != nil {
					return nil, fmt.Errorf("parse %s: column %s of %q: %w", procSysvShm, sysvColumns[i], sc.Text(), err)
				}
				_ = u
				n = math.MaxInt64
			}
			v[i] = n
		}
		in := Info{
			Key: int(int32(v[0])), ID: int(v[1]), Size: v[3],
			CreatorPID: int(v[4]), LastPID: int(v[5]), Attached: int(v[6]),
			UID: int(v[7]), GID: int(v[8]), CUID: int(v[9]), CGID: int(v[10]),
			ATime: unixTime(v[11]), DTime: unixTime(v[12]), CTime: unixTime(v[13]),
			Resident: v[14], Swapped: v[15],
		}
		setMode(&in, uint32(v[2]))
		inferHuge(&in)
		out = append(out, in)
	}
	return out, sc.Err()
}

func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}

func setMode(in *Info, mode uint32) {
	in.Mode = os.FileMode(mode & permBits)
	in.Locked = mode&shmLocked != 0
	in.Removed = mode&shmDest != 0
}

// inferHuge sets Huge and HugeKnown where /proc/sysvipc/shm's figures prove
// the page kind (see Info.Huge).
func inferHuge(in *Info) {
	page := int64(os.Getpagesize())
	switch {
	case in.Locked:
		in.Huge, in.HugeKnown = false, true
	case in.Resident > (in.Size+page-1)/page*page:
		in.Huge, in.HugeKnown = true, true
	}
}

// infoFromDesc converts an IPC_STAT answer.
func infoFromDesc(id int, d *unix.SysvShmDesc) Info {
	in := Info{
		Key: int(d.Perm.Key), ID: id, Size: int64(d.Segsz),
		UID: int(d.Perm.Uid), GID: int(d.Perm.Gid), CUID: int(d.Perm.Cuid), CGID: int(d.Perm.Cgid),
		CreatorPID: int(d.Cpid), LastPID: int(d.Lpid), Attached: int(d.Nattch),
		ATime: unixTime(d.Atime), DTime: unixTime(d.Dtime), CTime: unixTime(d.Ctime),
	}
	setMode(&in, d.Perm.Mode)
	return in
}

// Lookup returns the segment that has key, from /proc/sysvipc/shm. The error
// matches fs.ErrNotExist when there is none (a segment marked for removal no
// longer has its key).
func Lookup(key int) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, fmt.Errorf("look up segment key %s: %w", fmtKey(key), err)
	}
	all, err := List()
	if err != nil {
		return Info{}, fmt.Errorf("look up segment key %s: %w", fmtKey(key), err)
	}
	for _, in := range all {
		if in.Key == key {
			return in, nil
		}
	}
	return Info{}, fmt.Errorf("look up segment key %s: no segment has this key: %w", fmtKey(key), fs.ErrNotExist)
}

// StatID returns the segment with id. It reads /proc/sysvipc/shm (which needs
// no permission on the segment) and falls back to IPC_STAT when that file is
// missing. The error matches fs.ErrNotExist when no segment has the id.
func StatID(id int) (Info, error) {
	in, err := statID(id)
	if err != nil {
		return Info{}, fmt.Errorf("stat segment id %d: %w", id, err)
	}
	return in, nil
}

func statID(id int) (Info, error) {
	all, err := List()
	if err == nil {
		for _, in := range all {
			if in.ID == id {
				return in, nil
			}
		}
		return Info{}, fmt.Errorf("no segment has this id: %w", fs.ErrNotExist)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Info{}, err
	}
	d, serr := shmstat(id)
	if serr != nil {
		return Info{}, idErr(serr)
	}
	return infoFromDesc(id, &d), nil
}

// idErr makes the errnos shmctl and shmat give for an id that names no
// segment (EINVAL, EIDRM) match fs.ErrNotExist.
func idErr(err error) error {
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EIDRM) {
		return fmt.Errorf("no segment has this id: %w (%w)", fs.ErrNotExist, err)
	}
	return err
}

// RemoveID marks the segment with id for removal (IPC_RMID): its key is
// freed at once and the memory when the last process detaches. Only the
// owner, the creator or root may do it; otherwise the error matches
// fs.ErrPermission and names the owner. An id that names no segment gives an
// error matching fs.ErrNotExist.
func RemoveID(id int) error {
	if err := shmrmid(id); err != nil {
		return fmt.Errorf("remove segment id %d: %w", id, rmidErr(id, err))
	}
	return nil
}

func rmidErr(id int, err error) error {
	if errors.Is(err, syscall.EPERM) {
		if in, serr := statID(id); serr == nil {
			return fmt.Errorf("owned by uid %d (created by uid %d) and we are uid %d; only they or root may remove it: %w",
				in.UID, in.CUID, os.Geteuid(), err)
		}
	}
	return idErr(err)
}

// RmidForced reports kernel.shm_rmid_forced. When it is 1 the kernel
// destroys a segment as soon as no process has it attached (and, when its
// creator exits, one that nobody attached), which defeats resuming a ring
// after both sides died; callers should warn once. systemd's RemoveIPC=yes does
// the same at logout of a non-system user, and cannot be seen from here.
func RmidForced() (bool, error) {
	n, err := readUint(procRmidForced)
	if err != nil {
		return false, fmt.Errorf("read kernel.shm_rmid_forced: %w", err)
	}
	return n != 0, nil
}
