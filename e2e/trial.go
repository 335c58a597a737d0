package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/shmpc/shmpc/internal/leakcheck"
	"github.com/shmpc/shmpc/internal/payload"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

// PageMode is how a trial's ring is backed: the producer's -hugepages on
// or off. Every trial that sees the segment checks that it got what it
// asked for.
type PageMode string

// The two page modes.
const (
	Normal PageMode = "normal"
	Huge   PageMode = "huge"
)

// flag returns the producer's -hugepages value for the mode.
func (m PageMode) flag() string {
	if m == Huge {
		return "on"
	}
	return "off"
}

// Config is what every trial of a run shares; trials only read it, so one
// Config serves trials running at once. The zero value is not usable:
// Binary is required.
type Config struct {
	// Binary is the path of the shmpc binary under test. Scenarios that run
	// it as another uid need every directory on the path to be searchable
	// by that uid (BuildBinary makes it so).
	Binary string
	// CBinary is the path of shmpc-c (BuildCBinary), which the trials of a
	// mixed pair run (Pair); "" skips them, with NoC as the reason.
	CBinary string
	// NoC says why there is no CBinary (no C compiler), for the skipped
	// trials of the mixed pairs.
	NoC string
	// Seed is the run's seed; each trial's seed derives from it, the
	// scenario, the page mode and the trial number (TrialSeed).
	Seed uint64
	// DetectBound is how soon after a peer's death a survivor with
	// -peer-timeout 0 must have noticed it, cleaned up and exited
	// (the design bound: 250 ms). Zero means 250 ms.
	DetectBound time.Duration
	// Victim is the uid scenarios run an unprivileged shmpc as (nobody,
	// 65534, when zero); Foreign owns the objects they plant for it to
	// find (65533 when zero). Both need root.
	Victim, Foreign int
	// Short makes trials move less data: shorter live phases before an
	// attack's outcome is judged, and smaller bounded streams. Every check
	// stays; the sample of `go test -short` and of the race detector (whose
	// instrumented checksums are slow) uses it.
	Short bool
	// Cover makes Trial.pick cycle through its choices by trial number
	// (trial i takes choice (i+k) mod n at its k-th draw) instead of
	// drawing at random, so that Scenario.Variants trials take every choice
	// of every draw: the short sample of `go test ./e2e` meets each attack
	// and kill point for sure, not by chance. Other draws (sizes, counts)
	// still come from the seed.
	Cover bool
	// Logf, when set, receives every trial's log as it happens: processes
	// started, signals sent, checks failed. Trials that run at once call it
	// concurrently. The log of a failed trial is also kept in its Result.
	Logf func(format string, args ...any)
}

func (c *Config) detectBound() time.Duration {
	if c.DetectBound > 0 {
		return c.DetectBound
	}
	return 250 * time.Millisecond
}

func (c *Config) victim() int {
	if c.Victim > 0 {
		return c.Victim
	}
	return 65534
}

func (c *Config) foreign() int {
	if c.Foreign > 0 {
		return c.Foreign
	}
	return 65533
}

// Result is what one trial found. The counters that must be zero for the
// system to be right are BadDelivered, Lost, Dups, Leaked, LiveDamaged,
// DoubleOwners, Adopted and (as a count of trials) Failures.
type Result struct {
	Scenario string
	Pages    PageMode
	Pair     Pair
	Trial    int
	Seed     uint64
	Variant  string // the variant and kill point drawn
	// Items is the number of delivered items whose length and CRC (and,
	// with -stdout, bytes) were checked.
	Items int
	// BadDelivered counts delivered items that were not the payload: an
	// integrity error delivered as good data.
	BadDelivered int
	// Lost counts items lost beyond what the scenario allows.
	Lost int
	// Dups counts deliveries beyond the at-least-once window.
	Dups int
	// Leaked counts the ring's objects left after the trial (and planted
	// objects that were removed or changed).
	Leaked int
	// LiveDamaged counts live rings that lost an object or an item to a
	// racing start, teardown or gc (the lifecycle family).
	LiveDamaged int
	// DoubleOwners counts second live holders of a role: a claimant that
	// was not refused, or a live owner that is not the ring's.
	DoubleOwners int
	// Adopted counts objects of another uid that a process used, wrote or
	// removed.
	Adopted int
	// Detect is the worst peer-death detection time measured (0: none).
	Detect time.Duration
	// Failures lists every other check that failed: an exit status, a
	// message, a panic trace, a hang, a late detection.
	Failures []string
	// Skipped says why the trial did not run ("" if it ran).
	Skipped string
	// Elapsed is the trial's wall time.
	Elapsed time.Duration
	// Log is the trial's log, kept when it failed.
	Log string
}

