package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

// oneLine asserts that a failing command said what went wrong in exactly
// one line, without a Go panic trace.
func oneLine(t *testing.T, r result, code int, contains ...string) {
	t.Helper()
	require.Equal(t, code, r.code, "exit status; stderr:\n%s", r.stderr)
	msg := strings.TrimRight(r.stderr, "\n")
	require.NotContains(t, msg, "goroutine ", "panic trace on stderr")
	require.Equal(t, 1, strings.Count(msg, "\n")+1, "want one line on stderr, got:\n%s", r.stderr)
	for _, c := range contains {
		require.Contains(t, msg, c)
	}
}

func TestLifeCycle(t *testing.T) {
	geometries := []struct {
		slots    int
		slotSize int
		items    int
	}{
		{1, 4096, 40},
		{8, 8 << 20, 24},
		{64, 4096, 3000},
	}
	if raceEnabled {
		geometries[1].items = 10
		geometries[2].items = 600
	}
	for _, g := range geometries {
		for _, workers := range []int{1, 8} {
			for _, consumerFirst := range []bool{true, false} {
				t.Run(fmt.Sprintf("%dx%d/k%d/consumerFirst=%v", g.slots, g.slotSize, workers, consumerFirst), func(t *testing.T) {
					t.Parallel()
					name := ringName(t)
					manifest := tempFile(t, "manifest")
					pargs := []string{"produce", "-name", name, "-slots", strconv.Itoa(g.slots), "-slot-size", strconv.Itoa(g.slotSize),
						"-count", strconv.Itoa(g.items), "-hugepages", "off", "-json"}
					cargs := []string{"consume", "-name", name, "-workers", strconv.Itoa(workers), "-manifest", manifest, "-json"}
					var p, c *started
					if consumerFirst {
						c = start(t, time.Minute, nil, cargs...)
						time.Sleep(150 * time.Millisecond)
						p = start(t, time.Minute, nil, pargs...)
					} else {
						p = start(t, time.Minute, nil, pargs...)
						time.Sleep(150 * time.Millisecond)
						c = start(t, time.Minute, nil, cargs...)
					}
					pr, cr := p.wait(t, time.Minute), c.wait(t, time.Minute)
					require.Equal(t, 0, pr.code, "producer stderr:\n%s", pr.stderr)
					require.Equal(t, 0, cr.code, "consumer stderr:\n%s", cr.stderr)
					checkDelivery(t, readManifest(t, manifest), uint64(g.items), g.slotSize, g.slotSize, 0)
					var cs consumeSummary
					require.True(t, lastJSON([]byte(cr.stdout), &cs), "consumer summary: %q", cr.stdout)
					require.Equal(t, uint64(g.items), cs.Items)
					require.Zero(t, cs.IntegrityErrors)
				})
			}
		}
	}
}

func TestRunJSON(t *testing.T) {
	// The second run spins before sleeping (-spin): same result.
	for _, extra := range [][]string{nil, {"-spin", "200us"}} {
		t.Run(strings.Join(append([]string{"default"}, extra...), ""), func(t *testing.T) {
			manifest := tempFile(t, "manifest")
			args := append([]string{"run", "-json", "-slots", "4", "-slot-size", "64KiB", "-bytes", "1000000", "-hugepages", "off", "-manifest", manifest}, extra...)
			r := shmpc(t, 2*time.Minute, nil, args...)
			require.Equal(t, 0, r.code, "stderr:\n%s", r.stderr)
			lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
			var sum map[string]any
			require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &sum), "last line of stdout: %q", lines[len(lines)-1])
			for _, k := range []string{"items", "bytes", "seconds", "gib_per_s", "integrity_errors", "pages"} {
				require.Contains(t, sum, k)
			}
			require.EqualValues(t, 16, sum["items"]) // 15 full items of 64 KiB and one of 16960 bytes
			require.EqualValues(t, 1000000, sum["bytes"])
			require.EqualValues(t, 0, sum["integrity_errors"])
			require.Equal(t, "normal", sum["pages"])
			require.Greater(t, sum["seconds"].(float64), 0.0)
			// The whole job (run's start to both children reaped) holds the
			// consumer's window and adds set-up and tear-down, well under
			// 10 s for a ring of 256 KiB.
			require.Contains(t, sum, "wall_seconds")
			wall, secs := sum["wall_seconds"].(float64), sum["seconds"].(float64)
			require.Greater(t, wall, secs, "wall_seconds against seconds")
			require.Less(t, wall, secs+10, "wall_seconds against seconds")
			checkDelivery(t, readManifest(t, manifest), 16, 64<<10, 1000000-15*(64<<10), 0)
			name := sum["name"].(string)
			requireNoLeftovers(t, name)
		})
	}
}

