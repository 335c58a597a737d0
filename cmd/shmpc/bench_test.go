package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/ring"
)

func TestSummarize(t *testing.T) {
	s := summarize([]float64{5, 1, 3})
	require.Equal(t, stat{Median: 3, Min: 1, Max: 5, Samples: []float64{5, 1, 3}}, s)
	require.Equal(t, 2.5, summarize([]float64{4, 1, 2, 3}).Median)
	require.True(t, math.IsNaN(summarize(nil).Median))
	require.Equal(t, 2.0, ratio(4, 2))
	require.Zero(t, ratio(4, 0))
	require.Zero(t, ratio(math.NaN(), 2))
}

func TestPercentiles(t *testing.T) {
	xs := make([]float64, 0, 1000)
	for i := 1000; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	p50, p99, pmax := percentiles(xs)
	require.Equal(t, 501.0, p50) // nearest rank of 0.5 * 999 = 499.5 -> index 500
	require.Equal(t, 990.0, p99)
	require.Equal(t, 1000.0, pmax)
	p50, p99, pmax = percentiles(nil)
	require.Zero(t, p50+p99+pmax)
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "-reps", "0"},
		{"bench", "-sections", "limits,nonsense"},
		{"bench", "-spin", "0s"},
		{"bench", "peer"},
		{"bench", "peer", "nonsense", "-count", "1"},
		{"bench", "peer", "ring-send", "-count", "0"},
		{"bench", "peer", "ring-send", "-count", "1", "-mode", "teleport"},
	} {
		r := shmpc(t, 30*time.Second, nil, args...)
		oneLine(t, r, exitUsage)
	}
}

