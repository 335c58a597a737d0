// Command bridge-e2e is the bridge family of shmpc's fault-injection run
// (`make e2e` runs it after the core runner, through e2e/run.sh): real
// processes, shmpc produce -> shmpc-bridge send -> a NATS server with
// JetStream (natsd, internal/cmd/natsd) -> shmpc-bridge recv -> shmpc consume
// -manifest, with a fault injected at moments drawn from the seed:
//
//   - bridge-send-kill: send SIGKILLed (once or twice) and started again;
//   - bridge-recv-kill: recv SIGKILLed and started again, with the same
//     durable consumer or a new one (which reads the stream from its start);
//   - bridge-nats-kill: the NATS server SIGKILLed and started again on the
//     same port and store;
//   - bridge-remote-consumer-kill: the remote consume SIGKILLed, another
//     started;
//   - bridge-scribble: a third NATS client publishes onto the subject
//     messages without headers, with garbled headers, of another stream, and
//     well-formed pieces of the real stream with a wrong CRC32C or truncated.
//
// Each trial draws the source ring's geometry (2000-20000 items of 4 KiB,
// 64 KiB items, and items of 1 MiB and more that travel as 2 to 5 messages),
// the start order of the processes and its fault, then checks: every item the
// remote consumers delivered is the payload (docs/cli.md) by its length and
// CRC32C; none lost; none repeated, except at a remote consumer's takeover
// (the items its predecessor delivered and had not released: at most the
// ring's slot count, from the successor's first item on); every process's
// exit status (0, or what the fault makes it: a forged piece met before the
// real one stops recv with exit 4 naming the integrity error, and the trial
// then stops the remote consume and removes the remote ring with shmpc gc;
// else recv must count every forged message it read that has no valid
// headers or is of another stream as ignored); and that no object of either
// ring remains at the end. It prints the table and exits 1 when a cell that
// must be zero is not, 2 on a usage error.
//
//	go run ./cmd/bridge-e2e -trials 3 -seed 1
//
// It builds shmpc, shmpc-bridge and natsd into a temporary directory unless
// -bin names a directory holding them (or -shmpc, -bridge, -natsd name each).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

func main() { os.Exit(run()) }

