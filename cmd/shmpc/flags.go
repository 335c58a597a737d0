package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/shmpc/shmpc/shm"
)

// size is a byte count flag accepting 4096, 64KiB, 8MiB, 4GiB (also
// KB/MB/GB/K/M/G as binary multiples).
type size struct {
	n   int64
	set bool
}

func (s *size) String() string { return formatSize(s.n) }

func (s *size) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	s.n, s.set = n, true
	return nil
}

func parseSize(v string) (int64, error) {
	t := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
	} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q: want a non-negative whole number of bytes, optionally with KiB, MiB, GiB or TiB (e.g. 4096, 64KiB, 8MiB, 4GiB)", v)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", v)
	}
	return n * mult, nil
}

func formatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return fmt.Sprintf("%d%s", n/u.m, u.s)
		}
	}
	return strconv.FormatInt(n, 10)
}

// count is an item-count flag: a non-negative whole number, and whether
// it was given (-count 0 is an empty stream, not the default).
type count struct {
	n   int64
	set bool
}

func (c *count) String() string {
	if !c.set {
		return ""
	}
	return strconv.FormatInt(c.n, 10)
}

func (c *count) Set(v string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("want a non-negative whole number of items")
	}
	c.n, c.set = n, true
	return nil
}

// fileName is a file-name flag that refuses an empty name, which is an
// unset shell variable more often than a choice.
type fileName string

func (f *fileName) String() string { return string(*f) }

func (f *fileName) Set(v string) error {
	if v == "" {
		return fmt.Errorf("want a file name (it is empty: an unset variable?)")
	}
	*f = fileName(v)
	return nil
}

// policy is an auto|on|off flag.
type policy struct{ p shm.Policy }

func (p *policy) String() string { return p.p.String() }
func (p *policy) Set(v string) error {
	x, err := shm.ParsePolicy(v)
	if err != nil {
		return fmt.Errorf("want auto, on or off")
	}
	p.p = x
	return nil
}

// perm is an octal permission flag.
type perm struct{ m uint32 }

func (p *perm) String() string { return fmt.Sprintf("%#o", p.m) }
func (p *perm) Set(v string) error {
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || n > 0o777 || n&0o600 != 0o600 {
		return fmt.Errorf("want octal permission bits within 0777 that include 0600 (e.g. 0600, 0660)")
	}
	p.m = uint32(n)
	return nil
}

// produceFlags are the flags of `produce` (and of `run`).
type produceFlags struct {
	slots     int
	slotSize  size
	count     count
	bytes     size
	hugepages policy
	mlock     policy
	madvise   bool
	pretouch  bool
	perm      perm
	fresh     bool
	peerFlags
}

// peerFlags are the flags about waiting for the peer, which produce and
// consume both have (run takes them once, for both sides).
type peerFlags struct {
	wait        time.Duration
	peerTimeout time.Duration
	stall       time.Duration
	spin        time.Duration
}

// register adds -wait, -peer-timeout, -stall-timeout and -spin, with the
// help texts of one side.
func (f *peerFlags) register(fs *flag.FlagSet, waitUsage, peerTimeoutUsage, stallUsage string) {
	fs.DurationVar(&f.wait, "wait", 10*time.Second, waitUsage)
	fs.DurationVar(&f.peerTimeout, "peer-timeout", 0, peerTimeoutUsage)
	fs.DurationVar(&f.stall, "stall-timeout", 0, stallUsage)
	fs.DurationVar(&f.spin, "spin", 0, spinUsage)
}

func (f *peerFlags) check() error {
	if f.wait <= 0 {
		return usagef("-wait %v: want a positive duration", f.wait)
	}
	if f.peerTimeout < 0 || f.stall < 0 || f.spin < 0 {
		return usagef("-peer-timeout, -stall-timeout and -spin must not be negative")
	}
	return nil
}

// spinUsage is the help of -spin, for produce, consume and run.
const spinUsage = "before sleeping on a full (producer) or empty (consumer) ring, keep looking at it for this long, busy: spin-then-block; saves wake-ups for small items at the cost of a busy CPU (0: block at once)"