// TestBenchQuick runs the whole matrix in its smallest form and checks
// that every figure is there and consistent: positive medians, ratios that
// are the quotients of the medians, the memory of each side after 64 MiB
// and after 1 GiB within a small constant of each other (the ring's size
// does not grow with what is transferred) and under the documented ring
// plus 4.5 MiB with a stated margin, the shmpc run's whole-job time
// longer than its transfer window, heap allocations per item
// bounded (only sleeps allocate), and nothing of the bench's own rings
// left in /dev/shm.
func TestBenchQuick(t *testing.T) {
	sections := "limits,transport,small,memory,scaling"
	if raceEnabled || testing.Short() {
		sections = "limits,transport,memory"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// run-* rings of dead processes that exist already are not the bench's.
	preexisting := map[string]bool{}
	for _, name := range ringsNow(t) {
		preexisting[name] = true
	}
	c := cmd(ctx, "bench", "-quick", "-reps", "1", "-json", "-hugepages", "off", "-sections", sections)
	var out, errb strings.Builder
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	require.NoError(t, ctx.Err(), "shmpc bench -quick did not finish within 3 minutes; stderr:\n%s", errb.String())
	require.NoError(t, err, "stderr:\n%s", errb.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var rep benchReport
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &rep), "the last line of stdout is the JSON report")

	require.NotEmpty(t, rep.Machine.CPU)
	require.Equal(t, 1, rep.Machine.Reps)
	positive := func(what string, s stat) {
		t.Helper()
		require.Greater(t, s.Median, 0.0, what)
		require.Len(t, s.Samples, 1, what)
	}
	require.Len(t, rep.Limits, 4)
	for _, l := range rep.Limits {
		positive(l.What, l.GiBPerS)
	}
	require.Len(t, rep.Transport, 2)
	for _, tr := range rep.Transport {
		what := fmt.Sprintf("transport %dx%d", tr.Slots, tr.SlotSize)
		positive(what+" shmpc", tr.Shmpc)
		positive(what+" socket", tr.UnixSocket)
		positive(what+" pipe", tr.Pipe)
		require.InDelta(t, tr.Shmpc.Median/tr.UnixSocket.Median, tr.VsSocket, 1e-9, what)
		require.InDelta(t, tr.Shmpc.Median/tr.Pipe.Median, tr.VsPipe, 1e-9, what)
		require.Equal(t, "normal", tr.Pages, "-hugepages off")
		// The whole job holds the transfer window and adds set-up and
		// tear-down: longer, so slower.
		positive(what+" shmpc whole job", tr.ShmpcWall)
		positive(what+" shmpc whole job GiB/s", tr.ShmpcWallGiBPerS)
		require.Greater(t, tr.ShmpcWall.Median, float64(tr.Bytes)/(1<<30)/tr.Shmpc.Median, "%s whole job (s) against the window", what)
		require.Less(t, tr.ShmpcWallGiBPerS.Median, tr.Shmpc.Median, "%s whole job GiB/s against the window's", what)
		require.InDelta(t, float64(tr.Bytes)/(1<<30)/tr.ShmpcWall.Median, tr.ShmpcWallGiBPerS.Median, 1e-6, what)
	}
	if strings.Contains(sections, "small") {
		require.Len(t, rep.Rate, 3)
		for _, r := range rep.Rate {
			for _, s := range []stat{r.ShmpcBlock, r.ShmpcSpin, r.UnixSocket, r.Pipe} {
				positive(fmt.Sprintf("rate %d B", r.Item), s)
			}
			require.InDelta(t, r.ShmpcBlock.Median/r.UnixSocket.Median, r.BlockVsSocket, 1e-9)
		}
		require.Len(t, rep.Latency, 2)
		for _, l := range rep.Latency {
			for _, s := range []latStat{l.ShmpcBlock, l.ShmpcSpin, l.UnixSocket, l.Pipe} {
				positive(fmt.Sprintf("latency %d B p50", l.Item), s.P50)
				require.GreaterOrEqual(t, s.P99.Median, s.P50.Median)
				require.GreaterOrEqual(t, s.Max.Median, s.P99.Median)
			}
		}
	}
	if strings.Contains(sections, "scaling") {
		require.Len(t, rep.Scaling, 4+6+4) // slot sizes up to 8 MiB under -quick, slot counts, workers
		for _, s := range rep.Scaling {
			positive(fmt.Sprintf("scaling %s %dx%d/%d", s.Vary, s.Slots, s.SlotSize, s.Workers), s.GiBPerS)
		}
	}

	require.Len(t, rep.Memory, 2)
	small, big := rep.Memory[0], rep.Memory[1]
	require.Equal(t, uint64(64<<20), small.Bytes)
	require.Equal(t, uint64(1<<30), big.Bytes)
	// The bound on each side's peak RSS: the ring's segment (8 slots of
	// 8 MiB and the header, 66 MiB, pre-touched on normal pages: RssShmem)
	// plus the 4.5 MiB per process that README.md "How fast" and
	// BENCHMARKS.md document, plus a margin of 8 MiB. The peers here are
	// this test binary, whose text and runtime tables are bigger than the
	// shmpc binary's: it measured 8.1 to 8.5 MiB over the segment where
	// the shmpc binary measured 4.6 to 4.7 (memory section, -quick,
	// -hugepages off, 2026-12-03); the margin covers those 4 MiB and as
	// much again of the Go runtime's variance. A stray 16 MiB kept alive
	// in a peer fails it. The race detector's runtime adds about 16 MiB of
	// its own (RssAnon 16 MiB instead of 1.8): 20 MiB more under -race.
	segBytes, err := ring.Size(8, 8<<20)
	require.NoError(t, err)
	const documentedKiB, marginKiB, raceKiB = 4608, 8 << 10, 20 << 10
	segKiB := int64(segBytes >> 10)
	rssBound := segKiB + documentedKiB + marginKiB
	if raceEnabled {
		rssBound += raceKiB
	}
	for _, side := range []struct {
		name       string
		small, big peerResult
	}{{"producer", small.Producer, big.Producer}, {"consumer", small.Consumer, big.Consumer}} {
		require.Positive(t, side.big.PeakRSS, side.name)
		// The ring (64 MiB of normal pages, pre-touched) is in RssShmem;
		// everything else is a small constant, the same after 16 times
		// more data.
		require.InDelta(t, side.small.PeakRSS, side.big.PeakRSS, 16<<10, "%s peak RSS (KiB) after 64 MiB and after 1 GiB", side.name)
		for _, r := range []peerResult{side.small, side.big} {
			require.Less(t, r.PeakRSS, rssBound, "%s peak RSS (KiB): the ring's segment (%d KiB) plus the documented 4.5 MiB plus a margin of %d KiB; RssAnon %d KiB, RssShmem %d KiB",
				side.name, segKiB, rssBound-segKiB-documentedKiB, r.RSSAnon, r.RSSShmem)
		}
		if !raceEnabled {
			// Nothing allocates per item, sleeps included (consumer's
			// TestPerfAllocationsPerItem: under 0.02 per item over 20000
			// small items). These are 128 items of 8 MiB, a fraction of a
			// second each: what remains is the runtime's own, a few a
			// second, not per item.
			require.GreaterOrEqual(t, side.big.AllocsPerItem, 0.0, "%s allocations per item were measured", side.name)
			require.Less(t, side.big.AllocsPerItem, 1.0, "%s heap allocations per item in the steady state", side.name)
		}
	}

	// The bench's own rings (bench-PID-...) and those of the shmpc run
	// children it started (run-PID-..., with PID dead by now) are gone:
	// every ring shmpc ls would show (segments, lock files, semaphores).
	prefix := fmt.Sprintf("bench-%d-", c.Process.Pid)
	ours := func(ring string) bool {
		if strings.Contains(ring, prefix) {
			return true
		}
		rest, ok := strings.CutPrefix(ring, "run-")
		if !ok {
			return false
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 {
			return false
		}
		_, err = os.Stat(fmt.Sprintf("/proc/%d", pid))
		return os.IsNotExist(err) && !preexisting[ring]
	}
	for _, name := range ringsNow(t) {
		require.False(t, ours(name), "ring %s left behind by shmpc bench", name)
	}
}

// ringsNow returns the NAME of every ring on the machine, as shmpc ls
// finds them.
func ringsNow(t *testing.T) []string {
	t.Helper()
	rings, err := listRings()
	require.NoError(t, err)
	names := make([]string, 0, len(rings))
	for _, r := range rings {
		names = append(names, r.Name)
	}
	return names
}

// TestBenchAPIQuick runs the api section in its smallest form: every item
// size has a memcpy figure and a positive rate for every producer path
// with both consumer modes, and the pipe part timed cat and the pipe.
func TestBenchAPIQuick(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("the api section moves 64 MiB per path and size: not under -short or the race detector")
	}
	r := shmpc(t, 3*time.Minute, nil, "bench", "-quick", "-reps", "1", "-sections", "api", "-hugepages", "off", "-json")
	require.Equal(t, 0, r.code, r.stderr)
	var rep benchReport
	require.True(t, lastJSON([]byte(r.stdout), &rep), "no JSON report: %s", r.stdout)
	require.Len(t, rep.API, 3, "64 KiB, 1 MiB and 8 MiB")
	for _, a := range rep.API {
		require.Greater(t, a.Memcpy.Median, 0.0, "memcpy at %d", a.Item)
		for _, path := range apiPaths {
			for _, cons := range []string{"view", "copy"} {
				require.Greater(t, a.Paths[path+"/"+cons].Median, 0.0, "%s/%s at %d bytes", path, cons, a.Item)
			}
		}
	}
	require.Greater(t, rep.Pipe.Cat.Median, 0.0)
	require.Greater(t, rep.Pipe.Pipe.Median, 0.0)
	require.InDelta(t, rep.Pipe.Pipe.Median/rep.Pipe.Cat.Median, rep.Pipe.Ratio, 1e-9)
}