// TestSIGTERMProducer: the producer ends the stream at its head, the
// consumer drains, both exit 0, every published item is delivered once.
func TestSIGTERMProducer(t *testing.T) {
	name := ringName(t)
	manifest := tempFile(t, "manifest")
	c := start(t, time.Minute, nil, "consume", "-name", name, "-workers", "4", "-manifest", manifest)
	p := start(t, time.Minute, nil, "produce", "-name", name, "-slots", "8", "-slot-size", "4096", "-count", "100000000", "-hugepages", "off", "-json")
	waitManifest(t, manifest, 50)
	require.NoError(t, p.c.Process.Signal(syscall.SIGTERM))
	pr, cr := p.wait(t, 30*time.Second), c.wait(t, 30*time.Second)
	require.Equal(t, 0, pr.code, "producer stderr:\n%s", pr.stderr)
	require.Equal(t, 0, cr.code, "consumer stderr:\n%s", cr.stderr)
	var ps produceSummary
	require.True(t, lastJSON([]byte(pr.stdout), &ps))
	lines := readManifest(t, manifest)
	require.Less(t, ps.Items, uint64(100000000))
	require.Len(t, lines, int(ps.Items), "every published item delivered once")
	checkDelivery(t, lines, ps.Items, 4096, 4096, 0)
}

// TestSIGTERMConsumer: the consumer finishes and releases its in-flight
// items and exits 0; the producer, with no peer timeout, gives up with
// exit 3 and removes the ring.
func TestSIGTERMConsumer(t *testing.T) {
	name := ringName(t)
	manifest := tempFile(t, "manifest")
	p := start(t, time.Minute, nil, "produce", "-name", name, "-slots", "8", "-slot-size", "4096", "-count", "100000000", "-hugepages", "off")
	c := start(t, time.Minute, nil, "consume", "-name", name, "-workers", "4", "-manifest", manifest, "-json")
	waitManifest(t, manifest, 50)
	require.NoError(t, c.c.Process.Signal(syscall.SIGTERM))
	cr := c.wait(t, 30*time.Second)
	pr := p.wait(t, 30*time.Second)
	require.Equal(t, 0, cr.code, "consumer stderr:\n%s", cr.stderr)
	require.Equal(t, exitPeerLost, pr.code, "producer stderr:\n%s", pr.stderr)
	require.Contains(t, pr.stderr, "consumer of "+name+" is gone")
	var cs consumeSummary
	require.True(t, lastJSON([]byte(cr.stdout), &cs))
	lines := readManifest(t, manifest)
	require.Len(t, lines, int(cs.Items))
	checkDelivery(t, lines, cs.Items, 4096, 4096, 0) // 0..n-1, each once
}

func waitManifest(t *testing.T, path string, lines int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Count(string(b), "\n") >= lines {
			return
		}
		require.True(t, time.Now().Before(deadline), "manifest %s did not reach %d lines in 30s", path, lines)
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPipe sends random bytes through produce -stdin / consume -stdout and
// compares SHA-256 digests, for edge sizes and for 1 GiB.
func TestPipe(t *testing.T) {
	big := int64(1 << 30)
	if raceEnabled || testing.Short() {
		big = 64 << 20
	}
	cases := []struct {
		slots    int
		slotSize int
		size     int64
	}{
		{8, 65536, 0}, {8, 65536, 1}, {8, 65536, 65535}, {8, 65536, 65536}, {8, 65536, 65537},
		{2, 4096, 3*4096 + 1},
		{8, 8 << 20, big},
		{8, 64 << 10, big},
		{1, 8 << 20, big},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%dx%d/%d", tc.slots, tc.slotSize, tc.size), func(t *testing.T) {
			name := ringName(t)
			src := rand.NewChaCha8([32]byte{byte(tc.size), byte(tc.slotSize >> 12), byte(tc.slots)})
			in, inSum := randomInput(t, src, tc.size)
			p := startPipe(t, in, "produce", "-name", name, "-stdin", "-slots", strconv.Itoa(tc.slots),
				"-slot-size", strconv.Itoa(tc.slotSize), "-hugepages", "off")
			out := sha256.New()
			ctx := startWithStdout(t, out, "consume", "-name", name, "-stdout")
			pr := p.wait(t, 2*time.Minute)
			cr := ctx.wait(t, 2*time.Minute)
			require.Equal(t, 0, pr.code, "producer stderr:\n%s\nconsumer stderr:\n%s", pr.stderr, cr.stderr)
			require.Equal(t, 0, cr.code, "consumer stderr:\n%s\nproducer stderr:\n%s", cr.stderr, pr.stderr)
			require.Equal(t, <-inSum, hex.EncodeToString(out.Sum(nil)), "digest of the output differs from the input's")
		})
	}
}