// OK reports whether every must-be-zero counter of the trial is zero.
func (r *Result) OK() bool {
	return r.BadDelivered == 0 && r.Lost == 0 && r.Dups == 0 && r.Leaked == 0 &&
		r.LiveDamaged == 0 && r.DoubleOwners == 0 && r.Adopted == 0 && len(r.Failures) == 0
}

// Trial is one run of a scenario. Scenario code calls its methods from
// one goroutine.
type Trial struct {
	cfg    *Config
	res    *Result
	pages  PageMode
	pair   Pair
	rng    *mrand.Rand
	name   string
	names  ringobj.Names
	dir    string
	start0 time.Time
	// normalPages: the ring was made with normal pages whatever the page
	// mode (an unprivileged owner may not have huge pages).
	normalPages bool

	procs    []*proc
	segs     []*shm.Segment // attachments of this process, detached at the end
	cleanups []func()       // removal of planted objects, run at the end
	planted  map[string]bool
	log      strings.Builder
	picks    int // draws made by pick, for Config.Cover
}

// trialAbort is the panic value that ends a trial at a fatal check.
type trialAbort struct{}

// TrialSeed returns the seed of trial i of scenario s in page mode pm with
// the pair GoGo in a run seeded with seed.
func TrialSeed(seed uint64, s string, pm PageMode, i int) uint64 {
	return PairTrialSeed(seed, s, pm, GoGo, i)
}

// PairTrialSeed returns the seed of trial i of scenario s in page mode pm
// with pair in a run seeded with seed (for GoGo, what TrialSeed returns).
func PairTrialSeed(seed uint64, s string, pm PageMode, pair Pair, i int) uint64 {
	h := fnv.New64a()
	if pair.or() == GoGo {
		fmt.Fprintf(h, "%s/%s/%d", s, pm, i)
	} else {
		fmt.Fprintf(h, "%s/%s/%s/%d", s, pm, pair, i)
	}
	return seed ^ h.Sum64()
}

// RunTrial runs trial i of scenario s in page mode pm with the Go command
// in both roles (GoGo) and returns what it found; see RunJob.
func RunTrial(cfg *Config, s *Scenario, pm PageMode, i int) Result {
	return RunJob(cfg, Job{Scenario: s, Pages: pm, Pair: GoGo, Trial: i})
}

// RunJob runs the trial j and returns what it found. It always cleans up:
// every process it started is killed and reaped, and every object of its
// ring or planted by it is removed.
func RunJob(cfg *Config, j Job) (res Result) {
	s, pm, pair, i := j.Scenario, j.Pages, j.Pair.or(), j.Trial
	seed := PairTrialSeed(cfg.Seed, s.Name, pm, pair, i)
	res = Result{Scenario: s.Name, Pages: pm, Pair: pair, Trial: i, Seed: seed}
	if why := s.skip(cfg, pm, pair); why != "" {
		res.Skipped = why
		return res
	}
	tr := &Trial{
		cfg: cfg, res: &res, pages: pm, pair: pair, rng: mrand.New(mrand.NewPCG(seed, uint64(i))),
		planted: map[string]bool{}, start0: time.Now(),
	}
	tr.name = ringName(s.Name)
	tr.names, _ = ringobj.For(tr.name)
	tr.logf("trial %s/%s/%s/%d seed %#x ring %s", s.Name, pm, pair, i, seed, tr.name)
	dir, err := os.MkdirTemp("", "shmpc-e2e-")
	if err != nil {
		res.Failures = append(res.Failures, "make temp dir: "+err.Error())
		return res
	}
	tr.dir = dir
	// A victim of another uid writes its manifest here.
	_ = os.Chmod(dir, 0o777|os.ModeSticky)
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(trialAbort); !ok {
				tr.failf("the suite panicked: %v\n%s", v, debug.Stack())
			}
		}
		tr.finish()
		_ = os.RemoveAll(dir)
		res.Elapsed = time.Since(tr.start0)
		if !res.OK() {
			res.Log = tr.log.String()
		}
	}()
	s.run(tr)
	tr.checkPair()
	return res
}

