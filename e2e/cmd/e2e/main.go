// Command e2e runs shmpc's fault-injection suite (package e2e) many times
// and prints the table `make e2e` shows: per scenario and page mode the
// trials, items checked, integrity errors delivered, items lost and
// repeated beyond what is allowed, objects leaked, failed trials and the
// worst peer-death detection time. It exits 1 when a cell that must be
// zero is not (or a trial failed), 2 on a usage error.
//
// The scenarios of the kill, resume, scribble and signal families also run
// with mixed pairs (-pairs, -mixed-trials): shmpc-c, the C command, as the
// producer, the consumer or both, and a killed process's successor of the
// other language (e2e.Pair); the table has a pair column.
//
// It builds the shmpc binary of the current module unless -bin names one,
// and shmpc-c (make c) unless -cbin names one; without a C compiler the
// mixed pairs are skipped, saying so.
// Huge-page trials need room in the 2 MiB pool for a few rings at a time:
// run it through e2e/run.sh, which reserves pages and gives them back.
//
//	go run ./e2e/cmd/e2e -trials 9 -mixed-trials 2 -pages both -parallel 2
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shmpc/shmpc/e2e"
)

func main() {
	os.Exit(run())
}

func run() int {
	trials := flag.Int("trials", 9, "trials per scenario and page mode")
	pages := flag.String("pages", "both", "page modes: both, normal or huge")
	seed := flag.Uint64("seed", 0, "the run's seed (0: drawn from the clock and printed)")
	parallel := flag.Int("parallel", 2, "trials run at once")
	only := flag.String("scenario", "", "run only the scenarios whose name matches this regular expression")
	bin := flag.String("bin", "", "the shmpc binary to test (default: build ./cmd/shmpc)")
	cbin := flag.String("cbin", "", "the shmpc-c binary of the mixed pairs (default: build it with make c)")
	pairList := flag.String("pairs", "go/go,c/go,go/c,c/c", "the pairs (producer/consumer command) to run, comma-separated")
	mixedTrials := flag.Int("mixed-trials", 2, "trials per scenario, page mode and mixed pair (c/go, go/c, c/c) of the scenarios that run them")
	bound := flag.Duration("detect-bound", 250*time.Millisecond, "bound on peer-death detection (kill to survivor exit)")
	verbose := flag.Bool("v", false, "print every trial's log as it runs")
	flag.Parse()
	if flag.NArg() > 0 || *trials < 1 || *parallel < 1 || *mixedTrials < 0 {
		fmt.Fprintln(os.Stderr, "usage: e2e [-trials N] [-mixed-trials N] [-pairs LIST] [-pages both|normal|huge] [-seed S] [-parallel P] [-scenario RE] [-bin PATH] [-cbin PATH] [-detect-bound D] [-v]")
		return 2
	}
	var pairs, mixed []e2e.Pair
	goGo := false
	for _, f := range strings.Split(*pairList, ",") {
		p, err := e2e.ParsePair(strings.TrimSpace(f))
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: -pairs: %v\n", err)
			return 2
		}
		pairs = append(pairs, p)
		if p == e2e.GoGo {
			goGo = true
		} else {
			mixed = append(mixed, p)
		}
	}
	var modes []e2e.PageMode
	switch *pages {
	case "both":
		modes = []e2e.PageMode{e2e.Normal, e2e.Huge}
	case "normal":
		modes = []e2e.PageMode{e2e.Normal}
	case "huge":
		modes = []e2e.PageMode{e2e.Huge}
	default:
		fmt.Fprintf(os.Stderr, "e2e: -pages %q: want both, normal or huge\n", *pages)
		return 2
	}
	re, err := regexp.Compile(*only)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: -scenario: %v\n", err)
		return 2
	}
	var scenarios []*e2e.Scenario
	for _, s := range e2e.Scenarios() {
		if re.MatchString(s.Name) {
			scenarios = append(scenarios, s)
		}
	}
	if len(scenarios) == 0 {
		fmt.Fprintf(os.Stderr, "e2e: no scenario matches %q\n", *only)
		return 2
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	if *bin == "" {
		b, remove, err := e2e.BuildBinary("")
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		defer remove()
		*bin = b
	}
	cfg := &e2e.Config{Binary: *bin, Seed: *seed, DetectBound: *bound}
	var jobs []e2e.Job
	if goGo {
		jobs = e2e.Jobs(scenarios, modes, *trials)
	}
	goJobs := len(jobs)
	if len(mixed) > 0 && *mixedTrials > 0 {
		jobs = append(jobs, e2e.MixedJobs(scenarios, modes, mixed, *mixedTrials)...)
	}
	if len(jobs) > goJobs {
		if *cbin == "" {
			b, remove, noCC, err := e2e.BuildCBinary("")
			switch {
			case err != nil:
				fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
				return 1
			case noCC != "" && os.Getenv("SHMPC_REQUIRE_GCC") == "1":
				fmt.Fprintf(os.Stderr, "e2e: %s, and SHMPC_REQUIRE_GCC=1 requires the mixed pairs to run\n", noCC)
				return 1
			case noCC != "":
				fmt.Fprintf(os.Stderr, "e2e: %s\n", noCC)
				cfg.NoC = noCC
			default:
				defer remove()
				*cbin = b
			}
		}
		cfg.CBinary = *cbin
	}
	if *verbose {
		cfg.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}
	fmt.Printf("shmpc e2e: seed %d, %d scenarios x %d page modes x %d trials (go/go) + %d mixed-pair trials = %d trials, %d at a time, detection bound %v\n",
		*seed, len(scenarios), len(modes), *trials, len(jobs)-goJobs, len(jobs), *parallel, *bound)
	if cfg.CBinary != "" {
		fmt.Printf("shmpc-c: %s\n", cfg.CBinary)
	}
	start := time.Now()
	n := 0
	// A first SIGINT or SIGTERM stops the run after the trials in flight
	// (which clean up after themselves); a second one ends it at once.
	stop := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	var interrupted atomic.Bool
	go func() {
		<-sigs
		interrupted.Store(true)
		fmt.Fprintln(os.Stderr, "e2e: interrupted: finishing the trials in flight (again to quit at once)")
		close(stop)
		<-sigs
		os.Exit(130)
	}()
	tempsBefore, err := e2e.TempSemFiles()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	results := e2e.RunJobs(cfg, jobs, *parallel, stop, func(r e2e.Result) {
		n++
		status := "ok"
		switch {
		case r.Skipped != "":
			status = "skipped: " + r.Skipped
		case !r.OK():
			status = "FAILED: " + strings.SplitN(r.Failures0(), "\n", 2)[0]
		}
		fmt.Fprintf(os.Stderr, "[%3d/%d %5.1fs] %s/%s/%s/%d %.2fs %s\n", n, len(jobs), time.Since(start).Seconds(),
			r.Scenario, r.Pages, r.Pair, r.Trial, r.Elapsed.Seconds(), status)
	})
	failed := e2e.SortedFailures(results)
	for _, r := range failed {
		fmt.Println()
		fmt.Print(e2e.Describe(r, *seed))
	}
	fmt.Println()
	ok := e2e.PrintTable(os.Stdout, e2e.Table(scenarios, modes, pairs, results))
	// The failed trials once more, a line each with their checks, after the
	// table: a log that keeps only its tail (a CI summary) still names them.
	for _, r := range failed {
		fmt.Println(e2e.Summary(r))
	}
	fmt.Printf("%d trials in %.1fs, seed %d\n", len(jobs), time.Since(start).Seconds(), *seed)
	// Killed processes must not leave temporary semaphore files either
	// (they belong to no ring, so the trials' own checks miss them).
	if left, err := e2e.NewTempSemFiles(tempsBefore); err != nil {
		fmt.Printf("temporary semaphore files: %v\n", err)
		ok = false
	} else if len(left) > 0 {
		fmt.Printf("temporary semaphore files left in /dev/shm by the run: %s\n", strings.Join(left, " "))
		ok = false
	} else {
		fmt.Println("temporary semaphore files left in /dev/shm by the run: none")
	}
	if !ok {
		return 1
	}
	if interrupted.Load() {
		return 130
	}
	return 0
}