// randomInput returns a reader of size random bytes and, once it was read
// to the end, their SHA-256.
func randomInput(t *testing.T, src *rand.ChaCha8, size int64) (io.Reader, <-chan string) {
	t.Helper()
	pr, pw := io.Pipe()
	sum := make(chan string, 1)
	go func() {
		h := sha256.New()
		buf := make([]byte, 1<<20)
		for left := size; left > 0; {
			n := int(min(left, int64(len(buf))))
			_, _ = src.Read(buf[:n])
			h.Write(buf[:n])
			if _, err := pw.Write(buf[:n]); err != nil {
				sum <- "write failed: " + err.Error()
				return
			}
			left -= int64(n)
		}
		pw.Close()
		sum <- hex.EncodeToString(h.Sum(nil))
	}()
	t.Cleanup(func() { pr.Close() })
	return pr, sum
}

func startPipe(t *testing.T, stdin io.Reader, args ...string) *started {
	t.Helper()
	s := startCustom(t, 3*time.Minute, args, func(s *started) { s.c.Stdin = stdin })
	return s
}

func startWithStdout(t *testing.T, w io.Writer, args ...string) *started {
	t.Helper()
	return startCustom(t, 3*time.Minute, args, func(s *started) { s.c.Stdout = w })
}

// TestStdoutClosedEndsQuietly: `consume -stdout | head -c 1` ends the
// consumer quietly with status 0.
func TestStdoutClosedEndsQuietly(t *testing.T) {
	name := ringName(t)
	p := start(t, time.Minute, nil, "produce", "-name", name, "-slots", "4", "-slot-size", "64KiB", "-count", "1000000", "-hugepages", "off")
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	c := startCustom(t, 3*time.Minute, []string{"consume", "-name", name, "-stdout"}, func(s *started) { s.c.Stdout = pw })
	pw.Close()
	buf := make([]byte, 1)
	_, err = io.ReadFull(pr, buf)
	require.NoError(t, err)
	pr.Close()
	cr := c.wait(t, 30*time.Second)
	require.Equal(t, 0, cr.code, "consumer stderr:\n%s", cr.stderr)
	require.NotContains(t, cr.stderr, "broken pipe")
	pres := p.wait(t, 30*time.Second)
	require.Equal(t, exitPeerLost, pres.code, "producer stderr:\n%s", pres.stderr)
}

