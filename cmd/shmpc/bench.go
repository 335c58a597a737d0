package main

import (
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
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/internal/payload"
	"github.com/shmpc/shmpc/shm"
)

// `shmpc bench` runs the benchmark matrix of issue 8 and BENCHMARKS.md
// "Performance": every figure is measured in this one run, side by side,
// with the variants of a comparison alternating (A, B, C, A, B, C, ...) so
// that drift of a noisy machine hits them alike, and reported as the
// median of the repetitions with the ratios between them.
//
// Sections (-sections, comma separated; all by default):
//
//	limits     single-core memcpy, CRC32C and payload bandwidth: the physical ceiling
//	transport  the benchmark payload through shmpc, a Unix domain socket and a pipe
//	small      items of 64 B to 4 KiB: items per second and one-way latency
//	memory     resident memory and allocations per item after 1 GiB and 64 GiB
//	scaling    throughput against slot size, slot count and consumer workers
//
// Each section is in its own file (bench_limits.go, bench_transport.go,
// bench_small.go, bench_memory.go, bench_scaling.go); the peer processes
// are in bench_peer.go, the command, the results and the tables here.
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

var benchSections = []string{"limits", "transport", "small", "memory", "scaling", "api"}

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
		{"memory", benchMemory}, {"scaling", benchScaling}, {"api", benchAPI},
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
	if !c.sections["transport"] && !c.sections["small"] && !c.sections["memory"] && !c.sections["scaling"] && !c.sections["api"] {
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
	API       []apiRow       `json:"api,omitempty"`
	Pipe      pipeRow        `json:"pipe,omitzero"`
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
		fmt.Fprintf(tw, "  geometry\tbytes\tpages\tshmpc\tunix socket\tpipe\tvs socket\tvs pipe\tof memcpy\tshmpc whole job (s)\twhole job GiB/s\n")
		for _, t := range r.Transport {
			fmt.Fprintf(tw, "  %d x %s\t%s\t%s\t%s\t%s\t%s\t%.2fx\t%.2fx\t%.2fx\t%s\t%s\n", t.Slots, formatSize(int64(t.SlotSize)),
				formatBytes(t.Bytes), t.Pages, rng(t.Shmpc, "%.2f"), rng(t.UnixSocket, "%.2f"), rng(t.Pipe, "%.2f"),
				t.VsSocket, t.VsPipe, t.OfMemcpy, rng(t.ShmpcWall, "%.3f"), rng(t.ShmpcWallGiBPerS, "%.2f"))
		}
		fmt.Fprintf(tw, "  (shmpc: run -json's seconds, first Reserve to last release; whole job: its wall_seconds, run's start to both children reaped)\n")
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
	if len(r.API) > 0 {
		fmt.Fprintf(tw, "\nA user's own data: 8 slots of the item size, one consumer worker (GiB/s; x memcpy: one core copying the source into eight targets in turn)\n")
		fmt.Fprintf(tw, "  item\tpath\tview consumer\tx memcpy\tcopy consumer\tx memcpy\n")
		for _, a := range r.API {
			fmt.Fprintf(tw, "  %s\tmemcpy\t%s\t\t\t\n", formatSize(int64(a.Item)), rng(a.Memcpy, "%.2f"))
			for _, path := range apiPaths {
				v, c := a.Paths[path+"/view"], a.Paths[path+"/copy"]
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%.2fx\t%s\t%.2fx\n", formatSize(int64(a.Item)), path,
					rng(v, "%.2f"), ratio(v.Median, a.Memcpy.Median), rng(c, "%.2f"), ratio(c.Median, a.Memcpy.Median))
			}
		}
		fmt.Fprintf(tw, "  (payload: generated in the slot, shmpc run's path; send: Send(buf); copy-commit: Reserve, copy, Commit; pieces: 64 KiB pieces, UpdateCRC of each, CommitCRC)\n")
	}
	if r.Pipe.Bytes > 0 {
		fmt.Fprintf(tw, "\nThe ring as a pipe: produce -stdin < FILE into consume -stdout > /dev/null, %s cached (GiB/s, whole job)\n", formatBytes(r.Pipe.Bytes))
		fmt.Fprintf(tw, "  cat FILE > /dev/null\t%s\n  shmpc pipe\t%s\n  pipe / cat\t%.2fx\n", rng(r.Pipe.Cat, "%.2f"), rng(r.Pipe.Pipe, "%.2f"), r.Pipe.Ratio)
	}
	tw.Flush()
}
