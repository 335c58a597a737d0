package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// --- peers ---------------------------------------------------------------

// peerResult is what a `shmpc bench peer` process reports on stdout.
type peerResult struct {
	Items   uint64 `json:"items"`
	Bytes   uint64 `json:"bytes"`
	StartNS int64  `json:"start_ns"` // CLOCK_MONOTONIC: the sender before its first item
	EndNS   int64  `json:"end_ns"`   // the receiver after its last item
	Pages   string `json:"pages,omitempty"`
	// One-way latencies in microseconds (receivers of stamped items).
	LatP50 float64 `json:"lat_p50_us,omitempty"`
	LatP99 float64 `json:"lat_p99_us,omitempty"`
	LatMax float64 `json:"lat_max_us,omitempty"`
	// Memory at the end, from /proc/self/status, in KiB.
	PeakRSS  int64 `json:"vm_hwm_kib"`
	RSSAnon  int64 `json:"rss_anon_kib"`
	RSSShmem int64 `json:"rss_shmem_kib"`
	Hugetlb  int64 `json:"hugetlb_kib"`
	// Heap allocations (runtime.MemStats.Mallocs) per item between 10%
	// and 90% of the stream: the steady state (-1: not measured, the
	// stream was too short).
	AllocsPerItem float64 `json:"allocs_per_item"`
	HeapSysKiB    uint64  `json:"heap_sys_kib"`
}

// pairResult is a sender and a receiver.
type pairResult struct{ send, recv peerResult }

func (p pairResult) seconds() float64 { return float64(p.recv.EndNS-p.send.StartNS) / 1e9 }

func (p pairResult) gibPerSec() float64 { return gibPerSec(p.recv.Bytes, p.seconds()) }

func (p pairResult) itemsPerSec() float64 {
	if s := p.seconds(); s > 0 {
		return float64(p.recv.Items) / s
	}
	return 0
}

// runPair starts the receiver, then the sender, and waits for both.
func (c benchConfig) runPair(ctx context.Context, recvArgs, sendArgs []string, recvFile, sendFile *os.File) (pairResult, error) {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var res pairResult
	var rOut, rErr, sOut, sErr bytes.Buffer
	var rx, sx []*os.File
	if recvFile != nil {
		rx, sx = []*os.File{recvFile}, []*os.File{sendFile}
	}
	recv := c.command(cctx, append([]string{"bench", "peer"}, recvArgs...), rx)
	recv.Stdout, recv.Stderr = &rOut, &rErr
	send := c.command(cctx, append([]string{"bench", "peer"}, sendArgs...), sx)
	send.Stdout, send.Stderr = &sOut, &sErr
	if err := recv.Start(); err != nil {
		return res, err
	}
	if err := send.Start(); err != nil {
		_ = recv.Process.Kill()
		_ = recv.Wait()
		return res, err
	}
	if recvFile != nil {
		// The children hold their ends; ours must go, so that each side
		// sees the other's end of file.
		recvFile.Close()
		sendFile.Close()
	}
	sendErr, recvErr := send.Wait(), recv.Wait()
	if sendErr != nil || recvErr != nil {
		return res, fmt.Errorf("bench peers %s / %s: %v / %v: %s %s", sendArgs[0], recvArgs[0], sendErr, recvErr,
			lastLine(sErr.String()), lastLine(rErr.String()))
	}
	if !lastJSON(sOut.Bytes(), &res.send) || !lastJSON(rOut.Bytes(), &res.recv) {
		return res, fmt.Errorf("bench peers %s / %s gave no result", sendArgs[0], recvArgs[0])
	}
	return res, nil
}