// ringName returns a NAME unique to this process and call: "e2e", the pid,
// a random suffix, and the scenario's name.
func ringName(scenario string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	base := regexp.MustCompile(`[^A-Za-z0-9-]+`).ReplaceAllString(scenario, "-")
	if len(base) > 30 {
		base = base[:30]
	}
	return fmt.Sprintf("e2e%d-%s-%s", os.Getpid(), hex.EncodeToString(b[:]), base)
}

// finish kills and reaps every process still running, detaches the
// observer and removes what the trial created: the ring's objects (a
// segment only if one of the trial's processes or the trial created it)
// and the planted objects.
func (tr *Trial) finish() {
	for _, p := range tr.procs {
		if !p.running() && !tr.res.OK() && p.code() != 0 && p.killAt.IsZero() {
			// For the diagnosis of a failed trial: how every process that
			// failed on its own ended.
			tr.logf("%s (pid %d) had exited %d; stderr:\n%s", p.role, p.pid(), p.code(), clip(p.stderr.String(), 1500))
		}
		if p.running() {
			_ = p.cmd.Process.Kill()
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			tr.failf("%s (pid %d) was not reaped within 10s of SIGKILL", p.role, p.pid())
		}
	}
	for _, s := range tr.segs {
		_ = s.Detach()
	}
	tr.removeRing(tr.names)
	for i := len(tr.cleanups) - 1; i >= 0; i-- {
		tr.cleanups[i]()
	}
}

// removeRing removes ring n's objects: its files (the NAME is unique to
// the trial, so they are the trial's), and the segment with its key if one
// of the trial's processes created it or it holds the ring n.
func (tr *Trial) removeRing(n ringobj.Names) {
	if info, err := shm.Lookup(n.Key); err == nil {
		if tr.ours(info, n) {
			_ = shm.RemoveID(info.ID)
		} else {
			tr.logf("left segment key %#x alone: not created by this trial", n.Key)
		}
	}
	for _, p := range n.Files() {
		_ = os.Remove(p)
	}
}

// ours reports whether the segment info was created by one of the trial's
// processes or holds the ring n.
func (tr *Trial) ours(info shm.Info, n ringobj.Names) bool {
	if info.CreatorPID == os.Getpid() {
		return true
	}
	for _, p := range tr.procs {
		if p.pid() == info.CreatorPID {
			return true
		}
	}
	seg, err := shm.AttachID(info.ID, true, shm.Options{Lock: shm.Off})
	if err != nil {
		return false
	}
	defer seg.Detach()
	r, err := ring.Open(seg.Bytes())
	return err == nil && r.Name() == n.Ring
}

// logf appends a line to the trial's log.
func (tr *Trial) logf(format string, args ...any) {
	line := fmt.Sprintf("%8.3fs ", time.Since(tr.start0).Seconds()) + fmt.Sprintf(format, args...)
	tr.log.WriteString(line)
	tr.log.WriteByte('\n')
	if tr.cfg.Logf != nil {
		tr.cfg.Logf("%s/%s/%s/%d: %s", tr.res.Scenario, tr.pages, tr.pair, tr.res.Trial, line)
	}
}

// failf records a failed check; the trial goes on.
func (tr *Trial) failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	tr.res.Failures = append(tr.res.Failures, msg)
	tr.logf("FAIL: %s", msg)
}

// fatalf records a failed check and ends the trial.
func (tr *Trial) fatalf(format string, args ...any) {
	tr.failf(format, args...)
	panic(trialAbort{})
}

// variant records the variant drawn (shown with the trial's result).
func (tr *Trial) variant(format string, args ...any) {
	v := fmt.Sprintf(format, args...)
	if tr.res.Variant != "" {
		tr.res.Variant += ", "
	}
	tr.res.Variant += v
	tr.logf("variant: %s", v)
}

// pick draws one of choices (with Config.Cover: takes them in turn, by
// trial number).
func (tr *Trial) pick(choices ...string) string {
	if tr.cfg.Cover {
		c := choices[(tr.res.Trial+tr.picks)%len(choices)]
		tr.picks++
		return c
	}
	return choices[tr.rng.IntN(len(choices))]
}

// intn draws an int in [0, n).
func (tr *Trial) intn(n int) int { return tr.rng.IntN(n) }

