package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/internal/payload"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

// `shmpc bench` runs the benchmark matrix of issue 8 and DESIGN.md
// "Performance": every figure is measured in this one run, side by side,
// with the variants of a comparison alternating (A, B, C, A, B, C, ...) so
// that drift of a noisy machine hits them alike, and reported as the
// median of the repetitions with the ratios between them.
//
// Sections (-sections, comma separated; all by default):
//
//	limits     single-core memcpy, CRC32C and payload bandwidth: the physical ceiling
//	transport  the DESIGN.md payload through shmpc, a Unix domain socket and a pipe
//	small      items of 64 B to 4 KiB: items per second and one-way latency
//	memory     resident memory and allocations per item after 1 GiB and 64 GiB
//	scaling    throughput against slot size, slot count and consumer workers
//
// Two processes carry every transfer. shmpc runs are `shmpc run -json`
// (the command users run) or, where a library option the command does not
// expose is needed (the spin wait, latency stamps, memory counters), a
// pair of `shmpc bench peer` processes that use the producer and consumer
// packages the same way. The socket and pipe baselines carry the same items
// with the same work on each side: the sender generates each item with
// payload.Fill into its buffer and writes a 16-byte header (sequence,
// length, CRC32C) and the item; the receiver reads it whole and verifies
// the CRC32C with payload.Checksum, as the shmpc consumer does.

// benchConfig is what one `shmpc bench` run measures.
type benchConfig struct {
	quick    bool
	reps     int
	sections map[string]bool
	huge     shm.Policy
	spin     time.Duration
	exe      string
	log      func(format string, args ...any)
	timeout  time.Duration
	names    string // prefix of the ring NAMEs of bench peers
}

var benchSections = []string{"limits", "transport", "small", "memory", "scaling"}

