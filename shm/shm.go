package shm

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Policy says whether a memory feature is wanted: Auto uses it when it can
// and reports (Segment.Notes) when it cannot, On fails instead, Off does not
// try. The zero value is Auto.
type Policy int

// The policies.
const (
	Auto Policy = iota
	On
	Off
)

// String returns "auto", "on" or "off".
func (p Policy) String() string {
	switch p {
	case Auto:
		return "auto"
	case On:
		return "on"
	case Off:
		return "off"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy parses "auto", "on" or "off". The error wraps ErrOptions and
// says what was expected.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "auto":
		return Auto, nil
	case "on":
		return On, nil
	case "off":
		return Off, nil
	}
	return Auto, fmt.Errorf("parse policy %q: %w: want auto, on or off", s, ErrOptions)
}

// Set implements flag.Value, so a Policy can be a command-line flag.
func (p *Policy) Set(s string) error {
	v, err := ParsePolicy(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

func (p Policy) valid() bool { return p == Auto || p == On || p == Off }

// Options are the memory options of Create and Attach. The zero value asks
// for huge pages and mlock where available (Auto), no madvise, no pre-touch,
// and permission 0600. For a short inspection attach (ls, gc) use
// Options{Lock: Off}: the zero value would mlock, and so fault in, the whole
// segment.
type Options struct {
	// HugePages backs the segment with 2 MiB huge pages (SHM_HUGETLB); the
	// size is rounded up to a multiple of 2 MiB. Auto falls back to normal
	// pages with a note naming the fix; On fails with ErrHugePages. Create
	// only: Attach gets whatever the segment is.
	HugePages Policy
	// Lock mlocks this process's mapping so its pages are never swapped out.
	// Auto goes on without with a note when RLIMIT_MEMLOCK is too small; On
	// fails with ErrLock. It does not apply to huge pages, which the kernel
	// never swaps (Locked reports false for them). mlock faults every page
	// in, so an attach that only inspects a segment should use Off.
	Lock Policy
	// Advise gives the kernel madvise hints: MADV_WILLNEED, and
	// MADV_HUGEPAGE on normal pages (it takes effect only where shmem
	// transparent huge pages are enabled: shmem_enabled advise or always).
	Advise bool
	// Pretouch faults every page in before Create or Attach returns, with
	// MADV_POPULATE_WRITE (MADV_POPULATE_READ for a read-only mapping) where
	// the kernel has it (5.14+), else one access per page, so that the first
	// use of the memory does not pay the page faults.
	Pretouch bool
	// Perm are the permission bits given at creation, 0600 when zero; they
	// must include 0600 (Create attaches read-write). The umask does not
	// apply to System V segments. Create only; Attach ignores it.
	Perm os.FileMode
}

func (o Options) check() error {
	switch {
	case !o.HugePages.valid():
		return fmt.Errorf("huge pages %v: %w: want auto, on or off", o.HugePages, ErrOptions)
	case !o.Lock.valid():
		return fmt.Errorf("lock %v: %w: want auto, on or off", o.Lock, ErrOptions)
	case o.Perm&^permBits != 0:
		return fmt.Errorf("permission %v: %w: only the bits of 0777 apply", o.Perm, ErrOptions)
	case o.Perm != 0 && o.Perm&0o600 != 0o600:
		return fmt.Errorf("permission %04o: %w: the owner needs read and write (0600) to attach what it creates", o.Perm, ErrOptions)
	}
	return nil
}

func (o Options) perm() int {
	if o.Perm == 0 {
		return 0o600
	}
	return int(o.Perm)
}

// Segment is one attachment of a System V shared memory segment by this
// process. Its methods are safe for concurrent use. The memory (Bytes) is
// shared with every process that attached the segment, so what it holds is
// untrusted input; the package neither reads nor writes it after setup.
//
// Detach ends the attachment; Remove marks the segment for removal, which the
// kernel carries out at the last detach of any process. They are independent:
// a creator that is done calls both, in either order. A segment that is
// neither removed nor attached stays until some process removes it.
type Segment struct {
	id       int
	key      int
	size     int
	cpid     int
	huge     bool
	readOnly bool

	mu      sync.Mutex
	mem     []byte // nil after Detach
	locked  bool
	removed bool
	notes   []string
}

// Create makes a new segment with key and size bytes (IPC_CREAT|IPC_EXCL)
// and attaches it read-write. It never adopts an existing segment: if the
// key is taken the error matches fs.ErrExist and describes the holder (and
// matches ErrSize too when its size differs). Bad sizes (not positive, above
// kernel.shmmax or the machine's memory) give ErrSize. The options apply as
// documented on Options; fallbacks taken under Auto are in Notes. On any
// failure after the segment was made, it is detached and removed again.
// The segment is filled with zeros by the kernel.
func Create(key int, size int, opt Options) (*Segment, error) {
	s, err := create(key, size, opt)
	if err != nil {
		return nil, fmt.Errorf("create segment key %s: %w", fmtKey(key), err)
	}
	return s, nil
}

func create(key, size int, opt Options) (*Segment, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := opt.check(); err != nil {
		return nil, err
	}
	if err := checkSize(size); err != nil {
		return nil, err
	}
	flags := unix.IPC_CREAT | unix.IPC_EXCL | opt.perm()
	var notes []string
	id, huge := -1, false
	if opt.HugePages != Off {
		hsize := (size + HugePageSize - 1) / HugePageSize * HugePageSize
		err := checkSize(hsize)
		if err == nil {
			id, err = shmget(key, hsize, flags|hugeFlags)
			if errors.Is(err, syscall.EEXIST) {
				return nil, existsError(key, size, err)
			}
			if err != nil {
				err = hugeError(hsize, err)
			}
		} else {
			err = fmt.Errorf("%w: %w", ErrHugePages, err)
		}
		switch {
		case err == nil:
			huge, size = true, hsize
		case opt.HugePages == On:
			return nil, err
		default:
			notes = append(notes, "using normal pages: "+err.Error())
		}
	}
	if !huge {
		var err error
		if id, err = shmget(key, size, flags); err != nil {
			return nil, createError(key, size, err)
		}
	}
	s, err := attachID(id, key, false, huge)
	if err != nil {
		return nil, errors.Join(err, shmrmid(id))
	}
	s.notes = notes
	if err := s.setup(opt); err != nil {
		return nil, errors.Join(err, s.Detach(), s.Remove())
	}
	return s, nil
}

// checkSize refuses sizes the kernel would refuse or that cannot fit.
func checkSize(size int) error {
	if size <= 0 {
		return fmt.Errorf("size %d: %w: it must be positive", size, ErrSize)
	}
	if max, err := readUint(procShmmax); err == nil && int64(size) > max {
		return fmt.Errorf("size %s: %w: above kernel.shmmax (%d); raise it: sysctl -w kernel.shmmax=%d",
			fmtBytes(int64(size)), ErrSize, max, size)
	}
	if mem := memTotal(); mem > 0 && int64(size) > mem {
		return fmt.Errorf("size %s: %w: above the machine's memory (%s)", fmtBytes(int64(size)), ErrSize, fmtBytes(mem))
	}
	return nil
}

// memTotal is the machine's RAM in bytes (0 if unknown).
func memTotal() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	total := uint64(si.Totalram) * uint64(si.Unit)
	if total > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(total)
}

// existsError describes the segment that holds key (shmget gave EEXIST).
func existsError(key, size int, err error) error {
	in, lerr := Lookup(key)
	if lerr != nil {
		return fmt.Errorf("key is taken: %w", err)
	}
	holder := fmt.Sprintf("key is taken by segment id %d (size %d, owner uid %d, mode %04o, creator pid %d)",
		in.ID, in.Size, in.UID, in.Mode, in.CreatorPID)
	if in.UID != os.Geteuid() {
		holder += fmt.Sprintf(" that belongs to another user (we are uid %d)", os.Geteuid())
	}
	if in.Size != int64(size) && in.Size != int64((size+HugePageSize-1)/HugePageSize*HugePageSize) {
		return fmt.Errorf("%s whose size differs from the %d asked for: %w: %w", holder, size, ErrSize, err)
	}
	return fmt.Errorf("%s: %w", holder, err)
}

// createError explains a failed shmget(IPC_CREAT) of normal pages.
func createError(key, size int, err error) error {
	switch {
	case errors.Is(err, syscall.EEXIST):
		return existsError(key, size, err)
	case errors.Is(err, syscall.ENOSPC):
		mni, _ := readUint(procShmmni)
		all, _ := readUint(procShmall)
		return fmt.Errorf("system limit reached: kernel.shmmni (%d segments) or kernel.shmall (%d pages in all); "+
			"remove unused segments (ipcs -m) or raise the limit: %w", mni, all, err)
	case errors.Is(err, syscall.ENOMEM):
		return fmt.Errorf("not enough memory for %s: %w", fmtBytes(int64(size)), err)
	case errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("size %d refused by the kernel (see kernel.shmmax): %w: %w", size, ErrSize, err)
	}
	return err
}

// Attach attaches the existing segment that has key. The error matches
// fs.ErrNotExist when no segment has the key, and fs.ErrPermission (naming
// the owner and mode) when this user may not attach it. readOnly maps it
// with SHM_RDONLY: writing to the memory then faults. Lock, Advise and
// Pretouch apply to this mapping; HugePages and Perm are ignored (Huge
// reports what the segment is). Attach does not check the size: compare Size
// with what you expect.
func Attach(key int, readOnly bool, opt Options) (*Segment, error) {
	s, err := attach(key, readOnly, opt)
	if err != nil {
		return nil, fmt.Errorf("attach segment key %s: %w", fmtKey(key), err)
	}
	return s, nil
}

func attach(key int, readOnly bool, opt Options) (*Segment, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := opt.check(); err != nil {
		return nil, err
	}
	id, err := shmget(key, 0, 0)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("no segment has this key: %w", err)
		}
		return nil, err
	}
	return attachSetup(id, key, readOnly, opt)
}

