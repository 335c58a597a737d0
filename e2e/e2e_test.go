package e2e

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shmpc/shmpc/shm"
)

// The sample `go test ./e2e` runs: the shmpc binary built from this
// module (or SHMPC_E2E_BIN), in each page mode, of every scenario as many
// trials as it takes to meet each of its variants (Scenario.Variants, with
// Config.Cover), or SHMPC_E2E_TRIALS if that is more, seeded by
// SHMPC_E2E_SEED (default: sampleSeed, so the sample is the same every
// time; the seed is logged), with a peer-death detection bound of
// SHMPC_E2E_DETECT_BOUND (default 500ms: under `go test ./...` other
// packages' tests share the two cores; `make e2e` holds the design's
// bound of 250 ms). SHMPC_E2E_SKIP, a regular expression, skips the
// scenarios whose names it matches (say, one that fails for a known bug
// while the fix is under way). Under -short or the race detector the
// trials move less data (Config.Short).
//
// The scenarios that run mixed pairs (Scenario.Mixed) also run one trial
// with each of c/go, go/c and c/c in each page mode, with shmpc-c built by
// BuildCBinary (or SHMPC_E2E_CBIN); the six trials of a scenario take
// different choices of its draws (Cover by trial number). Without a C
// compiler they are skipped, saying so; with SHMPC_REQUIRE_GCC=1 (as the CI
// sets) they fail instead.
// sampleSeed is the sample's seed unless SHMPC_E2E_SEED gives another.
const sampleSeed = 0x5eed5a3b1e

var (
	suiteCfg    Config
	hugeSkip    string // why huge-page trials are skipped ("" if they run)
	sampleTrial = 1
	skipRE      *regexp.Regexp // scenarios not to run (SHMPC_E2E_SKIP)
)

// hugeNeed is how many free 2 MiB pages the sample's huge-page trials
// need: two trials at a time, each at most 16 slots of 2 MiB and a header
// page (17 pages), with room to spare for other packages' tests that take
// free pages meanwhile (-hugepages auto takes whatever is free).
const hugeNeed = 64

// suiteM wraps testing.M so that goleak.VerifyTestMain checks for leaked
// goroutines after the suite's own setup and teardown: the shmpc binary is
// built once, huge pages are reserved (as root) and given back.
type suiteM struct{ m *testing.M }

func (s suiteM) Run() int {
	flag.Parse()                      // for testing.Short
	bin := os.Getenv("SHMPC_E2E_BIN") // a prebuilt binary to test instead
	if bin == "" {
		b, remove, err := BuildBinary("")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer remove()
		bin = b
	}
	cbin, noCC := os.Getenv("SHMPC_E2E_CBIN"), ""
	if cbin == "" {
		b, remove, why, err := BuildCBinary("")
		switch {
		case err != nil:
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		case why != "" && os.Getenv("SHMPC_REQUIRE_GCC") == "1":
			fmt.Fprintf(os.Stderr, "e2e: %s, and SHMPC_REQUIRE_GCC=1 requires the mixed pairs to run\n", why)
			return 1
		case why != "":
			noCC = why
		default:
			defer remove()
			cbin = b
		}
	}
	var err error
	// The sample is deterministic: a fixed seed, and every choice of every
	// scenario's draws taken in turn (Cover, Scenario.Variants trials).
	suiteCfg = Config{Binary: bin, CBinary: cbin, NoC: noCC, Seed: sampleSeed, DetectBound: 500 * time.Millisecond,
		Short: testing.Short() || raceEnabled, Cover: true}
	if v := os.Getenv("SHMPC_E2E_SEED"); v != "" {
		if suiteCfg.Seed, err = strconv.ParseUint(v, 0, 64); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: SHMPC_E2E_SEED:", err)
			return 1
		}
	}
	if v := os.Getenv("SHMPC_E2E_TRIALS"); v != "" {
		if sampleTrial, err = strconv.Atoi(v); err != nil || sampleTrial < 1 {
			fmt.Fprintf(os.Stderr, "e2e: SHMPC_E2E_TRIALS=%q: want a positive number\n", v)
			return 1
		}
	}
	if v := os.Getenv("SHMPC_E2E_SKIP"); v != "" {
		if skipRE, err = regexp.Compile(v); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: SHMPC_E2E_SKIP:", err)
			return 1
		}
	}
	if v := os.Getenv("SHMPC_E2E_DETECT_BOUND"); v != "" {
		if suiteCfg.DetectBound, err = time.ParseDuration(v); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: SHMPC_E2E_DETECT_BOUND:", err)
			return 1
		}
	}
	release := reserveHuge()
	defer release()
	return s.m.Run()
}