func run() int {
	trials := flag.Int("trials", 3, "trials per scenario")
	seed := flag.Uint64("seed", 0, "the run's seed (0: drawn from the clock and printed)")
	parallel := flag.Int("parallel", 1, "trials run at once")
	only := flag.String("scenario", "", "run only the scenarios whose name matches this regular expression")
	bin := flag.String("bin", "", "a directory holding shmpc, shmpc-bridge and natsd (default: build them)")
	shmpcBin := flag.String("shmpc", "", "the shmpc binary (default: -bin's)")
	bridgeBin := flag.String("bridge", "", "the shmpc-bridge binary (default: -bin's)")
	natsdBin := flag.String("natsd", "", "the natsd binary (default: -bin's)")
	verbose := flag.Bool("v", false, "print every trial's log as it runs")
	flag.Parse()
	if flag.NArg() > 0 || *trials < 1 || *parallel < 1 {
		fmt.Fprintln(os.Stderr, "usage: bridge-e2e [-trials N] [-seed S] [-parallel P] [-scenario RE] [-bin DIR | -shmpc P -bridge P -natsd P] [-v]")
		return 2
	}
	re, err := regexp.Compile(*only)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bridge-e2e: -scenario: %v\n", err)
		return 2
	}
	var scs []*scenario
	for _, s := range scenarios() {
		if re.MatchString(s.name) {
			scs = append(scs, s)
		}
	}
	if len(scs) == 0 {
		fmt.Fprintf(os.Stderr, "bridge-e2e: no scenario matches %q\n", *only)
		return 2
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	cfg := &config{seed: *seed, verbose: *verbose}
	if *bin == "" && (*shmpcBin == "" || *bridgeBin == "" || *natsdBin == "") {
		dir, err := build()
		if err != nil {
			fmt.Fprintf(os.Stderr, "bridge-e2e: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		*bin = dir
	}
	pick := func(flagged, name string) string {
		if flagged != "" {
			return flagged
		}
		return filepath.Join(*bin, name)
	}
	cfg.shmpc, cfg.bridge, cfg.natsd = pick(*shmpcBin, "shmpc"), pick(*bridgeBin, "shmpc-bridge"), pick(*natsdBin, "natsd")
	for _, b := range []string{cfg.shmpc, cfg.bridge, cfg.natsd} {
		if _, err := os.Stat(b); err != nil {
			fmt.Fprintf(os.Stderr, "bridge-e2e: %v: give -bin DIR with shmpc, shmpc-bridge and natsd\n", err)
			return 2
		}
	}
	type job struct {
		s *scenario
		i int
	}
	var jobs []job
	for i := range *trials {
		for _, s := range scs {
			jobs = append(jobs, job{s, i})
		}
	}
	fmt.Printf("shmpc bridge e2e: seed %d, %d scenarios x %d trials = %d trials, %d at a time\n", *seed, len(scs), *trials, len(jobs), *parallel)
	start := time.Now()
	results := make([]Result, len(jobs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for range *parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				res := runTrial(cfg, jobs[i].s, jobs[i].i)
				mu.Lock()
				results[i] = res
				status := "ok"
				if !res.OK() {
					status = "FAILED"
				}
				fmt.Printf("%s/%d %s in %.1fs (drawn: %s)", res.Scenario, res.Trial, status, res.Elapsed.Seconds(), res.Drawn)
				if res.Outcome != "" {
					fmt.Printf(": %s", res.Outcome)
				}
				fmt.Println()
				mu.Unlock()
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()

	var failed []Result
	for _, r := range results {
		if !r.OK() {
			failed = append(failed, r)
		}
	}
	sort.SliceStable(failed, func(a, b int) bool { return failed[a].Scenario < failed[b].Scenario })
	for _, r := range failed {
		fmt.Print(describe(r, *seed))
	}
	ok := printTable(os.Stdout, scs, results)
	fmt.Printf("%d trials in %.1fs\n", len(results), time.Since(start).Seconds())
	for _, r := range failed {
		fmt.Println(summary(r))
	}
	if !ok {
		return 1
	}
	return 0
}

// build builds shmpc, shmpc-bridge and natsd into a new temporary directory.
func build() (string, error) {
	dir, err := os.MkdirTemp("", "shmpc-bridge-e2e-bin-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/shmpc/shmpc/cmd/shmpc",
		"github.com/shmpc/shmpc/bridge/cmd/shmpc-bridge", "github.com/shmpc/shmpc/bridge/internal/cmd/natsd")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("build the binaries (run it in the bridge module, or give -bin): %v\n%s", err, out)
	}
	return dir, nil
}

// row is a scenario's totals.
type row struct {
	s                                     *scenario
	trials, items, bad, lost, dups, leaks int
	failed                                int
}

// printTable writes the table and reports whether every must-be-zero cell
// is zero.
func printTable(w *os.File, scs []*scenario, results []Result) bool {
	rows := map[string]*row{}
	for _, s := range scs {
		rows[s.name] = &row{s: s}
	}
	for _, r := range results {
		x := rows[r.Scenario]
		x.trials++
		x.items += r.Items
		x.bad += r.Bad
		x.lost += r.Lost
		x.dups += r.Dups
		x.leaks += r.Leaked
		if !r.OK() {
			x.failed++
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\ttrials\titems checked\tbad delivered\tlost\tdup\tleaked\tfailed\texpected outcome\t")
	var tot row
	ok := true
	for _, s := range scs {
		x := rows[s.name]
		mark := ""
		if x.bad+x.lost+x.dups+x.leaks+x.failed > 0 {
			mark, ok = " <-- FAIL", false
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s%s\t\n", s.name, x.trials, x.items, x.bad, x.lost, x.dups, x.leaks, x.failed, s.expect, mark)
		tot.trials += x.trials
		tot.items += x.items
		tot.bad += x.bad
		tot.lost += x.lost
		tot.dups += x.dups
		tot.leaks += x.leaks
		tot.failed += x.failed
	}
	fmt.Fprintf(tw, "TOTAL\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", tot.trials, tot.items, tot.bad, tot.lost, tot.dups, tot.leaks, tot.failed,
		map[bool]string{true: "all must-be-zero cells are 0", false: "SOME MUST-BE-ZERO CELLS ARE NOT 0"}[ok])
	_ = tw.Flush()
	return ok
}

// describe returns a failed trial's report: what was drawn, how to replay
// it, every failed check and its log with the processes' stderr tails.
func describe(r Result, seed uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%d FAILED (trial seed %#x; replay: -seed %d -scenario '^%s$' -trials %d, it is the last)\n",
		r.Scenario, r.Trial, r.Seed, seed, r.Scenario, r.Trial+1)
	fmt.Fprintf(&b, "  drawn: %s\n", r.Drawn)
	if r.Outcome != "" {
		fmt.Fprintf(&b, "  outcome: %s\n", r.Outcome)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "  - %s\n", strings.ReplaceAll(f, "\n", "\n    "))
	}
	if r.Log != "" {
		b.WriteString("  log:\n")
		for _, l := range strings.Split(strings.TrimRight(r.Log, "\n"), "\n") {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	return b.String()
}

// summary returns a failed trial in one line.
func summary(r Result) string {
	var fs []string
	for _, f := range r.Failures {
		f = strings.Join(strings.Fields(f), " ")
		if len(f) > 300 {
			f = f[:300] + "..."
		}
		fs = append(fs, f)
	}
	return fmt.Sprintf("FAILED %s/%d (seed %#x; drawn: %s): %s", r.Scenario, r.Trial, r.Seed, r.Drawn, strings.Join(fs, "; "))
}