func cmdBench(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "peer" {
		return benchPeer(args[1:], stdout, stderr)
	}
	fs := newFlagSet("bench", stderr, "[-quick] [-reps N] [-sections LIST] [-hugepages auto|on|off] [-spin D] [-json] [-v]")
	quick := fs.Bool("quick", false, "small transfers and few items: a smoke run of every figure in well under a minute")
	reps := fs.Int("reps", 3, "repetitions of every measurement; medians are reported")
	sections := fs.String("sections", strings.Join(benchSections, ","), "which sections to run, comma separated: "+strings.Join(benchSections, ", "))
	var huge policy
	huge.p = shm.Auto
	fs.Var(&huge, "hugepages", "back the shmpc rings with huge pages: auto, on or off (as root, bench adds the pages it needs to the pool and removes them afterwards)")
	spin := fs.Duration("spin", 200*time.Microsecond, "Options.Spin of the spin-then-block variants (longer than the latency test's 100µs between items, so that a spinning consumer catches each item)")
	jsonOut := fs.Bool("json", false, "print the results as one JSON object, the last line of stdout")
	verbose := fs.Bool("v", false, "report every run on stderr")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *reps < 1 || *reps > 100 {
		return usagef("-reps %d: want 1 to 100", *reps)
	}
	if *spin <= 0 {
		return usagef("-spin %v: want a positive duration", *spin)
	}
	cfg := benchConfig{quick: *quick, reps: *reps, sections: map[string]bool{}, huge: huge.p, spin: *spin,
		timeout: 5 * time.Minute}
	for _, s := range strings.Split(*sections, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(benchSections, s) {
			return usagef("-sections: unknown section %q; want some of %s", s, strings.Join(benchSections, ", "))
		}
		cfg.sections[s] = true
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	cfg.exe = exe
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	cfg.names = fmt.Sprintf("bench-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:]))
	cfg.log = func(string, ...any) {}
	if *verbose || isTerminal(stderr) {
		cfg.log = func(format string, a ...any) { fmt.Fprintf(stderr, "shmpc bench: "+format+"\n", a...) }
	}

	// A signal ends the bench: running children get SIGTERM (a graceful
	// end of their stream), and the huge pages go back to the pool.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep := benchReport{Machine: machine(cfg)}
	if cfg.huge != shm.Off && os.Geteuid() == 0 && cfg.hugePagesNeeded() > 0 {
		if res, err := shm.ReserveHugePages(cfg.hugePagesNeeded(), 10*time.Second); err != nil {
			cfg.log("could not add huge pages to the pool (%v); the rings use what the pool has", err)
		} else {
			defer func() { _ = res.Release(10 * time.Second) }()
			rep.Machine.HugePagesAdded = res.Pages
		}
	}
	if pool, err := shm.ReadHugePool(); err == nil {
		rep.Machine.HugePagesFree = pool.Free
	}
	steps := []struct {
		name string
		run  func(context.Context, benchConfig, *benchReport) error
	}{
		{"limits", benchLimits}, {"transport", benchTransport}, {"small", benchSmall},
		{"memory", benchMemory}, {"scaling", benchScaling},
	}
	for _, s := range steps {
		if !cfg.sections[s.name] {
			continue
		}
		if err := s.run(ctx, cfg, &rep); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted during %s", s.name)
			}
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if *jsonOut {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	rep.print(stdout)
	return nil
}

// hugePagesNeeded is what the largest ring of the matrix takes, plus slack.
func (c benchConfig) hugePagesNeeded() int {
	if !c.sections["transport"] && !c.sections["small"] && !c.sections["memory"] && !c.sections["scaling"] {
		return 0 // limits alone makes no ring
	}
	biggest := 8 * 8 << 20
	if c.sections["scaling"] {
		biggest = 8 * c.scalingMaxSlot()
	}
	return biggest/shm.HugePageSize + 8
}

func (c benchConfig) scalingMaxSlot() int {
	if c.quick {
		return 8 << 20
	}
	return 64 << 20
}

// --- results -------------------------------------------------------------

// stat summarises the repetitions of one measurement.
type stat struct {
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples []float64 `json:"samples"`
}

func summarize(xs []float64) stat {
	if len(xs) == 0 {
		return stat{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{Median: m, Min: s[0], Max: s[len(s)-1], Samples: xs}
}

func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return 0
	}
	return a / b
}

type machineInfo struct {
	CPU            string `json:"cpu"`
	CPUs           int    `json:"cpus"`
	Kernel         string `json:"kernel"`
	Go             string `json:"go"`
	PayloadKernel  string `json:"payload_kernel"`
	HugePagesFree  int    `json:"huge_pages_free"`
	HugePagesAdded int    `json:"huge_pages_added"`
	Reps           int    `json:"reps"`
	Quick          bool   `json:"quick"`
	SpinMicros     int64  `json:"spin_us"`
}

func machine(c benchConfig) machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), Go: runtime.Version(), PayloadKernel: payload.Kernel(),
		Reps: c.reps, Quick: c.quick, SpinMicros: c.spin.Microseconds()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	return m
}

type benchReport struct {
	Machine   machineInfo    `json:"machine"`
	Limits    []limitRow     `json:"limits,omitempty"`
	Transport []transportRow `json:"transport,omitempty"`
	Rate      []rateRow      `json:"small_rate,omitempty"`
	Latency   []latencyRow   `json:"small_latency,omitempty"`
	Memory    []memoryRow    `json:"memory,omitempty"`
	Scaling   []scalingRow   `json:"scaling,omitempty"`
}

// --- limits --------------------------------------------------------------

type limitRow struct {
	What    string `json:"what"`
	GiBPerS stat   `json:"gib_per_s"`
}

// benchLimits measures one core's memcpy, CRC32C and payload generation
// bandwidth over eight 8 MiB buffers in turn (64 MiB, twice the L3 cache
// of the machines we measured on: what a ring of 8 such slots sees).
func benchLimits(ctx context.Context, c benchConfig, rep *benchReport) error {
	const bufSize = 8 << 20
	src, dst := make([][]byte, 8), make([][]byte, 8)
	for i := range src {
		src[i], dst[i] = make([]byte, bufSize), make([]byte, bufSize)
		payload.Fill(src[i], uint64(i))
		payload.Fill(dst[i], uint64(i)) // fault every page in
	}
	dur := 300 * time.Millisecond
	if c.quick {
		dur = 30 * time.Millisecond
	}
	kernels := []struct {
		what string
		fn   func(i int)
	}{
		{"memcpy", func(i int) { copy(dst[i%8], src[i%8]) }},
		{"crc32c (payload.Checksum, the consumer's check)", func(i int) { payload.Checksum(src[i%8]) }},
		{"crc32c (hash/crc32)", func(i int) { crc32.Checksum(src[i%8], castagnoli) }},
		{"payload fill + crc32c (the producer's work)", func(i int) { payload.Fill(dst[i%8], uint64(i)) }},
	}
	samples := make([][]float64, len(kernels))
	for r := 0; r < c.reps; r++ {
		for k, kn := range kernels {
			if err := ctx.Err(); err != nil {
				return err
			}
			n, start := 0, time.Now()
			for time.Since(start) < dur || n < 8 {
				kn.fn(n)
				n++
			}
			samples[k] = append(samples[k], gibPerSec(uint64(n)*bufSize, time.Since(start).Seconds()))
		}
	}
	for k, kn := range kernels {
		rep.Limits = append(rep.Limits, limitRow{What: kn.what, GiBPerS: summarize(samples[k])})
		c.log("limit %s: %.2f GiB/s", kn.what, rep.Limits[k].GiBPerS.Median)
	}
	return nil
}

// --- transport -----------------------------------------------------------

type transportRow struct {
	Slots      int     `json:"slots"`
	SlotSize   int     `json:"slot_size"`
	Bytes      uint64  `json:"bytes"`
	Pages      string  `json:"pages"`
	Shmpc      stat    `json:"shmpc_gib_per_s"`
	UnixSocket stat    `json:"unix_socket_gib_per_s"`
	Pipe       stat    `json:"pipe_gib_per_s"`
	VsSocket   float64 `json:"shmpc_vs_unix_socket"`
	VsPipe     float64 `json:"shmpc_vs_pipe"`
	OfMemcpy   float64 `json:"shmpc_of_memcpy,omitempty"`
}

func benchTransport(ctx context.Context, c benchConfig, rep *benchReport) error {
	total := uint64(4 << 30)
	if c.quick {
		total = 64 << 20
	}
	for _, g := range []struct{ slots, size int }{{8, 8 << 20}, {8, 64 << 10}} {
		count := total / uint64(g.size)
		row := transportRow{Slots: g.slots, SlotSize: g.size, Bytes: count * uint64(g.size)}
		var s, u, p []float64
		for r := 0; r < c.reps; r++ {
			run, err := c.shmpcRun(ctx, g.slots, g.size, count, 0)
			if err != nil {
				return err
			}
			row.Pages = run.Pages
			s = append(s, run.GiBPerSec)
			for _, kind := range []string{"unix", "pipe"} {
				res, err := c.streamPair(ctx, kind, g.size, count, 0, false)
				if err != nil {
					return err
				}
				if kind == "unix" {
					u = append(u, res.gibPerSec())
				} else {
					p = append(p, res.gibPerSec())
				}
			}
			c.log("transport %dx%s rep %d: shmpc %.2f, unix socket %.2f, pipe %.2f GiB/s",
				g.slots, formatSize(int64(g.size)), r+1, s[r], u[r], p[r])
		}
		row.Shmpc, row.UnixSocket, row.Pipe = summarize(s), summarize(u), summarize(p)
		row.VsSocket, row.VsPipe = ratio(row.Shmpc.Median, row.UnixSocket.Median), ratio(row.Shmpc.Median, row.Pipe.Median)
		for _, l := range rep.Limits {
			if l.What == "memcpy" {
				row.OfMemcpy = ratio(row.Shmpc.Median, l.GiBPerS.Median)
			}
		}
		rep.Transport = append(rep.Transport, row)
	}
	return nil
}

// shmpcRun runs `shmpc run -json` with a geometry and returns its summary.
func (c benchConfig) shmpcRun(ctx context.Context, slots, size int, count uint64, workers int) (runSummary, error) {
	args := []string{"run", "-json", "-slots", strconv.Itoa(slots), "-slot-size", strconv.Itoa(size),
		"-count", strconv.FormatUint(count, 10), "-hugepages", c.huge.String()}
	if workers > 0 {
		args = append(args, "-workers", strconv.Itoa(workers))
	}
	out, err := c.runChild(ctx, args, nil)
	var sum runSummary
	if err != nil {
		return sum, err
	}
	if !lastJSON(out, &sum) || sum.Items != count || sum.IntegrityErrors != 0 {
		return sum, fmt.Errorf("shmpc %s: unexpected summary %q", strings.Join(args, " "), bytes.TrimSpace(out))
	}
	return sum, nil
}

// runChild runs this executable with args to completion and returns its
// stdout. A cancelled ctx stops it with SIGTERM (a graceful end), then
// kills it after 30 s.
func (c benchConfig) runChild(ctx context.Context, args []string, extra []*os.File) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cmd := c.command(cctx, args, extra)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("shmpc %s: %v: %s", strings.Join(args, " "), err, lastLine(errb.String()))
	}
	return out.Bytes(), nil
}