// reserveHuge makes room for the huge-page trials: as root it adds
// hugeNeed pages to the pool by the flock-and-add rule
// (shm.ReserveHugePages) and returns the function that gives them back;
// otherwise the pool must already have them free. When neither works,
// hugeSkip says what is missing.
func reserveHuge() func() {
	pool, err := shm.ReadHugePool()
	if err != nil {
		hugeSkip = "no 2 MiB huge pages on this kernel: " + err.Error()
		return func() {}
	}
	if os.Geteuid() != 0 {
		switch {
		case !inHugetlbGroup():
			hugeSkip = "huge-page trials need root, or membership of the group vm.hugetlb_shm_group names (SHM_HUGETLB is refused otherwise)"
		case pool.Available() < hugeNeed:
			hugeSkip = fmt.Sprintf("huge-page trials need %d free 2 MiB pages and root to reserve them; not root, and the pool has %d available", hugeNeed, pool.Available())
		}
		return func() {}
	}
	r, err := shm.ReserveHugePages(hugeNeed, time.Minute)
	if err != nil {
		hugeSkip = fmt.Sprintf("reserve %d huge pages: %v", hugeNeed, err)
		return func() {}
	}
	return func() {
		if err := r.Release(time.Minute); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: give back huge pages:", err)
		}
	}
}

// inHugetlbGroup reports whether this process is in the group that
// vm.hugetlb_shm_group allows to create SHM_HUGETLB segments.
func inHugetlbGroup() bool {
	b, err := os.ReadFile("/proc/sys/vm/hugetlb_shm_group")
	if err != nil {
		return false
	}
	gid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return false
	}
	if os.Getegid() == gid {
		return true
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g == gid {
			return true
		}
	}
	return false
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(suiteM{m})
}

// TestScenarios runs the sample: every scenario in both page modes, each
// trial a subtest whose failed checks are test failures with the trial's
// log and its replay seed.
func TestScenarios(t *testing.T) {
	t.Logf("seed %d (SHMPC_E2E_SEED=%d replays this run), every variant of each scenario (at least %d trials) per page mode, detection bound %v",
		suiteCfg.Seed, suiteCfg.Seed, sampleTrial, suiteCfg.DetectBound)
	// What make e2e checks after its run: the glibc-style temporary files
	// a creator killed between its two steps would leave (sem.XXXXXX).
	tempBefore, err := TempSemFiles()
	if err != nil {
		t.Fatalf("list /dev/shm: %v", err)
	}
	t.Cleanup(func() { requireNoNewTempSems(t, tempBefore) })
	for _, s := range Scenarios() {
		for _, pm := range []PageMode{Normal, Huge} {
			t.Run(s.Name+"/"+string(pm), func(t *testing.T) {
				t.Parallel()
				if skipRE != nil && skipRE.MatchString(s.Name) {
					t.Skipf("SHMPC_E2E_SKIP=%s", skipRE)
				}
				if pm == Huge && hugeSkip != "" {
					t.Skip(hugeSkip)
				}
				for i := 0; i < max(sampleTrial, s.Variants); i++ {
					runSampleTrial(t, Job{Scenario: s, Pages: pm, Pair: GoGo, Trial: i})
				}
			})
			if !s.Mixed {
				continue
			}
			for j, pair := range MixedPairs() {
				t.Run(s.Name+"/"+string(pm)+"/"+strings.ReplaceAll(string(pair), "/", "-"), func(t *testing.T) {
					t.Parallel()
					if skipRE != nil && skipRE.MatchString(s.Name) {
						t.Skipf("SHMPC_E2E_SKIP=%s", skipRE)
					}
					if pm == Huge && hugeSkip != "" {
						t.Skip(hugeSkip)
					}
					// Trial numbers 0-2 in normal pages, 3-5 in huge: Cover
					// takes a different choice of each draw in each.
					i := j
					if pm == Huge {
						i += len(MixedPairs())
					}
					runSampleTrial(t, Job{Scenario: s, Pages: pm, Pair: pair, Trial: i})
				})
			}
		}
	}
}