func TestBadInput(t *testing.T) {
	name := ringName(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"produce", "-name", name, "-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"consume", "-name", name, "-nope=1"}, "flag provided but not defined"},
		{[]string{"run", "-what"}, "flag provided but not defined"},
		{[]string{"produce", "-name", "a/b"}, "NAME is 1 to 64 characters"},
		{[]string{"produce", "-name", ".hidden"}, "NAME is 1 to 64 characters"},
		{[]string{"consume", "-name", strings.Repeat("x", 65)}, "NAME is 1 to 64 characters"},
		{[]string{"produce"}, "-name is required"},
		{[]string{"produce", "-name", name, "-slot-size", "0"}, "multiple of 4096"},
		{[]string{"produce", "-name", name, "-slot-size", "5000"}, "multiple of 4096"},
		{[]string{"produce", "-name", name, "-slot-size", "lots"}, "invalid size"},
		{[]string{"produce", "-name", name, "-count", "3", "-bytes", "1MiB"}, "exclude each other"},
		{[]string{"produce", "-name", name, "-count", "3", "-stdin"}, "exclude each other"},
		{[]string{"produce", "-name", name, "-slots", "0"}, "-slots 0"},
		{[]string{"produce", "-name", name, "-hugepages", "maybe"}, "want auto, on or off"},
		{[]string{"produce", "-name", name, "-perm", "0400"}, "permission"},
		{[]string{"consume", "-name", name, "-stdout", "-json"}, "give one"},
		{[]string{"produce", "-name", name, "-spin", "-1ms"}, "must not be negative"},
		{[]string{"consume", "-name", name, "-spin", "-1ms"}, "must not be negative"},
		{[]string{"frobnicate"}, ""},
		// Issue 12 point 7: values that used to be taken silently.
		{[]string{"gc", "-name", ""}, "-name is empty"},
		{[]string{"gc", "-dry-run", "-name="}, "-name is empty"},
		{[]string{"gc", "-name", "a/b"}, "NAME is 1 to 64 characters"},
		{[]string{"produce", "-name", ""}, "-name is required"},
		{[]string{"consume", "-name", ""}, "-name is required"},
		{[]string{"produce", "-name", name, "-count", "-1"}, "non-negative whole number"},
		{[]string{"run", "-count", "-1"}, "non-negative whole number"},
		{[]string{"produce", "-name", name, "-count", "1501199875790166", "-slot-size", "12288"}, "more than"},
		{[]string{"run", "-count", "1501199875790166", "-slot-size", "12288"}, "more than"},
		{[]string{"produce", "-name", name, "-count", "many"}, "non-negative whole number"},
		{[]string{"produce", "-name", name, "-bytes", "-5"}, "invalid size"},
		{[]string{"produce", "-name", name, "-bytes", "9223372036854775807KiB"}, "too large"},
		{[]string{"produce", "-name", name, "-slots", "-3"}, "-slots -3"},
		{[]string{"produce", "-name", name, "-slots", "1048577"}, "-slots 1048577"},
		{[]string{"produce", "-name", name, "-slot-size", "2TiB"}, "too large"},
		{[]string{"produce", "-name", name, "-wait", "0s"}, "positive duration"},
		{[]string{"produce", "-name", name, "-wait", "-1s"}, "positive duration"},
		{[]string{"consume", "-name", name, "-peer-timeout", "-1s"}, "must not be negative"},
		{[]string{"consume", "-name", name, "-stall-timeout", "-1s"}, "must not be negative"},
		{[]string{"consume", "-name", name, "-workers", "-1"}, "-workers -1"},
		{[]string{"consume", "-name", name, "-workers", "1025"}, "-workers 1025"},
		{[]string{"consume", "-name", name, "-manifest", ""}, "file name"},
		{[]string{"run", "-workers", "-2"}, "-workers -2"},
		{[]string{"produce", "-name", name, "-perm", "01777"}, "permission"},
		{[]string{"produce", "-name", name, "-perm", "-600"}, "permission"},
		{[]string{"bench", "-reps", "0"}, "-reps 0"},
		{[]string{"bench", "-reps", "-1"}, "-reps -1"},
		{[]string{"bench", "-spin", "0s"}, "positive duration"},
		{[]string{"bench", "-sections", ""}, "unknown section"},
		{[]string{"bench", "peer", "ring-send", "-name", name, "-count", "1", "-slots", "-1"}, "positive -slots"},
	}
	for _, tc := range cases {
		r := shmpc(t, 30*time.Second, nil, tc.args...)
		require.Equal(t, exitUsage, r.code, "%v: stderr:\n%s", tc.args, r.stderr)
		if tc.want != "" {
			oneLine(t, r, exitUsage, tc.want)
		}
	}
}

// TestSecondProducerRefused: a ring owned by a live producer is refused
// to a second one with the holder's pid, and the first one finishes
// undisturbed.
func TestSecondProducerRefused(t *testing.T) {
	name := ringName(t)
	manifest := tempFile(t, "manifest")
	p := start(t, time.Minute, nil, "produce", "-name", name, "-slots", "4", "-slot-size", "4096", "-count", "200", "-hugepages", "off")
	waitRing(t, name)
	r := shmpc(t, 30*time.Second, nil, "produce", "-name", name, "-slots", "4", "-slot-size", "4096", "-count", "200", "-hugepages", "off")
	oneLine(t, r, exitError, "already has a live producer", fmt.Sprintf("pid %d", p.c.Process.Pid))
	r = shmpc(t, 30*time.Second, nil, "produce", "-name", name, "-fresh", "-hugepages", "off")
	oneLine(t, r, exitError, "already has a live producer")
	c := start(t, time.Minute, nil, "consume", "-name", name, "-manifest", manifest)
	require.Equal(t, 0, p.wait(t, time.Minute).code)
	require.Equal(t, 0, c.wait(t, time.Minute).code)
	checkDelivery(t, readManifest(t, manifest), 200, 4096, 4096, 0)
}