// between draws a duration in [lo, hi].
func (tr *Trial) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(tr.rng.Int64N(int64(hi-lo)+1))
}

// live draws how long a live phase lasts (the transfer running after an
// attack, before the stream is ended): in [lo, hi], a fifth of it in Short
// mode.
func (tr *Trial) live(lo, hi time.Duration) time.Duration {
	if tr.cfg.Short {
		lo, hi = lo/5, hi/5
	}
	return tr.between(lo, hi)
}

// file returns a path in the trial's directory.
func (tr *Trial) file(name string) string { return filepath.Join(tr.dir, name) }

// detected records a peer-death detection time: from the kill to the
// survivor's exit.
func (tr *Trial) detected(who string, d time.Duration) {
	if d <= 0 {
		// It exited before its peer was killed: it declared a live peer
		// dead (or died of something else), which is no detection at all.
		tr.failf("%s exited %v before its peer was killed: a live peer was taken for dead", who, -d)
		return
	}
	tr.logf("%s noticed the death and exited %v after the kill", who, d)
	if d > tr.res.Detect {
		tr.res.Detect = d
	}
	if d > tr.cfg.detectBound() {
		tr.failf("%s took %v to notice its peer's death and exit, bound %v", who, d, tr.cfg.detectBound())
	}
}

// expired checks that a survivor whose -peer-timeout was timeout gave up
// after it expired and within the detection bound after that.
func (tr *Trial) expired(who string, d, timeout time.Duration) {
	if d <= 0 {
		tr.failf("%s exited %v before its peer was killed: a live peer was taken for dead", who, -d)
		return
	}
	tr.logf("%s gave up %v after the death, -peer-timeout %v", who, d, timeout)
	if d < timeout {
		tr.failf("%s gave up %v after its peer died, before its -peer-timeout %v", who, d, timeout)
	}
	if d > timeout+tr.cfg.detectBound() {
		tr.failf("%s gave up %v after its peer died: more than its -peer-timeout %v plus %v", who, d, timeout, tr.cfg.detectBound())
	}
}

// waitFor polls cond every millisecond until it holds. Not holding within
// bound, or one of watch exiting first, ends the trial. The watched
// processes are looked at before the condition, each time: a process that
// exited while the condition came true has exited first (a survivor that
// wrongly declared its peer dead must not pass for one that waited).
func (tr *Trial) waitFor(what string, bound time.Duration, cond func() bool, watch ...*proc) {
	deadline := time.Now().Add(bound)
	for {
		for _, p := range watch {
			if !p.running() {
				tr.fatalf("%s exited with status %d while waiting for %s; stderr:\n%s", p.role, p.code(), what, clip(p.stderr.String(), 1500))
			}
		}
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			tr.fatalf("hang: %s did not happen within %v", what, bound)
		}
		time.Sleep(time.Millisecond)
	}
}

// sleep pauses the trial.
func (tr *Trial) sleep(d time.Duration) { time.Sleep(d) }

// expectCode checks a process's exit status against the allowed ones and
// its stderr (checkStderr), returning the error line.
func (tr *Trial) expectCode(p *proc, allowed []int, want ...string) string {
	code := p.code()
	tr.logf("%s exited %d after %.3fs: %s", p.role, code, p.exitAt.Sub(tr.start0).Seconds(), lastLine(p.stderr.String()))
	ok := false
	for _, a := range allowed {
		ok = ok || a == code
	}
	if !ok {
		tr.failf("%s exited with status %d, want one of %v; stderr:\n%s", p.role, code, allowed, clip(p.stderr.String(), 1500))
		return ""
	}
	return tr.checkStderr(p, want...)
}

// observe attaches the ring's segment read-only once it holds a formatted
// ring of the trial's NAME and returns the ring; the attachment lasts
// until the trial ends, so head and tail stay readable after the segment
// was removed. The segment must be backed as the page mode says. It ends
// the trial if the ring does not appear within 20 s or one of watch exits
// first.
func (tr *Trial) observe(watch ...*proc) *ring.Ring {
	var r *ring.Ring
	tr.waitFor("ring "+tr.name+" to appear", 20*time.Second, func() bool {
		seg, err := shm.Attach(tr.names.Key, true, shm.Options{Lock: shm.Off})
		if err != nil {
			return false
		}
		rr, err := ring.Open(seg.Bytes())
		if err != nil || rr.Name() != tr.name {
			_ = seg.Detach()
			return false
		}
		tr.segs = append(tr.segs, seg)
		if want := tr.pages == Huge && !tr.normalPages; seg.Huge() != want {
			tr.failf("ring %s: huge pages %v, want %v (page mode %s)", tr.name, seg.Huge(), want, tr.pages)
		}
		r = rr
		return true
	}, watch...)
	return r
}