// runSampleTrial runs the trial j of the sample: skipped when it cannot
// run here, a test failure with its report when a check failed.
func runSampleTrial(t *testing.T, j Job) {
	t.Helper()
	res := RunJob(&suiteCfg, j)
	if res.Skipped != "" {
		t.Skip(res.Skipped)
	}
	t.Logf("trial %d (%s): %s; %d items checked, worst detection %v, %.2fs", j.Trial, res.Pair, res.Variant, res.Items,
		res.Detect, res.Elapsed.Seconds())
	if !res.OK() {
		t.Errorf("expected: %s\n%s", j.Scenario.Expect, Describe(res, suiteCfg.Seed))
	}
}

// requireNoNewTempSems fails t if temporary semaphore files appeared in
// /dev/shm since before and stay: other packages' tests (C programs that
// call glibc's sem_open) make such files for a moment, so one is a leftover
// only if it is still there two seconds later.
func requireNoNewTempSems(t *testing.T, before map[string]bool) {
	t.Helper()
	left, err := NewTempSemFiles(before)
	if err == nil && len(left) > 0 {
		time.Sleep(2 * time.Second)
		var still []string
		for _, f := range left {
			if _, err := os.Stat("/dev/shm/" + f); err == nil {
				still = append(still, f)
			}
		}
		left = still
	}
	if err != nil {
		t.Errorf("list /dev/shm: %v", err)
	}
	if len(left) > 0 {
		t.Errorf("temporary semaphore files left in /dev/shm by the sample: %v", left)
	}
}

// TestLayoutMatchesGolden checks that the offsets the attacks aim at are
// ring's layout: the golden file ring's tests pin.
func TestLayoutMatchesGolden(t *testing.T) {
	b, err := os.ReadFile("../ring/testdata/layout.golden")
	if err != nil {
		t.Fatalf("read the ring's layout: %v", err)
	}
	golden := map[string][2]int{}
	for _, line := range strings.Split(string(b), "\n") {
		var name string
		var off, size int
		if n, _ := fmt.Sscanf(line, "%s offset %d size %d", &name, &off, &size); n == 3 {
			golden[name] = [2]int{off, size}
		}
		if n, _ := fmt.Sscanf(line, "header size %d", &size); n == 1 && size != headerSize {
			t.Errorf("header size is %d in the golden layout, %d here", size, headerSize)
		}
		if n, _ := fmt.Sscanf(line, "descriptor size %d", &size); n == 1 && size != descriptorSize {
			t.Errorf("descriptor size is %d in the golden layout, %d here", size, descriptorSize)
		}
	}
	for _, f := range append(append([]layoutField{}, headerFields...), descriptorFields...) {
		g, ok := golden[f.name]
		if !ok {
			t.Errorf("%s is not in the golden layout", f.name)
			continue
		}
		if g != [2]int{f.offset, f.size} {
			t.Errorf("%s: offset %d size %d here, offset %d size %d in the golden layout", f.name, f.offset, f.size, g[0], g[1])
		}
	}
	for name, want := range map[string]int{"header.slotStride": offSlotStride, "header.descOffset": offDescOffset, "header.dataOffset": offDataOffset} {
		if golden[name][0] != want {
			t.Errorf("%s is at %d in the golden layout, %d here", name, golden[name][0], want)
		}
	}
	if len(golden) < len(headerFields)+len(descriptorFields) {
		t.Errorf("the golden layout has %d fields, fewer than the %d attacked", len(golden), len(headerFields)+len(descriptorFields))
	}
}