// TestSecondConsumerRefused: a ring with a live consumer refuses another.
func TestSecondConsumerRefused(t *testing.T) {
	name := ringName(t)
	c := start(t, time.Minute, nil, "consume", "-name", name)
	p := start(t, time.Minute, nil, "produce", "-name", name, "-slots", "2", "-slot-size", "4096", "-count", "100000000", "-hugepages", "off")
	waitRing(t, name)
	deadline := time.Now().Add(10 * time.Second)
	var r result
	for {
		r = shmpc(t, 30*time.Second, nil, "consume", "-name", name, "-wait", "1s")
		if r.code != 0 || time.Now().After(deadline) {
			break
		}
	}
	oneLine(t, r, exitError, "already has a live consumer", fmt.Sprintf("pid %d", c.c.Process.Pid))
	require.NoError(t, p.c.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.wait(t, time.Minute).code)
	require.Equal(t, 0, c.wait(t, time.Minute).code)
}

// waitRing waits until ring name's segment holds a formatted ring.
func waitRing(t *testing.T, name string) {
	t.Helper()
	n, err := ringobj.For(name)
	require.NoError(t, err)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if seg, err := shm.Attach(n.Key, true, shm.Options{Lock: shm.Off}); err == nil {
			_, err := ring.Open(seg.Bytes())
			seg.Detach()
			if err == nil {
				return
			}
		}
		require.True(t, time.Now().Before(deadline), "ring %s did not appear within 20s", name)
		time.Sleep(5 * time.Millisecond)
	}
}

// TestResumeWithOtherGeometryRefused: a ring left by a dead producer is
// resumed only with its own geometry.
func TestResumeWithOtherGeometryRefused(t *testing.T) {
	name := ringName(t)
	p := start(t, time.Minute, nil, "produce", "-name", name, "-slots", "4", "-slot-size", "4096", "-count", "100", "-hugepages", "off")
	waitRing(t, name)
	// Wait until the ring is full, then kill the producer: the ring stays.
	n, _ := ringobj.For(name)
	waitFull(t, n, 4)
	require.NoError(t, p.c.Process.Kill())
	p.wait(t, 10*time.Second)
	r := shmpc(t, 30*time.Second, nil, "produce", "-name", name, "-slots", "8", "-slot-size", "4096", "-hugepages", "off")
	oneLine(t, r, exitUsage, "has 4 slots of 4096 bytes")
	r = shmpc(t, 30*time.Second, nil, "produce", "-name", name, "-count", "7", "-hugepages", "off")
	oneLine(t, r, exitUsage, "was started for 100 items")
	// The ring is undamaged: a producer that leaves the geometry out
	// resumes it and a consumer gets every item once.
	manifest := tempFile(t, "manifest")
	// Started together: the consumer may attach while no producer lives,
	// and waits (-wait) for the resuming one.
	p2 := start(t, time.Minute, nil, "produce", "-name", name, "-hugepages", "off")
	c := start(t, time.Minute, nil, "consume", "-name", name, "-manifest", manifest)
	require.Equal(t, 0, p2.wait(t, time.Minute).code)
	require.Equal(t, 0, c.wait(t, time.Minute).code)
	checkDelivery(t, readManifest(t, manifest), 100, 4096, 4096, 0)
}

func waitFull(t *testing.T, n ringobj.Names, slots uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if seg, err := shm.Attach(n.Key, true, shm.Options{Lock: shm.Off}); err == nil {
			r, err := ring.Open(seg.Bytes())
			full := err == nil && r.Head()-r.Tail() == slots
			seg.Detach()
			if full {
				return
			}
		}
		require.True(t, time.Now().Before(deadline), "ring %s did not fill within 20s", n.Ring)
		time.Sleep(5 * time.Millisecond)
	}
}