// AttachID is Attach by shmid, which also reaches a segment marked for
// removal (until its last detach). The error matches fs.ErrNotExist when no
// segment has the id.
func AttachID(id int, readOnly bool, opt Options) (*Segment, error) {
	if err := opt.check(); err != nil {
		return nil, fmt.Errorf("attach segment id %d: %w", id, err)
	}
	s, err := attachSetup(id, -1, readOnly, opt)
	if err != nil {
		return nil, fmt.Errorf("attach segment id %d: %w", id, err)
	}
	return s, nil
}

func attachSetup(id, key int, readOnly bool, opt Options) (*Segment, error) {
	s, err := attachID(id, key, readOnly, false)
	if err != nil {
		return nil, err
	}
	if ps, err := vmaPageSize(addrOf(s.mem)); err != nil {
		// Without /proc the page kind is unknown; the memory is usable.
		s.addNote("page size unknown, assuming normal pages: %v", err)
	} else {
		s.huge = ps > int64(os.Getpagesize())
	}
	if err := s.setup(opt); err != nil {
		return nil, errors.Join(err, s.Detach())
	}
	return s, nil
}

// attachID maps segment id. key < 0 means: take it from IPC_STAT.
func attachID(id, key int, readOnly, huge bool) (*Segment, error) {
	b, err := shmat(id, readOnly)
	if err != nil {
		switch {
		case errors.Is(err, syscall.EACCES):
			return nil, permissionError(id, readOnly, err)
		case errors.Is(err, syscall.ENOMEM):
			return nil, fmt.Errorf("no room in the address space: %w", err)
		}
		return nil, idErr(err)
	}
	d, err := shmstat(id)
	if err != nil {
		return nil, errors.Join(err, shmdt(b))
	}
	if key < 0 {
		key = int(d.Perm.Key)
	}
	return &Segment{
		id: id, key: key, size: len(b), cpid: int(d.Cpid), huge: huge, readOnly: readOnly, mem: b,
	}, nil
}

