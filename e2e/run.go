package e2e

import (
	"fmt"
	"io"
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

// BuildBinary builds the shmpc command of the module containing dir (the
// current directory when dir is "") into a new directory under os.TempDir
// that every uid may search, so scenarios can run it as another uid. It
// returns the binary's path and a function that removes the directory.
func BuildBinary(dir string) (string, func(), error) {
	out, err := os.MkdirTemp("", "shmpc-e2e-bin-")
	if err != nil {
		return "", nil, fmt.Errorf("make build directory: %w", err)
	}
	remove := func() { _ = os.RemoveAll(out) }
	if err := os.Chmod(out, 0o755); err != nil {
		remove()
		return "", nil, fmt.Errorf("chmod build directory: %w", err)
	}
	bin := filepath.Join(out, "shmpc")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/shmpc/shmpc/cmd/shmpc")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		remove()
		return "", nil, fmt.Errorf("build shmpc: %v\n%s", err, b)
	}
	return bin, remove, nil
}

// Job is one trial to run.
type Job struct {
	Scenario *Scenario
	Pages    PageMode
	Pair     Pair // the commands in the two roles; the zero value is GoGo
	Trial    int
}

// Jobs returns trials trials of every scenario in each page mode,
// interleaved so that a run cut short has sampled every scenario.
func Jobs(scenarios []*Scenario, pages []PageMode, trials int) []Job {
	var jobs []Job
	for i := 0; i < trials; i++ {
		for _, pm := range pages {
			for _, s := range scenarios {
				jobs = append(jobs, Job{Scenario: s, Pages: pm, Trial: i})
			}
		}
	}
	return jobs
}

// MixedJobs returns trials trials of every scenario that runs with mixed
// pairs (Scenario.Mixed), in each page mode, with each of pairs other than
// GoGo, interleaved as Jobs does.
func MixedJobs(scenarios []*Scenario, pages []PageMode, pairs []Pair, trials int) []Job {
	var jobs []Job
	for i := 0; i < trials; i++ {
		for _, pm := range pages {
			for _, s := range scenarios {
				if !s.Mixed {
					continue
				}
				for _, pair := range pairs {
					if pair.or() != GoGo {
						jobs = append(jobs, Job{Scenario: s, Pages: pm, Pair: pair, Trial: i})
					}
				}
			}
		}
	}
	return jobs
}