func (c benchConfig) command(ctx context.Context, args []string, extra []*os.File) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.exe, args...)
	cmd.ExtraFiles = extra
	// A bench that dies (even of SIGKILL) sends its children SIGTERM: a
	// graceful stop, after which their rings are removed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	return cmd
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

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
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *item <= 0 || (*stamp && *item < 8) || *count == 0 {
		return usagef("bench peer: want -item of at least 8 bytes and a positive -count")
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
		res, err = peerRingSend(ctx, *name, *slots, int(slotSize.n), *item, *count, huge.p, *spin, *pace, *stamp)
	case "ring-recv":
		res, err = peerRingRecv(ctx, *name, *count, *spin, *stamp, *workers)
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

func peerRingSend(ctx context.Context, name string, slots, slotSize, item int, count uint64, huge shm.Policy, spin, pace time.Duration, stamp bool) (peerResult, error) {
	var res peerResult
	if item > slotSize {
		return res, usagef("bench peer: -item %d exceeds -slot-size %d", item, slotSize)
	}
	p, err := producer.Open(ctx, name, producer.Options{Slots: slots, SlotSize: slotSize, HugePages: huge,
		Lock: shm.Auto, Advise: true, Pretouch: true, StreamItems: count, StreamBytes: count * uint64(item),
		Spin: spin, Wait: 30 * time.Second, Fresh: true})
	if err != nil {
		return res, err
	}
	defer p.Close()
	res.Pages = p.Pages()
	buf := make([]byte, item)
	aw := newAllocWindow(count)
	pc := pacer{pace: pace}
	res.StartNS = monoNow()
	for seq := uint64(0); seq < count; seq++ {
		aw.at(seq)
		pc.wait()
		s, err := p.Reserve(ctx)
		if err != nil {
			return res, err
		}
		var crc uint32
		if stamp {
			// The stamp changes the item, so it is built in a private
			// buffer and checksummed while copied (contract 6).
			payload.Fill(buf, seq)
			binary.LittleEndian.PutUint64(buf, uint64(monoNow()))
			crc = ring.CopyCRC(s.Buf, buf)
		} else {
			crc = payload.Fill(s.Buf[:item], seq)
		}
		if err := p.CommitCRC(item, crc); err != nil {
			return res, err
		}
		res.Items++
		res.Bytes += uint64(item)
	}
	res.AllocsPerItem = aw.perItem()
	readStatus(&res) // while the ring is still mapped: End removes it
	if err := p.End(context.Background()); err != nil {
		return res, err
	}
	return res, p.Close()
}

func peerRingRecv(ctx context.Context, name string, count uint64, spin time.Duration, stamp bool, workers int) (peerResult, error) {
	var res peerResult
	c, err := consumer.Open(ctx, name, consumer.Options{Workers: workers, Spin: spin, Wait: 30 * time.Second})
	if err != nil {
		return res, err
	}
	defer c.Close()
	res.Pages = c.Pages()
	lat := make([]float64, 0, count)
	aw := newAllocWindow(count)
	var n uint64
	// With more than one worker the handler runs concurrently: the
	// counters are only touched by the item that finishes the count, and
	// latencies are kept only with one worker.
	err = c.Run(ctx, func(seq uint64, data []byte) error {
		if stamp && workers == 1 {
			lat = append(lat, float64(monoNow()-int64(binary.LittleEndian.Uint64(data)))/1e3)
		}
		if workers == 1 {
			n++
			aw.at(n)
			if n == count {
				res.EndNS = monoNow()
			}
		} else if seq == count-1 {
			res.EndNS = monoNow()
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	st := c.Stats()
	res.Items, res.Bytes = st.Items, st.Bytes
	if res.Items != count || st.IntegrityErrors != 0 {
		return res, fmt.Errorf("received %d items of %d, %d integrity errors", res.Items, count, st.IntegrityErrors)
	}
	res.AllocsPerItem = aw.perItem()
	res.LatP50, res.LatP99, res.LatMax = percentiles(lat)
	readStatus(&res) // while the ring is still mapped
	return res, c.Close()
}

const streamHeader = 16 // sequence (8), length (4), CRC32C (4)

func peerStreamSend(ctx context.Context, f *os.File, item int, count uint64, pace time.Duration, stamp bool) (peerResult, error) {
	defer f.Close()
	var res peerResult
	buf := make([]byte, streamHeader+item)
	aw := newAllocWindow(count)
	pc := pacer{pace: pace}
	res.StartNS = monoNow()
	for seq := uint64(0); seq < count; seq++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		aw.at(seq)
		pc.wait()
		data := buf[streamHeader:]
		// Ordinary stores: write() reads the buffer back at once.
		crc := payload.FillCached(data, seq)
		if stamp {
			binary.LittleEndian.PutUint64(data, uint64(monoNow()))
			crc = payload.Checksum(data)
		}
		binary.LittleEndian.PutUint64(buf[0:], seq)
		binary.LittleEndian.PutUint32(buf[8:], uint32(item))
		binary.LittleEndian.PutUint32(buf[12:], crc)
		if _, err := f.Write(buf); err != nil {
			return res, fmt.Errorf("write item %d: %w", seq, err)
		}
		res.Items++
		res.Bytes += uint64(item)
	}
	res.AllocsPerItem = aw.perItem()
	return res, nil
}

func peerStreamRecv(f *os.File, item int, count uint64, stamp bool) (peerResult, error) {
	defer f.Close()
	var res peerResult
	r := bufio.NewReaderSize(f, 1<<20)
	hdr := make([]byte, streamHeader)
	buf := make([]byte, item)
	lat := make([]float64, 0, count)
	aw := newAllocWindow(count)
	for seq := uint64(0); seq < count; seq++ {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return res, fmt.Errorf("read item %d: %w", seq, err)
		}
		if got := binary.LittleEndian.Uint64(hdr); got != seq || int(binary.LittleEndian.Uint32(hdr[8:])) != item {
			return res, fmt.Errorf("item %d: header says item %d of %d bytes", seq, got, binary.LittleEndian.Uint32(hdr[8:]))
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			return res, fmt.Errorf("read item %d: %w", seq, err)
		}
		if payload.Checksum(buf) != binary.LittleEndian.Uint32(hdr[12:]) {
			return res, fmt.Errorf("item %d: CRC32C mismatch", seq)
		}
		if stamp {
			lat = append(lat, float64(monoNow()-int64(binary.LittleEndian.Uint64(buf)))/1e3)
		}
		res.Items++
		res.Bytes += uint64(item)
		aw.at(res.Items)
	}
	res.EndNS = monoNow()
	res.AllocsPerItem = aw.perItem()
	res.LatP50, res.LatP99, res.LatMax = percentiles(lat)
	return res, nil
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

// --- small items ---------------------------------------------------------

type rateRow struct {
	Item          int     `json:"item"`
	Count         uint64  `json:"count"`
	Pages         string  `json:"pages"`
	ShmpcBlock    stat    `json:"shmpc_block_items_per_s"`
	ShmpcSpin     stat    `json:"shmpc_spin_items_per_s"`
	UnixSocket    stat    `json:"unix_socket_items_per_s"`
	Pipe          stat    `json:"pipe_items_per_s"`
	BlockVsSocket float64 `json:"block_vs_unix_socket"`
	BlockVsPipe   float64 `json:"block_vs_pipe"`
	SpinVsSocket  float64 `json:"spin_vs_unix_socket"`
	SpinVsPipe    float64 `json:"spin_vs_pipe"`
}

type latencyRow struct {
	Item       int     `json:"item"`
	Count      uint64  `json:"count"`
	PaceMicros int64   `json:"pace_us"`
	ShmpcBlock latStat `json:"shmpc_block"`
	ShmpcSpin  latStat `json:"shmpc_spin"`
	UnixSocket latStat `json:"unix_socket"`
	Pipe       latStat `json:"pipe"`
}

// latStat: medians over the repetitions of each run's percentiles, in µs.
type latStat struct {
	P50 stat `json:"p50_us"`
	P99 stat `json:"p99_us"`
	Max stat `json:"max_us"`
}

// smallVariants are the four ways small items travel.
var smallVariants = []string{"shmpc block", "shmpc spin", "unix socket", "pipe"}

func (c benchConfig) smallRun(ctx context.Context, variant string, item int, count uint64, pace time.Duration, stamp bool) (pairResult, error) {
	switch variant {
	case "shmpc block":
		return c.ringPair(ctx, 64, 4096, item, count, 0, pace, stamp, 1)
	case "shmpc spin":
		return c.ringPair(ctx, 64, 4096, item, count, c.spin, pace, stamp, 1)
	case "unix socket":
		return c.streamPair(ctx, "unix", item, count, pace, stamp)
	default:
		return c.streamPair(ctx, "pipe", item, count, pace, stamp)
	}
}

// benchSmall: items of 64 B, 512 B and 4 KiB in a ring of 64 slots of
// 4 KiB, against a socket and a pipe carrying the same items: as fast as
// possible (items per second), then one item every 100 µs with the send
// time in the item (one-way latency). The consumer has one worker.
func benchSmall(ctx context.Context, c benchConfig, rep *benchReport) error {
	count, latCount := uint64(200_000), uint64(10_000)
	if c.quick {
		count, latCount = 5_000, 500
	}
	const pace = 100 * time.Microsecond
	for _, item := range []int{64, 512, 4096} {
		row := rateRow{Item: item, Count: count}
		samples := make([][]float64, len(smallVariants))
		for r := 0; r < c.reps; r++ {
			for v, variant := range smallVariants {
				res, err := c.smallRun(ctx, variant, item, count, 0, false)
				if err != nil {
					return err
				}
				if res.send.Pages != "" {
					row.Pages = res.send.Pages
				}
				samples[v] = append(samples[v], res.itemsPerSec())
			}
			c.log("small %d B rep %d: items/s %.0f block, %.0f spin, %.0f socket, %.0f pipe", item, r+1,
				samples[0][r], samples[1][r], samples[2][r], samples[3][r])
		}
		row.ShmpcBlock, row.ShmpcSpin, row.UnixSocket, row.Pipe = summarize(samples[0]), summarize(samples[1]), summarize(samples[2]), summarize(samples[3])
		row.BlockVsSocket, row.BlockVsPipe = ratio(row.ShmpcBlock.Median, row.UnixSocket.Median), ratio(row.ShmpcBlock.Median, row.Pipe.Median)
		row.SpinVsSocket, row.SpinVsPipe = ratio(row.ShmpcSpin.Median, row.UnixSocket.Median), ratio(row.ShmpcSpin.Median, row.Pipe.Median)
		rep.Rate = append(rep.Rate, row)
	}
	for _, item := range []int{64, 4096} {
		row := latencyRow{Item: item, Count: latCount, PaceMicros: pace.Microseconds()}
		p50, p99, pmax := make([][]float64, 4), make([][]float64, 4), make([][]float64, 4)
		for r := 0; r < c.reps; r++ {
			for v, variant := range smallVariants {
				res, err := c.smallRun(ctx, variant, item, latCount, pace, true)
				if err != nil {
					return err
				}
				p50[v] = append(p50[v], res.recv.LatP50)
				p99[v] = append(p99[v], res.recv.LatP99)
				pmax[v] = append(pmax[v], res.recv.LatMax)
			}
			c.log("latency %d B rep %d: p50/p99 µs %.1f/%.1f block, %.1f/%.1f spin, %.1f/%.1f socket, %.1f/%.1f pipe", item, r+1,
				p50[0][r], p99[0][r], p50[1][r], p99[1][r], p50[2][r], p99[2][r], p50[3][r], p99[3][r])
		}
		ls := make([]latStat, 4)
		for v := range ls {
			ls[v] = latStat{P50: summarize(p50[v]), P99: summarize(p99[v]), Max: summarize(pmax[v])}
		}
		row.ShmpcBlock, row.ShmpcSpin, row.UnixSocket, row.Pipe = ls[0], ls[1], ls[2], ls[3]
		rep.Latency = append(rep.Latency, row)
	}
	return nil
}

// --- memory --------------------------------------------------------------

type memoryRow struct {
	Bytes    uint64     `json:"bytes"`
	RingKiB  int64      `json:"ring_kib"`
	Pages    string     `json:"pages"`
	Producer peerResult `json:"producer"`
	Consumer peerResult `json:"consumer"`
}

// benchMemory moves 1 GiB and 64 GiB (quick: 64 MiB and 1 GiB) through a
// ring of 8 slots of 8 MiB and reports each side's memory at the end and
// its heap allocations per item in the steady state.
func benchMemory(ctx context.Context, c benchConfig, rep *benchReport) error {
	sizes := []uint64{1 << 30, 64 << 30}
	if c.quick {
		sizes = []uint64{64 << 20, 1 << 30}
	}
	const slotSize = 8 << 20
	for _, total := range sizes {
		res, err := c.ringPair(ctx, 8, slotSize, slotSize, total/slotSize, 0, 0, false, 1)
		if err != nil {
			return err
		}
		rep.Memory = append(rep.Memory, memoryRow{Bytes: total, RingKiB: 8 * slotSize >> 10, Pages: res.send.Pages,
			Producer: res.send, Consumer: res.recv})
		c.log("memory after %s: producer peak RSS %d KiB, consumer %d KiB", formatBytes(total), res.send.PeakRSS, res.recv.PeakRSS)
	}
	return nil
}

// --- scaling -------------------------------------------------------------

type scalingRow struct {
	Vary     string `json:"vary"` // slot_size, slots or workers
	Slots    int    `json:"slots"`
	SlotSize int    `json:"slot_size"`
	Workers  int    `json:"workers"`
	Bytes    uint64 `json:"bytes"`
	Pages    string `json:"pages"`
	GiBPerS  stat   `json:"gib_per_s"`
}

// benchScaling runs `shmpc run` over slot sizes (8 slots), slot counts
// (1 MiB slots) and consumer workers (8 x 8 MiB), each moving 2 GiB
// (quick: 64 MiB); every repetition runs the whole list once.
func benchScaling(ctx context.Context, c benchConfig, rep *benchReport) error {
	total := uint64(2 << 30)
	if c.quick {
		total = 64 << 20
	}
	var rows []scalingRow
	for _, s := range []int{4 << 10, 64 << 10, 1 << 20, 8 << 20, 64 << 20} {
		if s > c.scalingMaxSlot() {
			continue
		}
		rows = append(rows, scalingRow{Vary: "slot_size", Slots: 8, SlotSize: s})
	}
	for _, n := range []int{1, 2, 4, 8, 16, 64} {
		rows = append(rows, scalingRow{Vary: "slots", Slots: n, SlotSize: 1 << 20})
	}
	for _, w := range []int{1, 2, 4, 8} {
		rows = append(rows, scalingRow{Vary: "workers", Slots: 8, SlotSize: 8 << 20, Workers: w})
	}
	samples := make([][]float64, len(rows))
	for r := 0; r < c.reps; r++ {
		for i := range rows {
			row := &rows[i]
			count := max(total/uint64(row.SlotSize), 1)
			row.Bytes = count * uint64(row.SlotSize)
			sum, err := c.shmpcRun(ctx, row.Slots, row.SlotSize, count, row.Workers)
			if err != nil {
				return err
			}
			row.Pages = sum.Pages
			samples[i] = append(samples[i], sum.GiBPerSec)
			c.log("scaling %s: %d x %s, workers %d: %.2f GiB/s", row.Vary, row.Slots, formatSize(int64(row.SlotSize)), row.Workers, sum.GiBPerSec)
		}
	}
	for i := range rows {
		rows[i].GiBPerS = summarize(samples[i])
	}
	rep.Scaling = rows
	return nil
}

// --- printing ------------------------------------------------------------

func (r benchReport) print(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "shmpc bench: %s, %d CPUs, %s, %s, payload kernel %s, huge pages free %d (added %d)\n",
		m.CPU, m.CPUs, m.Kernel, m.Go, m.PayloadKernel, m.HugePagesFree, m.HugePagesAdded)
	fmt.Fprintf(w, "every figure: median of %d alternating runs (min-max in brackets)\n", m.Reps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	rng := func(s stat, f string) string {
		return fmt.Sprintf(f+" ["+f+"-"+f+"]", s.Median, s.Min, s.Max)
	}
	if len(r.Limits) > 0 {
		fmt.Fprintf(tw, "\nPhysical limits: one core, eight 8 MiB buffers in turn\tGiB/s\n")
		for _, l := range r.Limits {
			fmt.Fprintf(tw, "  %s\t%s\n", l.What, rng(l.GiBPerS, "%.2f"))
		}
	}
	if len(r.Transport) > 0 {
		fmt.Fprintf(tw, "\nThroughput: the payload, producer and consumer processes (GiB/s)\n")
		fmt.Fprintf(tw, "  geometry\tbytes\tpages\tshmpc\tunix socket\tpipe\tvs socket\tvs pipe\tof memcpy\n")
		for _, t := range r.Transport {
			fmt.Fprintf(tw, "  %d x %s\t%s\t%s\t%s\t%s\t%s\t%.2fx\t%.2fx\t%.2fx\n", t.Slots, formatSize(int64(t.SlotSize)),
				formatBytes(t.Bytes), t.Pages, rng(t.Shmpc, "%.2f"), rng(t.UnixSocket, "%.2f"), rng(t.Pipe, "%.2f"),
				t.VsSocket, t.VsPipe, t.OfMemcpy)
		}
	}
	if len(r.Rate) > 0 {
		fmt.Fprintf(tw, "\nSmall items: 64 slots of 4 KiB, one consumer worker, spin %dµs (items/s)\n", m.SpinMicros)
		fmt.Fprintf(tw, "  item\tshmpc block\tshmpc spin\tunix socket\tpipe\tblock vs socket\tblock vs pipe\tspin vs socket\tspin vs pipe\n")
		for _, s := range r.Rate {
			fmt.Fprintf(tw, "  %d B\t%s\t%s\t%s\t%s\t%.2fx\t%.2fx\t%.2fx\t%.2fx\n", s.Item,
				rng(s.ShmpcBlock, "%.0f"), rng(s.ShmpcSpin, "%.0f"), rng(s.UnixSocket, "%.0f"), rng(s.Pipe, "%.0f"),
				s.BlockVsSocket, s.BlockVsPipe, s.SpinVsSocket, s.SpinVsPipe)
		}
	}
	if len(r.Latency) > 0 {
		fmt.Fprintf(tw, "\nOne-way latency, one item every %dµs (µs, p50 / p99 / max)\n", r.Latency[0].PaceMicros)
		fmt.Fprintf(tw, "  item\tshmpc block\tshmpc spin\tunix socket\tpipe\n")
		ls := func(l latStat) string {
			return fmt.Sprintf("%.1f / %.1f / %.0f", l.P50.Median, l.P99.Median, l.Max.Median)
		}
		for _, l := range r.Latency {
			fmt.Fprintf(tw, "  %d B\t%s\t%s\t%s\t%s\n", l.Item, ls(l.ShmpcBlock), ls(l.ShmpcSpin), ls(l.UnixSocket), ls(l.Pipe))
		}
	}
	if len(r.Memory) > 0 {
		fmt.Fprintf(tw, "\nMemory: ring of 8 x 8 MiB, at the end of the stream (KiB; allocations per item in the steady state)\n")
		fmt.Fprintf(tw, "  transferred\tpages\tside\tpeak RSS\tRssAnon\tRssShmem\tHugetlb\tGo heap\tallocs/item\n")
		for _, mr := range r.Memory {
			for _, s := range []struct {
				side string
				p    peerResult
			}{{"producer", mr.Producer}, {"consumer", mr.Consumer}} {
				allocs := "n/a"
				if s.p.AllocsPerItem >= 0 {
					allocs = fmt.Sprintf("%.4f", s.p.AllocsPerItem)
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", formatBytes(mr.Bytes), mr.Pages, s.side,
					s.p.PeakRSS, s.p.RSSAnon, s.p.RSSShmem, s.p.Hugetlb, s.p.HeapSysKiB, allocs)
			}
		}
	}
	if len(r.Scaling) > 0 {
		fmt.Fprintf(tw, "\nScaling: shmpc run (GiB/s)\n")
		fmt.Fprintf(tw, "  vary\tslots\tslot size\tworkers\tbytes\tpages\tGiB/s\n")
		for _, s := range r.Scaling {
			workers := "CPUs"
			if s.Workers > 0 {
				workers = strconv.Itoa(s.Workers)
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\n", s.Vary, s.Slots, formatSize(int64(s.SlotSize)), workers,
				formatBytes(s.Bytes), s.Pages, rng(s.GiBPerS, "%.2f"))
		}
	}
	tw.Flush()
}