// permissionError names the owner and mode of a segment we may not attach.
func permissionError(id int, readOnly bool, err error) error {
	want := "read-write"
	if readOnly {
		want = "read-only"
	}
	in, serr := statID(id)
	if serr != nil {
		return fmt.Errorf("no permission to attach segment id %d %s: %w", id, want, err)
	}
	return fmt.Errorf("segment id %d is owned by uid %d gid %d with mode %04o, and we (uid %d, gid %d) may not attach it %s; "+
		"its owner can share it with a group (-perm 0660): %w", id, in.UID, in.GID, in.Mode, os.Geteuid(), os.Getegid(), want, err)
}

// Setup applies opt's mapping options (Advise, Pretouch, Lock; the others
// are ignored) to an attached segment, as Attach does: for a caller that
// attaches with none of them, validates the contents, and only then pays
// for (and is charged with) faulting in or locking the whole size. Call it
// before the Segment is shared with other goroutines.
func (s *Segment) Setup(opt Options) error {
	if err := opt.check(); err != nil {
		return fmt.Errorf("set up segment id %d: %w", s.id, err)
	}
	return s.setup(opt)
}

// setup applies the mapping options, in the order that costs least:
// hints, then the faults, then the lock (which finds the pages present).
func (s *Segment) setup(opt Options) error {
	if opt.Advise {
		s.advise()
	}
	if opt.Pretouch {
		if err := s.pretouch(); err != nil {
			return err
		}
	}
	if opt.Lock != Off {
		return s.lock(opt.Lock == On)
	}
	return nil
}

