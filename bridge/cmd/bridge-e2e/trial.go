package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shmpc/shmpc/internal/payload"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/shm"
)

// config is what every trial shares.
type config struct {
	shmpc, bridge, natsd string // the binaries
	seed                 uint64
	verbose              bool
}

// Result is one trial's outcome and the cells of the table it adds to.
type Result struct {
	Scenario string
	Trial    int
	Seed     uint64
	Drawn    string // what the trial drew: geometry, kill moments, forgeries
	Outcome  string // what happened where the scenario allows more than one outcome
	Items    int    // delivered items checked (length and CRC32C)
	Bad      int    // delivered items that are not the payload
	Lost     int    // items never delivered that had to be
	Dups     int    // deliveries beyond what the scenario allows
	Leaked   int    // ring objects left at the end, of either ring
	Failures []string
	Log      string
	Elapsed  time.Duration
}

// OK reports whether every must-be-zero cell is zero and no check failed.
func (r Result) OK() bool {
	return r.Bad == 0 && r.Lost == 0 && r.Dups == 0 && r.Leaked == 0 && len(r.Failures) == 0
}

// fatal stops a trial at a failed check (panicked, recovered by runTrial).
type fatal struct{}

// trial is one run of a scenario: two rings, a NATS server, the processes.
type trial struct {
	cfg        *config
	res        *Result
	rng        *rand.Rand
	dir        string
	src, dst   string // ring NAMEs: the source's and the remote one
	subject    string
	count      int
	size       int
	slots      int
	maxPayload int
	procs      []*proc
	log        strings.Builder
	began      time.Time
}

func (t *trial) logf(format string, args ...any) {
	line := fmt.Sprintf("%6.2fs ", time.Since(t.began).Seconds()) + fmt.Sprintf(format, args...)
	t.log.WriteString(line + "\n")
	if t.cfg.verbose {
		fmt.Fprintf(os.Stderr, "%s/%d: %s\n", t.res.Scenario, t.res.Trial, line)
	}
}

// failf records a failed check; the trial goes on.
func (t *trial) failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	t.res.Failures = append(t.res.Failures, msg)
	t.logf("FAIL: %s", msg)
}

// fatalf records a failed check and stops the trial.
func (t *trial) fatalf(format string, args ...any) {
	t.failf(format, args...)
	panic(fatal{})
}

// drawf appends to what the trial drew.
func (t *trial) drawf(format string, args ...any) {
	if t.res.Drawn != "" {
		t.res.Drawn += ", "
	}
	t.res.Drawn += fmt.Sprintf(format, args...)
}

// trialSeed derives a trial's seed from the run's, the scenario and the trial.
func trialSeed(seed uint64, scenario string, trial int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%d", seed, scenario, trial)
	return h.Sum64()
}

// runTrial runs trial i of s and returns its result; it never panics.
func runTrial(cfg *config, s *scenario, i int) (res Result) {
	res = Result{Scenario: s.name, Trial: i, Seed: trialSeed(cfg.seed, s.name, i)}
	t := &trial{cfg: cfg, res: &res, began: time.Now()}
	t.rng = rand.New(rand.NewPCG(res.Seed, res.Seed^0x9E3779B97F4A7C15))
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(fatal); !ok {
				t.failf("the runner panicked (a bug of the runner): %v", v)
			}
		}
		t.cleanup()
		res.Elapsed = time.Since(t.began)
		if !res.OK() {
			for _, p := range t.procs {
				fmt.Fprintf(&t.log, "stderr of %s (exit %d):\n%s\n", p.name, p.cmd.ProcessState.ExitCode(), indent(tail(p.stderr.String(), 6)))
			}
			res.Log = t.log.String()
		}
	}()
	dir, err := os.MkdirTemp("", "shmpc-bridge-e2e-")
	if err != nil {
		t.fatalf("temporary directory: %v", err)
	}
	t.dir = dir
	var b [3]byte
	for j := range b {
		b[j] = byte(t.rng.Uint32())
	}
	tag := fmt.Sprintf("%d-%x-%d", os.Getpid(), b, i)
	t.src, t.dst = "bes"+tag+"-"+s.short, "bed"+tag+"-"+s.short
	for _, n := range []string{t.src, t.dst} {
		if err := shm.ValidName(n); err != nil {
			t.fatalf("ring name %s: %v", n, err)
		}
	}
	t.subject = "shmpc.e2e." + strings.ReplaceAll(t.src, ".", "_")
	t.drawGeometry()
	s.run(t)
	return res
}