func (f *produceFlags) register(fs *flag.FlagSet) {
	f.slotSize = size{n: 8 << 20}
	f.perm = perm{m: 0o600}
	fs.IntVar(&f.slots, "slots", 8, "number of slots in the ring")
	fs.Var(&f.slotSize, "slot-size", "bytes per slot, a multiple of 4096 (e.g. 64KiB, 8MiB)")
	fs.Var(&f.count, "count", "send `N` items of exactly the slot size")
	fs.Var(&f.bytes, "bytes", "send `SIZE` bytes: full items and one shorter last item")
	fs.Var(&f.hugepages, "hugepages", "back the ring with 2 MiB huge pages: auto, on or off")
	fs.Var(&f.mlock, "mlock", "mlock the ring: auto, on or off")
	fs.BoolVar(&f.madvise, "madvise", true, "give the kernel madvise hints (WILLNEED, HUGEPAGE)")
	fs.BoolVar(&f.pretouch, "pretouch", true, "fault every page of the ring in at creation")
	fs.Var(&f.perm, "perm", "permission bits of the ring's objects (0660 lets a group share it)")
	fs.BoolVar(&f.fresh, "fresh", false, "discard an existing ring of this NAME instead of resuming it")
	f.peerFlags.register(fs,
		"how long to wait for the peer: a consumer for ready, a producer with a full ring for its first consumer",
		"how long to keep the ring for a restarted peer after the peer died (0: give up at once)",
		"treat a live peer that made no progress for this long, while work was pending, as lost (0: off)")
}

// check validates the produce flags; source says whether -stdin was given.
func (f *produceFlags) check(stdin bool) error {
	if f.slots < 1 || f.slots > 1<<20 {
		return usagef("-slots %d: want 1 to 1048576", f.slots)
	}
	if f.slotSize.n <= 0 || f.slotSize.n%4096 != 0 {
		return usagef("-slot-size %s: want a positive multiple of 4096 (e.g. 4096, 64KiB, 8MiB)", formatSize(f.slotSize.n))
	}
	if f.slotSize.n > 1<<40 {
		return usagef("-slot-size %s: too large", formatSize(f.slotSize.n))
	}
	n := 0
	if f.count.set {
		n++
	}
	if f.bytes.set {
		n++
	}
	if stdin {
		n++
	}
	if n > 1 {
		return usagef("-count, -bytes and -stdin exclude each other: give one")
	}
	if f.count.set && f.count.n > math.MaxInt64/f.slotSize.n {
		return usagef("-count %d of -slot-size %s is more than %d bytes: give fewer items or smaller slots", f.count.n, formatSize(f.slotSize.n), int64(math.MaxInt64))
	}
	return f.peerFlags.check()
}

// consumeFlags are the flags of `consume` (and of `run`).
type consumeFlags struct {
	workers  int
	manifest string
	peerFlags
}

func (f *consumeFlags) register(fs *flag.FlagSet, withShared bool) {
	fs.IntVar(&f.workers, "workers", 0, "worker goroutines: handlers run on up to this many at once; with -stdout (in order) they verify the items behind the one being written (default: number of CPUs)")
	fs.Var((*fileName)(&f.manifest), "manifest", "append one JSON line per delivered item to FILE, before the item is released")
	if withShared {
		f.peerFlags.register(fs,
			"how long to wait for a producer's ready",
			"how long to wait for a restarted producer after the producer died (0: give up at once)",
			"treat a live producer that published nothing for this long as lost (0: off)")
	}
}

func (f *consumeFlags) check() error {
	if f.workers < 0 || f.workers > 1024 {
		return usagef("-workers %d: want 1 to 1024 (0 or left out: one per CPU)", f.workers)
	}
	return f.peerFlags.check()
}

// newFlagSet returns a flag set that reports errors instead of exiting
// and prints its usage to stderr only when asked (-h).
func newFlagSet(name string, stderr io.Writer, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // errors are reported in one line by parse
	usages[fs] = func() {
		fs.SetOutput(stderr)
		fmt.Fprintf(stderr, "usage: shmpc %s %s\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// usages holds each flag set's full usage text, printed for -h.
var usages = map[*flag.FlagSet]func(){}

// parse parses args; a flag error becomes a one-line usage error.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			if u := usages[fs]; u != nil {
				u()
			}
			return err
		}
		return usagef("%v (see 'shmpc %s -h')", err, fs.Name())
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (see 'shmpc %s -h')", fs.Arg(0), fs.Name())
	}
	return nil
}

// requireName checks the -name of produce and consume: given, and a valid
// NAME.
func requireName(name string) error {
	if name == "" {
		return usagef("-name is required")
	}
	if err := shm.ValidName(name); err != nil {
		return usagef("-name: %v", err)
	}
	return nil
}