// Bytes returns the mapping, or nil after Detach. The slice aliases memory
// shared with other processes, which may change it at any time. The package
// cannot revoke a slice it handed out: using it after Detach faults (or,
// once the address is reused, reads unrelated memory), so keep it no longer
// than the attachment.
func (s *Segment) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mem
}

// ID returns the segment's shmid.
func (s *Segment) ID() int { return s.id }

// Key returns the key the segment was created or attached with (0 for a
// segment attached by id after it was marked for removal).
func (s *Segment) Key() int { return s.key }

// Size returns the segment's size in bytes, len(Bytes()): for huge pages the
// size asked for rounded up to a multiple of 2 MiB.
func (s *Segment) Size() int { return s.size }

// Huge reports whether the segment is backed by huge pages: for Create what
// was obtained, for Attach what the mapping's page size shows.
func (s *Segment) Huge() bool { return s.huge }

// ReadOnly reports whether the mapping is read-only.
func (s *Segment) ReadOnly() bool { return s.readOnly }

// Locked reports whether this process's mapping is mlocked. It is false for
// huge pages (never swapped, and mlock does not apply) and after Detach.
func (s *Segment) Locked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.locked
}

// Notes returns the fallbacks taken under Auto and other things the caller
// should tell the user, one line each, such as "using normal pages: huge
// pages unavailable: pool has 3 free 2 MiB pages (0 of them reserved), need
// 33; run: sysctl -w vm.nr_hugepages=33: ...". The slice is a copy.
func (s *Segment) Notes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.notes...)
}

func (s *Segment) addNote(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

// Detach unmaps the segment from this process (shmdt), which also drops the
// mlock. It is idempotent. Afterwards Bytes returns nil and Stat returns
// ErrDetached; ID, Key, Size, Huge and Remove still work. Detach does not
// remove the segment.
func (s *Segment) Detach() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mem := s.mem
	if mem == nil {
		return nil
	}
	s.mem, s.locked = nil, false
	if err := shmdt(mem); err != nil {
		return fmt.Errorf("detach segment id %d: %w", s.id, err)
	}
	return nil
}

// Remove marks the segment for removal (IPC_RMID by id): the key is free at
// once, and the kernel destroys the memory at the last detach of any
// process, so this and other attachments stay valid until then. It works
// before or after Detach. A second Remove of the same Segment gives
// ErrRemoved. Only the owner, the creator or root may remove a segment (the
// error matches fs.ErrPermission and names the owner). If the id no longer
// names this segment (it was removed and destroyed meanwhile), the error
// matches fs.ErrNotExist and nothing else is touched.
func (s *Segment) Remove() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed {
		return fmt.Errorf("remove segment id %d: %w", s.id, ErrRemoved)
	}
	// An id is reused only after its sequence number wraps, but refuse to
	// remove a stranger's segment even then.
	if d, err := shmstat(s.id); err == nil &&
		(int(d.Cpid) != s.cpid || d.Perm.Key != 0 && int(d.Perm.Key) != s.key) {
		return fmt.Errorf("remove segment id %d: the id now names another segment (key %s, creator pid %d): %w",
			s.id, fmtKey(int(d.Perm.Key)), d.Cpid, fs.ErrNotExist)
	}
	if err := shmrmid(s.id); err != nil {
		return fmt.Errorf("remove segment id %d: %w", s.id, rmidErr(s.id, err))
	}
	s.removed = true
	return nil
}

// Stat returns the kernel's view of the segment, with Huge known. After
// Detach it returns ErrDetached (StatID still works).
func (s *Segment) Stat() (Info, error) {
	s.mu.Lock()
	attached := s.mem != nil
	s.mu.Unlock()
	if !attached {
		return Info{}, fmt.Errorf("stat segment id %d: %w", s.id, ErrDetached)
	}
	in, err := StatID(s.id)
	if err != nil {
		return Info{}, err
	}
	in.Huge, in.HugeKnown = s.huge, true
	return in, nil
}