// TestForeignSegmentRefused: a segment with the ring's key that is not a
// ring of this layout version is refused by both sides and left intact.
func TestForeignSegmentRefused(t *testing.T) {
	name := ringName(t)
	n, err := ringobj.For(name)
	require.NoError(t, err)
	size, err := ring.Size(2, 4096)
	require.NoError(t, err)
	seg, err := shm.Create(n.Key, size, shm.Options{HugePages: shm.Off, Lock: shm.Off})
	require.NoError(t, err)
	t.Cleanup(func() { _ = seg.Remove(); _ = seg.Detach() })
	_, err = ring.Format(seg.Bytes(), ring.Config{Name: name, Slots: 2, SlotSize: 4096, OwnerUID: uint32(os.Geteuid())})
	require.NoError(t, err)
	// Another layout version: bump the version word (right after the magic).
	b := seg.Bytes()
	b[8]++
	before := append([]byte(nil), b[:4096]...)

	r := shmpc(t, 30*time.Second, nil, "produce", "-name", name, "-count", "1", "-hugepages", "off")
	oneLine(t, r, exitError, "not a usable shmpc ring", "layout version")
	r = shmpc(t, 30*time.Second, nil, "consume", "-name", name, "-wait", "2s")
	require.NotEqual(t, 0, r.code)
	require.Equal(t, before, b[:4096], "the foreign segment was changed")
	_, err = shm.Lookup(n.Key)
	require.NoError(t, err, "the foreign segment was removed")
	require.NoError(t, seg.Remove())
	require.NoError(t, seg.Detach())
	_ = os.Remove(n.Lock) // the refused producer's lock file
	_ = ringobj.UnlinkSems(n)
}

// TestHugePagesOnWithoutPool: -hugepages on fails with the sysctl to run
// when the pool cannot hold the ring, and leaves nothing behind.
func TestHugePagesOnWithoutPool(t *testing.T) {
	pool, err := shm.ReadHugePool()
	require.NoError(t, err)
	// Ask for far more than the pool has or could grow by meanwhile (other
	// tests add a few pages at a time).
	need := pool.Total + pool.Overcommit + 1024
	name := ringName(t)
	r := shmpc(t, 30*time.Second, nil, "produce", "-name", name, "-slots", "1",
		"-slot-size", strconv.Itoa(need*2<<20), "-count", "1", "-hugepages", "on")
	oneLine(t, r, exitError, "sysctl -w vm.nr_hugepages=")
}

// TestCPUProfileEnv: SHMPC_CPUPROFILE=PREFIX makes both children of run
// write a CPU profile, PREFIX.produce.PID.pprof and PREFIX.consume.PID.pprof.
func TestCPUProfileEnv(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "prof")
	t.Setenv(profileEnv, prefix)
	r := shmpc(t, 2*time.Minute, nil, "run", "-slots", "4", "-slot-size", "64KiB", "-count", "200", "-hugepages", "off")
	require.Equal(t, 0, r.code, "stderr:\n%s", r.stderr)
	for _, side := range []string{"produce", "consume"} {
		files, err := filepath.Glob(prefix + "." + side + ".*.pprof")
		require.NoError(t, err)
		require.Len(t, files, 1, "one %s profile", side)
		st, err := os.Stat(files[0])
		require.NoError(t, err)
		require.Positive(t, st.Size(), "%s profile is empty", side)
	}
}

// TestProfileName: a bench peer's profile is named after its role; other
// commands after themselves, and only produce, consume and the peers write one.
func TestProfileName(t *testing.T) {
	require.Equal(t, "peer-ring-send", profileName([]string{"bench", "peer", "ring-send", "-count", "1"}))
	require.Equal(t, "bench", profileName([]string{"bench", "-quick"}))
	require.Equal(t, "produce", profileName([]string{"produce", "-name", "x"}))
	t.Setenv(profileEnv, filepath.Join(t.TempDir(), "prof"))
	stop := startProfile("bench")
	stop()
	files, _ := filepath.Glob(os.Getenv(profileEnv) + ".*")
	require.Empty(t, files, "bench itself writes no profile")
	stop = startProfile("peer-ring-recv")
	stop()
	files, _ = filepath.Glob(os.Getenv(profileEnv) + ".peer-ring-recv.*.pprof")
	require.Len(t, files, 1, "a peer's profile")
}

// TestVersionAndGCOfNothing: `shmpc version` names the Go version and the
// kernels in use; `gc -name` of a NAME with no object says so.
func TestVersionAndGCOfNothing(t *testing.T) {
	r := shmpc(t, 30*time.Second, nil, "version")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, runtime.Version())
	require.Regexp(t, `(?m)^crc32c kernel (avx512|avx2|sse42|hash/crc32)$`, r.stdout)
	require.Regexp(t, `(?m)^payload kernel (avx512|avx2|sse42|go)$`, r.stdout)
	require.Regexp(t, `(?m)^revision \S+`, r.stdout)

	name := ringName(t)
	r = shmpc(t, 30*time.Second, nil, "gc", "-name", name)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, name+": nothing to remove: no object of this ring exists\n", r.stdout)
}