// streamPair moves count items of size bytes through a Unix domain socket
// (kind "unix", a socketpair) or a pipe, paced (one item per pace) or not,
// stamped for latency or not.
func (c benchConfig) streamPair(ctx context.Context, kind string, size int, count uint64, pace time.Duration, stamp bool) (pairResult, error) {
	var r, w *os.File
	switch kind {
	case "unix":
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return pairResult{}, os.NewSyscallError("socketpair", err)
		}
		for _, fd := range fds {
			// Room for several items in flight, as the ring has (the
			// kernel caps it at net.core.[rw]mem_max).
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		}
		r, w = os.NewFile(uintptr(fds[0]), "socket"), os.NewFile(uintptr(fds[1]), "socket")
	case "pipe":
		var err error
		if r, w, err = os.Pipe(); err != nil {
			return pairResult{}, err
		}
		// The largest pipe an unprivileged process may ask for (1 MiB by
		// default, fs.pipe-max-size).
		_, _ = unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	}
	common := []string{"-fd", "3", "-item", strconv.Itoa(size), "-count", strconv.FormatUint(count, 10)}
	if stamp {
		common = append(common, "-stamp")
	}
	send := append([]string{"stream-send", "-pace", pace.String()}, common...)
	recv := append([]string{"stream-recv"}, common...)
	return c.runPair(ctx, recv, send, r, w)
}

// ringPair moves count items of item bytes through a ring of slots slots
// of slotSize with a pair of peers using the producer and consumer
// packages: spin is both sides' Options.Spin.
func (c benchConfig) ringPair(ctx context.Context, slots, slotSize, item int, count uint64, spin, pace time.Duration, stamp bool, workers int) (pairResult, error) {
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	name := c.names + "-" + hex.EncodeToString(rnd[:])
	common := []string{"-name", name, "-count", strconv.FormatUint(count, 10), "-item", strconv.Itoa(item), "-spin", spin.String()}
	if stamp {
		common = append(common, "-stamp")
	}
	send := append([]string{"ring-send", "-slots", strconv.Itoa(slots), "-slot-size", strconv.Itoa(slotSize),
		"-hugepages", c.huge.String(), "-pace", pace.String()}, common...)
	recv := append([]string{"ring-recv", "-workers", strconv.Itoa(workers)}, common...)
	return c.runPair(ctx, recv, send, nil, nil)
}

// benchPeer is one side of a benchmark pair: `shmpc bench peer ROLE ...`,
// started by cmdBench. It prints a peerResult as one JSON line.
func benchPeer(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("bench peer: want a role: ring-send, ring-recv, stream-send or stream-recv")
	}
	role := args[0]
	fs := newFlagSet("bench peer "+role, stderr, "(internal: one side of a benchmark pair)")
	name := fs.String("name", "", "ring NAME")
	slots := fs.Int("slots", 8, "slots")
	var slotSize size
	slotSize.n = 8 << 20
	fs.Var(&slotSize, "slot-size", "slot size")
	item := fs.Int("item", 8<<20, "bytes per item")
	count := fs.Uint64("count", 0, "items")
	var huge policy
	fs.Var(&huge, "hugepages", "huge pages")
	spin := fs.Duration("spin", 0, "Options.Spin of both sides")
	pace := fs.Duration("pace", 0, "send one item per pace (0: as fast as possible)")
	stamp := fs.Bool("stamp", false, "put the send time in each item's first 8 bytes; the receiver reports one-way latencies")
	workers := fs.Int("workers", 1, "consumer workers")
	fd := fs.Int("fd", 3, "file descriptor of the stream")
	mode := fs.String("mode", "payload", "ring-send: how items get into the slots: payload (generated in the slot), send (Send of a private buffer), copy-commit (Reserve, copy, Commit), pieces (Reserve, copy 64 KiB pieces with UpdateCRC, CommitCRC)")
	copyMode := fs.Bool("copy", false, "ring-recv: the handler gets verified private copies (Options.Copy)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *item <= 0 || (*stamp && *item < 8) || *count == 0 {
		return usagef("bench peer: want -item of at least 8 bytes and a positive -count")
	}
	if !slices.Contains(apiPaths, *mode) {
		return usagef("bench peer: -mode %q: want one of %s", *mode, strings.Join(apiPaths, ", "))
	}
	if *slots < 1 || *workers < 1 || *fd < 0 || *spin < 0 || *pace < 0 || slotSize.n <= 0 || slotSize.n > math.MaxInt32*4096 {
		return usagef("bench peer: want positive -slots, -slot-size and -workers, and non-negative -fd, -spin and -pace")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var res peerResult
	var err error
	switch role {
	case "ring-send":
		res, err = peerRingSend(ctx, *name, *slots, int(slotSize.n), *item, *count, huge.p, *spin, *pace, *stamp, *mode)
	case "ring-recv":
		res, err = peerRingRecv(ctx, *name, *count, *spin, *stamp, *workers, *copyMode)
	case "stream-send":
		res, err = peerStreamSend(ctx, os.NewFile(uintptr(*fd), "stream"), *item, *count, *pace, *stamp)
	case "stream-recv":
		res, err = peerStreamRecv(os.NewFile(uintptr(*fd), "stream"), *item, *count, *stamp)
	default:
		return usagef("bench peer: unknown role %q", role)
	}
	if err != nil {
		return err
	}
	if res.PeakRSS == 0 {
		readStatus(&res)
	}
	b, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "%s\n", b)
	return nil
}

func monoNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// allocWindow counts heap allocations between 10% and 90% of a stream. A
// stream of fewer than minAllocWindow items is too short to tell the
// steady state from the set-up: it is not measured (perItem -1).
type allocWindow struct {
	from, to   uint64
	start, end uint64
	have       int // how many of start and end were read
}

const minAllocWindow = 20

func newAllocWindow(count uint64) *allocWindow {
	if count < minAllocWindow {
		return &allocWindow{from: 1, to: 0} // never matches at
	}
	return &allocWindow{from: count / 10, to: count - count/10}
}

// at is called with the number of items done so far (each value once).
func (a *allocWindow) at(n uint64) {
	if a.to <= a.from || (n != a.from && n != a.to) {
		return
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if n == a.from {
		a.start = ms.Mallocs
	} else {
		a.end = ms.Mallocs
	}
	a.have++
}

// perItem returns the allocations per item in the window, or -1 when the
// window was not measured.
func (a *allocWindow) perItem() float64 {
	if a.have != 2 || a.end < a.start {
		return -1
	}
	return float64(a.end-a.start) / float64(a.to-a.from)
}

// pacer waits until the next of a series of instants pace apart. A Go
// sleep of 100µs takes about a millisecond on some virtual machines (items
// would go in bursts), and spinning the whole time keeps a CPU busy, which
// delays the receiver's wake-ups when the scheduler puts it beside the
// spinner. So the pacer sleeps in nanosleep with a timer slack of 1ns on
// its own thread until shortly before the instant, and spins the rest.
type pacer struct {
	pace   time.Duration
	next   time.Time
	locked bool
}

// pacerMargin is how early the pacer's sleep ends, to absorb the wake-up.
const pacerMargin = 30 * time.Microsecond

func (p *pacer) wait() {
	if p.pace <= 0 {
		return
	}
	if !p.locked {
		p.locked = true
		runtime.LockOSThread() // for the timer slack; the peer's main goroutine keeps it
		_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
		p.next = time.Now()
	}
	p.next = p.next.Add(p.pace)
	if d := time.Until(p.next) - pacerMargin; d > 0 {
		ts := unix.NsecToTimespec(d.Nanoseconds())
		_ = unix.Nanosleep(&ts, nil)
	}
	for time.Now().Before(p.next) {
	}
}

func percentiles(xs []float64) (p50, p99, maxv float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	slices.Sort(xs)
	at := func(q float64) float64 { return xs[int(q*float64(len(xs)-1)+0.5)] }
	return at(0.50), at(0.99), xs[len(xs)-1]
}

// readStatus fills the memory figures from /proc/self/status.
func readStatus(res *peerResult) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.HeapSysKiB = ms.HeapSys >> 10
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmHWM":
			res.PeakRSS = n
		case "RssAnon":
			res.RSSAnon = n
		case "RssShmem":
			res.RSSShmem = n
		case "HugetlbPages":
			res.Hugetlb = n
		}
	}
}