// attachRW attaches the ring's segment read-write, for an attacker.
func (tr *Trial) attachRW() []byte {
	seg, err := shm.Attach(tr.names.Key, false, shm.Options{Lock: shm.Off})
	if err != nil {
		tr.fatalf("attach segment of %s read-write: %v", tr.name, err)
	}
	tr.segs = append(tr.segs, seg)
	return seg.Bytes()
}

// stream is the geometry and length of a trial's stream.
type stream struct {
	slots    int
	slotSize int
	items    uint64
	total    uint64 // bytes
	bytes    bool   // given as -bytes (the last item may be shorter)
	workers  int
}

// lenOf returns item seq's length.
func (s stream) lenOf(seq uint64) int {
	if seq == s.items-1 {
		if r := s.total % uint64(s.slotSize); r != 0 {
			return int(r)
		}
	}
	return s.slotSize
}

// drawStream draws a geometry for the page mode and a stream: a long one
// (a million items, which no trial lets finish: a kill or a signal ends
// it) or a bounded one, transferred completely after a resume: about
// boundedBytes (half in Short mode), at least minBounded and at most
// maxBounded items, so that a transfer lasts tens of milliseconds at
// least and a kill point drawn from its first eighth lands before its end.
func (tr *Trial) drawStream(long bool) stream {
	slotsChoice := []int{1, 2, 3, 4, 8, 16}
	sizes := []int{4096, 16 << 10, 64 << 10, 256 << 10}
	if tr.pages == Huge {
		sizes = []int{4096, 64 << 10, 2 << 20}
	}
	s := stream{slots: slotsChoice[tr.intn(len(slotsChoice))], slotSize: sizes[tr.intn(len(sizes))], workers: 1 + tr.intn(4)}
	items := uint64(longItems)
	if !long {
		bytes := uint64(boundedBytes)
		if tr.cfg.Short {
			bytes /= 2
		}
		items = min(max(bytes/uint64(s.slotSize), minBounded), maxBounded)
	}
	s.items = items/2 + uint64(tr.rng.Int64N(int64(items/2)+1))
	s.total = s.items * uint64(s.slotSize)
	if tr.intn(2) == 0 {
		s.bytes = true
		s.total -= uint64(tr.intn(s.slotSize)) // a shorter last item (or a full one)
	}
	tr.variant("%d slots of %d, %d items, %d workers", s.slots, s.slotSize, s.items, s.workers)
	return s
}

// geometry returns the producer's geometry and stream flags.
func (s stream) produceFlags() []string {
	a := []string{"-slots", strconv.Itoa(s.slots), "-slot-size", strconv.Itoa(s.slotSize)}
	if s.bytes {
		return append(a, "-bytes", strconv.FormatUint(s.total, 10))
	}
	return append(a, "-count", strconv.FormatUint(s.items, 10))
}

// produce returns the arguments of a producer of st, then extra.
func (tr *Trial) produce(st stream, extra ...string) []string {
	a := append([]string{"produce", "-name", tr.name, "-hugepages", tr.pages.flag()}, st.produceFlags()...)
	return append(a, extra...)
}

// consume returns the arguments of a consumer of the trial's ring writing
// the manifest m, then extra.
func (tr *Trial) consume(st stream, m string, extra ...string) []string {
	a := []string{"consume", "-name", tr.name, "-workers", strconv.Itoa(st.workers), "-manifest", m}
	return append(a, extra...)
}

// manifestLine is one line of a consumer's -manifest.
type manifestLine struct {
	Seq    uint64 `json:"seq"`
	Len    int    `json:"len"`
	CRC32C uint32 `json:"crc32c"`
}