// cleanup kills what still runs, counts and removes what is left of both
// rings, and removes the trial's directory.
func (t *trial) cleanup() {
	for _, p := range t.procs {
		if p.running() {
			_ = p.cmd.Process.Kill()
			<-p.done
			if !p.killed {
				t.failf("%s still running at the end of the trial: killed", p.name)
			}
		}
	}
	for _, name := range []string{t.src, t.dst} {
		if name == "" {
			continue
		}
		n, err := ringobj.For(name)
		if err != nil {
			t.failf("ring %s: %v", name, err)
			continue
		}
		left, err := ringobj.Leftovers(n)
		if err != nil {
			t.failf("leftovers of ring %s: %v", name, err)
		}
		if len(left) > 0 {
			t.res.Leaked += len(left)
			t.failf("ring %s left objects behind: %s", name, strings.Join(left, ", "))
			for _, f := range n.Files() {
				_ = os.Remove(f)
			}
			if info, err := shm.Lookup(n.Key); err == nil {
				_ = shm.RemoveID(info.ID)
			}
		}
	}
	if t.dir != "" {
		_ = os.RemoveAll(t.dir)
	}
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

// drawGeometry draws the source ring's geometry and the stream: small items
// in many, 64 KiB ones, and items above the server's max_payload (several
// messages each).
func (t *trial) drawGeometry() {
	t.maxPayload = 1 << 20
	switch t.rng.IntN(4) {
	case 0:
		t.size, t.count = 4<<10, 12000+t.rng.IntN(8000)
	case 1:
		t.size, t.count = 64<<10, 2000+t.rng.IntN(1000)
	case 2:
		t.size, t.count = 1<<20+64<<10, 60+t.rng.IntN(40) // 2 messages at the default max_payload
	default:
		t.maxPayload = 256 << 10
		t.size, t.count = 1<<20, 60+t.rng.IntN(40) // 5 messages of at most 252 KiB
	}
	t.slots = []int{2, 4, 8, 16}[t.rng.IntN(4)]
	t.drawf("%d items of %d bytes, %d slots, max_payload %d", t.count, t.size, t.slots, t.maxPayload)
}

// peerWait is the processes' -wait and -peer-timeout: long enough for a
// kill and a restart on a loaded machine.
const peerWait = "60s"

// procBound bounds the wait for a process's exit once its stream can end.
const procBound = 60 * time.Second

func (t *trial) produce() *proc {
	return t.start("produce", t.cfg.shmpc, "produce", "-name", t.src, "-count", strconv.Itoa(t.count),
		"-slot-size", strconv.Itoa(t.size), "-slots", strconv.Itoa(t.slots), "-wait", peerWait, "-peer-timeout", peerWait,
		"-hugepages", "off", "-mlock", "off")
}

func (t *trial) send(url string) *proc {
	return t.start("send", t.cfg.bridge, "send", "-name", t.src, "-nats", url, "-subject", t.subject,
		"-wait", peerWait, "-peer-timeout", peerWait)
}

func (t *trial) recv(url string, extra ...string) *proc {
	args := append([]string{"recv", "-name", t.dst, "-nats", url, "-subject", t.subject, "-wait", peerWait, "-peer-timeout", peerWait}, extra...)
	return t.start("recv", t.cfg.bridge, args...)
}

func (t *trial) consume(manifest string) *proc {
	return t.start("consume", t.cfg.shmpc, "consume", "-name", t.dst, "-manifest", manifest,
		"-wait", peerWait, "-peer-timeout", peerWait)
}

// entry is one line of a manifest.
type entry struct {
	Seq uint64 `json:"seq"`
	Len int    `json:"len"`
	CRC uint32 `json:"crc32c"`
}

// readManifest reads a manifest (missing: empty; a line being written ends it).
func readManifest(path string) []entry {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var es []entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e entry
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			break
		}
		es = append(es, e)
	}
	return es
}