// RunJobs runs the jobs, parallel at a time, and returns their results in
// job order. done, if not nil, is called (from one goroutine at a time)
// after each trial. Once stop is closed no further trial starts (the
// running ones finish, each within its bounds) and the jobs not run are
// reported as skipped.
func RunJobs(cfg *Config, jobs []Job, parallel int, stop <-chan struct{}, done func(Result)) []Result {
	results := make([]Result, len(jobs))
	for i, j := range jobs {
		results[i] = Result{Scenario: j.Scenario.Name, Pages: j.Pages, Pair: j.Pair.or(), Trial: j.Trial, Skipped: "the run was interrupted"}
	}
	next := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < max(1, parallel); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				res := RunJob(cfg, jobs[i])
				mu.Lock()
				results[i] = res
				if done != nil {
					done(res)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range jobs {
		select {
		case next <- i:
		case <-stop:
			break feed
		}
	}
	close(next)
	wg.Wait()
	return results
}

// Row is one line of the table: the totals of a scenario in a page mode
// with a pair.
type Row struct {
	Scenario, Expect string
	Pages            PageMode
	Pair             Pair
	Trials, Skipped  int
	Items            int
	BadDelivered     int
	Lost, Dups       int
	Leaked           int
	LiveDamaged      int
	DoubleOwners     int
	Adopted          int
	Failed           int // trials with any failed check
	Detect           time.Duration
	Elapsed          time.Duration
}

// OK reports whether every must-be-zero cell of the row is zero.
func (r Row) OK() bool {
	return r.BadDelivered == 0 && r.Lost == 0 && r.Dups == 0 && r.Leaked == 0 &&
		r.LiveDamaged == 0 && r.DoubleOwners == 0 && r.Adopted == 0 && r.Failed == 0
}

// Table sums the results by scenario, page mode and pair, in the order of
// scenarios, pages and pairs: a row for GoGo in every page mode, and one
// for each other pair of pairs where the scenario runs mixed pairs.
func Table(scenarios []*Scenario, pages []PageMode, pairs []Pair, results []Result) []Row {
	idx := map[string]int{}
	var rows []Row
	for _, s := range scenarios {
		for _, pm := range pages {
			for _, pair := range pairs {
				if pair.or() != GoGo && !s.Mixed {
					continue
				}
				idx[s.Name+"/"+string(pm)+"/"+string(pair.or())] = len(rows)
				rows = append(rows, Row{Scenario: s.Name, Expect: s.Expect, Pages: pm, Pair: pair.or()})
			}
		}
	}
	for _, res := range results {
		i, ok := idx[res.Scenario+"/"+string(res.Pages)+"/"+string(res.Pair.or())]
		if !ok {
			continue
		}
		r := &rows[i]
		if res.Skipped != "" {
			r.Skipped++
			continue
		}
		r.Trials++
		r.Items += res.Items
		r.BadDelivered += res.BadDelivered
		r.Lost += res.Lost
		r.Dups += res.Dups
		r.Leaked += res.Leaked
		r.LiveDamaged += res.LiveDamaged
		r.DoubleOwners += res.DoubleOwners
		r.Adopted += res.Adopted
		if !res.OK() {
			r.Failed++
		}
		r.Detect = max(r.Detect, res.Detect)
		r.Elapsed += res.Elapsed
	}
	return rows
}

// PrintTable writes the table and its totals to w and reports whether
// every must-be-zero cell is zero.
func PrintTable(w io.Writer, rows []Row) bool {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tpages\tpair\ttrials\titems checked\tbad delivered\tlost\tdup\tleaked\tlive damaged\tdouble owners\tadopted\tfailed\tworst detect\texpected outcome\t")
	var tot Row
	ok := true
	for _, r := range rows {
		det := "-"
		if r.Detect > 0 {
			det = fmt.Sprintf("%.1fms", float64(r.Detect)/float64(time.Millisecond))
		}
		trials := fmt.Sprint(r.Trials)
		if r.Skipped > 0 {
			trials += fmt.Sprintf(" (%d skipped)", r.Skipped)
		}
		mark := ""
		if !r.OK() {
			mark = " <-- FAIL"
			ok = false
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s%s\t\n", r.Scenario, r.Pages, r.Pair.or(), trials, r.Items,
			r.BadDelivered, r.Lost, r.Dups, r.Leaked, r.LiveDamaged, r.DoubleOwners, r.Adopted, r.Failed, det, r.Expect, mark)
		tot.Trials += r.Trials
		tot.Skipped += r.Skipped
		tot.Items += r.Items
		tot.BadDelivered += r.BadDelivered
		tot.Lost += r.Lost
		tot.Dups += r.Dups
		tot.Leaked += r.Leaked
		tot.LiveDamaged += r.LiveDamaged
		tot.DoubleOwners += r.DoubleOwners
		tot.Adopted += r.Adopted
		tot.Failed += r.Failed
		tot.Detect = max(tot.Detect, r.Detect)
	}
	fmt.Fprintf(tw, "TOTAL\t\t\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1fms\t%s\t\n", tot.Trials, tot.Items, tot.BadDelivered,
		tot.Lost, tot.Dups, tot.Leaked, tot.LiveDamaged, tot.DoubleOwners, tot.Adopted, tot.Failed, float64(tot.Detect)/float64(time.Millisecond),
		map[bool]string{true: "all must-be-zero cells are 0", false: "SOME MUST-BE-ZERO CELLS ARE NOT 0"}[ok])
	_ = tw.Flush()
	return ok
}

// Summary returns a failed trial in one line: its name, what was drawn and
// its failed checks, each cut to 300 bytes.
func Summary(res Result) string {
	var fs []string
	for _, f := range res.Failures {
		f = strings.Join(strings.Fields(f), " ")
		if len(f) > 300 {
			f = f[:300] + "..."
		}
		fs = append(fs, f)
	}
	return fmt.Sprintf("FAILED %s/%s/%s/%d (drawn: %s): %s", res.Scenario, res.Pages, res.Pair.or(), res.Trial, res.Variant, strings.Join(fs, "; "))
}

// Describe returns a failed trial's report: what was drawn, how to replay
// it, every failed check and its log.
func Describe(res Result, seed uint64) string {
	var b strings.Builder
	if res.Pair.or() == GoGo {
		fmt.Fprintf(&b, "%s/%s/%d FAILED (trial seed %#x; replay: -seed %d -scenario '^%s$' -pages %s -trials %d, it is the last)\n",
			res.Scenario, res.Pages, res.Trial, res.Seed, seed, res.Scenario, res.Pages, res.Trial+1)
	} else {
		fmt.Fprintf(&b, "%s/%s/%s/%d FAILED (trial seed %#x; replay: -seed %d -scenario '^%s$' -pages %s -pairs %s -mixed-trials %d, it is the last)\n",
			res.Scenario, res.Pages, res.Pair, res.Trial, res.Seed, seed, res.Scenario, res.Pages, res.Pair, res.Trial+1)
	}
	fmt.Fprintf(&b, "  drawn: %s\n", res.Variant)
	for _, f := range res.Failures {
		fmt.Fprintf(&b, "  - %s\n", strings.ReplaceAll(f, "\n", "\n    "))
	}
	if res.Log != "" {
		b.WriteString("  log:\n")
		for _, l := range strings.Split(strings.TrimRight(res.Log, "\n"), "\n") {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	return b.String()
}

// SortedFailures returns the failed results ordered by scenario, pages and
// trial.
func SortedFailures(results []Result) []Result {
	var out []Result
	for _, r := range results {
		if r.Skipped == "" && !r.OK() {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Scenario != b.Scenario {
			return a.Scenario < b.Scenario
		}
		if a.Pages != b.Pages {
			return a.Pages < b.Pages
		}
		if a.Pair.or() != b.Pair.or() {
			return a.Pair.or() < b.Pair.or()
		}
		return a.Trial < b.Trial
	})
	return out
}

// tempSemRE matches the temporary files that semaphore creation the glibc
// way (a named temporary linked to the final name) leaves behind when the
// creator dies between the two steps.
var tempSemRE = regexp.MustCompile(`^sem\.[A-Za-z0-9]{6}$`)

// TempSemFiles lists the temporary semaphore files in /dev/shm now.
func TempSemFiles() (map[string]bool, error) {
	ents, err := os.ReadDir("/dev/shm")
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, e := range ents {
		if tempSemRE.MatchString(e.Name()) {
			m[e.Name()] = true
		}
	}
	return m, nil
}

// NewTempSemFiles returns the temporary semaphore files that exist now and
// not in before: files the run's killed processes left behind.
func NewTempSemFiles(before map[string]bool) ([]string, error) {
	now, err := TempSemFiles()
	if err != nil {
		return nil, err
	}
	var left []string
	for name := range now {
		if !before[name] {
			left = append(left, name)
		}
	}
	sort.Strings(left)
	return left, nil
}