// delivered reads the manifest at path (missing: nothing delivered),
// checks every line against the stream's payload and returns how many
// times each sequence number was delivered. Lines that are not the
// payload count as integrity errors delivered; a sequence number
// delivered twice by one consumer counts as a duplicate beyond the
// window (a consumer never redelivers to itself).
func (tr *Trial) delivered(who, path string, st stream) map[uint64]int {
	counts := map[uint64]int{}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return counts
	}
	if err != nil {
		tr.fatalf("open manifest of %s: %v", who, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	bad := 0
	for sc.Scan() {
		var m manifestLine
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			tr.failf("%s's manifest has a malformed line %q: %v", who, sc.Text(), err)
			continue
		}
		tr.res.Items++
		counts[m.Seq]++
		switch {
		case m.Seq >= st.items:
			bad++
			tr.res.BadDelivered++
			tr.failf("%s delivered item %d of a stream of %d", who, m.Seq, st.items)
		case m.Len != st.lenOf(m.Seq) || m.CRC32C != payload.CRC(m.Seq, m.Len):
			bad++
			tr.res.BadDelivered++
			if bad <= 3 {
				tr.failf("%s delivered item %d with len %d crc32c %#x; the payload is len %d crc32c %#x",
					who, m.Seq, m.Len, m.CRC32C, st.lenOf(m.Seq), payload.CRC(m.Seq, st.lenOf(m.Seq)))
			}
		}
	}
	if err := sc.Err(); err != nil {
		tr.failf("read manifest of %s: %v", who, err)
	}
	for seq, n := range counts {
		if n > 1 {
			tr.res.Dups += n - 1
			tr.failf("%s delivered item %d %d times", who, seq, n)
		}
	}
	tr.logf("%s delivered %d items", who, len(counts))
	return counts
}

// requireAll checks that every item in [lo, hi) was delivered at least
// once; each missing one is lost beyond what is allowed.
func (tr *Trial) requireAll(what string, counts map[uint64]int, lo, hi uint64) {
	missing := 0
	first := uint64(0)
	for s := lo; s < hi; s++ {
		if counts[s] == 0 {
			if missing == 0 {
				first = s
			}
			missing++
		}
	}
	if missing > 0 {
		tr.res.Lost += missing
		tr.failf("%d items of %s [%d, %d) were never delivered (the first: %d)", missing, what, lo, hi, first)
	}
}

// requireBelow checks that nothing at or beyond hi was delivered: items
// that were never published cannot have been.
func (tr *Trial) requireBelow(who string, counts map[uint64]int, hi uint64) {
	for s := range counts {
		if s >= hi {
			tr.res.BadDelivered++
			tr.failf("%s delivered item %d, but only %d were published", who, s, hi)
		}
	}
}

// requireWindow checks what two consumers delivered of one stream, the
// first killed when it had released tail items and head were published:
// only items in [tail, head) may have been delivered by both, at most
// slots of them.
func (tr *Trial) requireWindow(c1, c2 map[uint64]int, tail, head uint64, slots int) {
	both := 0
	for s := range c1 {
		if c2[s] == 0 {
			continue
		}
		both++
		if s < tail || s >= head {
			tr.res.Dups++
			tr.failf("item %d was delivered by both consumers but was released (tail %d) or unpublished (head %d) when the first died", s, tail, head)
		}
	}
	if both > slots {
		tr.res.Dups += both - slots
		tr.failf("%d items were delivered by both consumers, more than the %d slots", both, slots)
	}
	tr.logf("%d items delivered twice (window [%d, %d))", both, tail, head)
}

// checkLeftovers checks that no object of the ring remains besides those
// the trial planted: no file in /dev/shm whose name contains
// "shmpc."+NAME and no segment with the ring's key (internal/leakcheck,
// which derives neither from the code under test).
func (tr *Trial) checkLeftovers() {
	left, err := leakcheck.Objects(tr.name)
	if err != nil {
		tr.failf("list objects of %s: %v", tr.name, err)
	}
	var extra []string
	for _, l := range left {
		if !tr.planted[l] {
			extra = append(extra, l)
		}
	}
	if len(extra) > 0 {
		tr.res.Leaked += len(extra)
		tr.failf("ring %s left objects behind: %s", tr.name, strings.Join(extra, ", "))
	}
}

// lossMessage parses "N items delivered" from a survivor's error line.
var deliveredRE = regexp.MustCompile(`(\d+) items delivered`)

func deliveredCount(line string) (uint64, bool) {
	m := deliveredRE.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	return n, err == nil
}

// Failures0 returns the first failed check ("" if none).
func (r *Result) Failures0() string {
	if len(r.Failures) == 0 {
		return ""
	}
	return r.Failures[0]
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