// manifestLines counts a manifest's lines cheaply.
func manifestLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// waitManifest waits (bounded) until the manifest has at least n lines;
// watch must keep running meanwhile.
func (t *trial) waitManifest(path string, n int, watch ...*proc) {
	deadline := time.Now().Add(60 * time.Second)
	for manifestLines(path) < n {
		if time.Now().After(deadline) {
			t.fatalf("the manifest has %d of the %d lines waited for after 60s", manifestLines(path), n)
		}
		for _, p := range watch {
			if !p.running() {
				t.fatalf("%s exited %d before the manifest had %d lines; stderr tail:\n%s", p.name, p.cmd.ProcessState.ExitCode(), n, tail(p.stderr.String(), 8))
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// moment draws a manifest line count to act at: between lo and hi of the
// stream (fractions).
func (t *trial) moment(lo, hi float64) int {
	return int(float64(t.count) * (lo + (hi-lo)*t.rng.Float64()))
}

// checkDelivery checks the manifests of the remote consumers (in order:
// a consumer's successor after it). Every line must be an item of the stream
// with the payload's length and CRC32C (Bad otherwise); a seq may appear once
// across them, except at a consumer's takeover: an item of the predecessor
// at or after the successor's first item, and fewer than slots after it
// (Dups otherwise). With all, every seq must be there (Lost); without, what
// was delivered must be the stream's first items, with no gap.
func (t *trial) checkDelivery(manifests []string, all bool) {
	seen := make(map[uint64]int, t.count)
	var sets []map[uint64]bool
	bad := 0
	for _, path := range manifests {
		set := map[uint64]bool{}
		for _, e := range readManifest(path) {
			if e.Seq >= uint64(t.count) || e.Len != t.size || e.CRC != payload.CRC(e.Seq, t.size) {
				if bad++; bad <= 3 {
					t.failf("delivered item %d: len %d crc32c %#08x, the payload's is len %d crc32c %#08x", e.Seq, e.Len, e.CRC, t.size, payload.CRC(e.Seq, t.size))
				}
				continue
			}
			t.res.Items++
			if set[e.Seq] {
				t.res.Dups++
				t.failf("item %d delivered twice by one consumer (%s)", e.Seq, filepath.Base(path))
			}
			set[e.Seq] = true
			seen[e.Seq]++
		}
		sets = append(sets, set)
	}
	t.res.Bad += bad
	for k := 1; k < len(sets); k++ {
		first := uint64(1<<63 - 1)
		for s := range sets[k] {
			first = min(first, s)
		}
		var repeated []uint64
		for s := range sets[k] {
			for j := 0; j < k; j++ {
				if sets[j][s] {
					repeated = append(repeated, s)
				}
			}
		}
		sort.Slice(repeated, func(a, b int) bool { return repeated[a] < repeated[b] })
		out := 0
		for _, s := range repeated {
			if s < first || s >= first+uint64(t.slots) {
				out++
			}
		}
		if len(repeated) > t.slots || out > 0 {
			t.res.Dups += max(out, len(repeated)-t.slots)
			t.failf("consumer %d repeated %d items of its predecessors (%v), allowed: at most %d, from its first item %d on", k+1, len(repeated), short(repeated), t.slots, first)
		}
		if len(repeated) > 0 {
			t.res.Outcome = fmt.Sprintf("%d items repeated at the takeover (%d..%d; slots %d)", len(repeated), repeated[0], repeated[len(repeated)-1], t.slots)
		} else if t.res.Outcome == "" {
			t.res.Outcome = "no item repeated at the takeover"
		}
	}
	want := t.count
	if !all {
		want = 0
		for seen[uint64(want)] > 0 {
			want++
		}
		extra := 0
		for s := range seen {
			if s >= uint64(want) {
				extra++
			}
		}
		if extra > 0 {
			t.res.Lost += extra
			t.failf("delivered %d items after a gap at item %d", extra, want)
		}
	}
	var missing []uint64
	for s := range uint64(want) {
		if seen[s] == 0 {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		t.res.Lost += len(missing)
		t.failf("%d of %d items never delivered: %v", len(missing), want, short(missing))
	}
}

// short prints at most 8 sequence numbers.
func short(s []uint64) string {
	if len(s) <= 8 {
		return fmt.Sprint(s)
	}
	return fmt.Sprintf("%v ... %d", s[:8], s[len(s)-1])
}
