package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/internal/proc"
	"github.com/shmpc/shmpc/internal/ringobj"
)

// detectBound is how soon after a peer's death a survivor with no peer
// timeout must have noticed it, cleaned up and exited (the design: death
// is noticed within 250 ms).
func detectBound() time.Duration {
	if raceEnabled {
		return time.Second
	}
	return 250 * time.Millisecond
}

// startFault starts shmpc with the fault hook set.
func startFault(t *testing.T, fault string, args ...string) *started {
	t.Helper()
	return startCustom(t, 3*time.Minute, args, func(s *started) { s.c.Env = append(s.c.Env, faultEnv+"="+fault) })
}

func kill(t *testing.T, s *started) time.Time {
	t.Helper()
	require.NoError(t, s.c.Process.Kill())
	at := time.Now()
	s.exited(t, 10*time.Second)
	return at
}

// requireNoRepeats fails if one consumer's manifest names an item twice: a
// consumer never redelivers to itself.
func requireNoRepeats(t *testing.T, who string, lines []manifestLine) {
	t.Helper()
	for seq, n := range seqCount(lines) {
		require.Equal(t, 1, n, "%s delivered item %d %d times", who, seq, n)
	}
}

func seqCount(lines []manifestLine) map[uint64]int {
	m := map[uint64]int{}
	for _, l := range lines {
		m[l.Seq]++
	}
	return m
}

// TestConsumerKilledInHandler: the producer keeps the ring for
// -peer-timeout; a new consumer resumes at the oldest unreleased item; only
// unreleased items (at most the slot count) are seen twice, none is lost.
func TestConsumerKilledInHandler(t *testing.T) {
	name := ringName(t)
	m1, m2 := tempFile(t, "m1"), tempFile(t, "m2")
	const items, slots = 300, 8
	p := start(t, time.Minute, nil, "produce", "-name", name, "-slots", strconv.Itoa(slots), "-slot-size", "4096",
		"-count", strconv.Itoa(items), "-hugepages", "off", "-peer-timeout", "30s")
	c1 := startFault(t, "consume-in-handler:77", "consume", "-name", name, "-workers", "3", "-manifest", m1)
	c1.waitStderr(t, "fault consume-in-handler 77", 30*time.Second)
	kill(t, c1)
	time.Sleep(300 * time.Millisecond)
	select {
	case <-p.done:
		t.Fatalf("producer exited although its peer timeout is 30s: %s", p.errb.String())
	default:
	}
	c2 := start(t, time.Minute, nil, "consume", "-name", name, "-workers", "3", "-manifest", m2)
	require.Equal(t, 0, c2.wait(t, time.Minute).code)
	require.Equal(t, 0, p.wait(t, time.Minute).code)

	l1, l2 := readManifest(t, m1), readManifest(t, m2)
	all := append(append([]manifestLine{}, l1...), l2...)
	checkDelivery(t, all, items, 4096, 4096, slots)
	c1s, c2s := seqCount(l1), seqCount(l2)
	dups := 0
	for seq, n := range c1s {
		require.Equal(t, 1, n, "consumer 1 delivered item %d %d times", seq, n)
		if c2s[seq] > 0 {
			dups++
		}
	}
	for seq, n := range c2s {
		require.Equal(t, 1, n, "consumer 2 delivered item %d %d times", seq, n)
	}
	require.Contains(t, c2s, uint64(77), "the item the dead consumer held is redelivered")
	require.LessOrEqual(t, dups, slots, "only unreleased items may be delivered twice")
	t.Logf("consumer 1 delivered %d, consumer 2 %d, %d twice", len(l1), len(l2), dups)
}

// TestConsumerKilledProducerGivesUp: with -peer-timeout 0 the producer
// notices the death at once (also while blocked on a full ring), removes
// the ring and exits 3 saying how many items were delivered and lost.
func TestConsumerKilledProducerGivesUp(t *testing.T) {
	name := ringName(t)
	p := start(t, time.Minute, nil, "produce", "-name", name, "-slots", "4", "-slot-size", "4096", "-count", "1000", "-hugepages", "off")
	c := startFault(t, "consume-in-handler:10", "consume", "-name", name, "-workers", "1")
	c.waitStderr(t, "fault consume-in-handler 10", 30*time.Second)
	n, _ := ringobj.For(name)
	waitFull(t, n, 4) // the producer is blocked on a full ring
	killed := kill(t, c)
	exited := p.exited(t, 10*time.Second)
	pr := p.wait(t, time.Second)
	d := exited.Sub(killed)
	t.Logf("producer noticed the death, cleaned up and exited %v after the kill", d)
	require.Less(t, d, detectBound())
	oneLine(t, pr, exitPeerLost, "consumer of "+name+" is gone", "10 items delivered, 4 lost", "986 not sent")
}

// TestConsumerKilledBlockedOnEmpty: a consumer killed while it waits for
// items is replaced; the new one gets the rest exactly once.
func TestConsumerKilledBlockedOnEmpty(t *testing.T) {
	name := ringName(t)
	m1, m2 := tempFile(t, "m1"), tempFile(t, "m2")
	in, feed := io.Pipe()
	p := startPipe(t, in, "produce", "-name", name, "-stdin", "-slots", "4", "-slot-size", "4096", "-hugepages", "off", "-peer-timeout", "30s")
	c1 := start(t, time.Minute, nil, "consume", "-name", name, "-manifest", m1)
	block := make([]byte, 4096)
	for i := 0; i < 5; i++ {
		block[0] = byte(i)
		_, err := feed.Write(block)
		require.NoError(t, err)
	}
	waitManifest(t, m1, 5)
	time.Sleep(50 * time.Millisecond) // let it go to sleep on the empty ring
	kill(t, c1)
	c2 := start(t, time.Minute, nil, "consume", "-name", name, "-manifest", m2)
	for i := 5; i < 9; i++ {
		block[0] = byte(i)
		_, err := feed.Write(block)
		require.NoError(t, err)
	}
	require.NoError(t, feed.Close())
	require.Equal(t, 0, p.wait(t, time.Minute).code)
	require.Equal(t, 0, c2.wait(t, time.Minute).code)
	l1, l2 := readManifest(t, m1), readManifest(t, m2)
	require.Len(t, l1, 5)
	require.Len(t, l2, 4)
	c2s := seqCount(l2)
	for seq := uint64(5); seq < 9; seq++ {
		require.Equal(t, 1, c2s[seq], "item %d", seq)
	}
}

// TestProducerKilledInSlot: a producer killed with an item half written
// leaves it invisible; the consumer delivers everything published, waits
// for a new producer, which resumes at head and completes the stream.
func TestProducerKilledInSlot(t *testing.T) {
	name := ringName(t)
	m := tempFile(t, "m")
	const items = 120
	c := start(t, time.Minute, nil, "consume", "-name", name, "-workers", "2", "-manifest", m, "-peer-timeout", "30s")
	p1 := startFault(t, "produce-in-slot:41", "produce", "-name", name, "-slots", "8", "-slot-size", "64KiB",
		"-count", strconv.Itoa(items), "-hugepages", "off")
	p1.waitStderr(t, "fault produce-in-slot 41", 30*time.Second)
	waitManifest(t, m, 41) // every published item is delivered
	kill(t, p1)
	time.Sleep(300 * time.Millisecond)
	require.Len(t, readManifest(t, m), 41, "nothing half-written is delivered")
	p2 := start(t, time.Minute, nil, "produce", "-name", name, "-hugepages", "off")
	pr := p2.wait(t, time.Minute)
	require.Equal(t, 0, pr.code, pr.stderr)
	require.Contains(t, pr.stderr, "resuming ring "+name+" at item 41")
	require.Equal(t, 0, c.wait(t, time.Minute).code)
	checkDelivery(t, readManifest(t, m), items, 64<<10, 64<<10, 0)
}

// TestProducerKilledOnFullRingConsumerGivesUp: the producer dies blocked
// on a full ring before any consumer came; a consumer started later
// delivers the published items, finds no producer, removes the ring and
// exits 3 with the counts.
func TestProducerKilledOnFullRingConsumerGivesUp(t *testing.T) {
	name := ringName(t)
	m := tempFile(t, "m")
	p := start(t, time.Minute, nil, "produce", "-name", name, "-slots", "4", "-slot-size", "4096", "-count", "100", "-hugepages", "off")
	n, _ := ringobj.For(name)
	waitFull(t, n, 4)
	kill(t, p)
	t0 := time.Now()
	cr := shmpc(t, 30*time.Second, nil, "consume", "-name", name, "-manifest", m, "-wait", "500ms")
	require.GreaterOrEqual(t, time.Since(t0), 500*time.Millisecond, "a consumer that never saw the producer waits -wait for one")
	oneLine(t, cr, exitPeerLost, "producer of "+name+" is gone and no new producer came within 500ms", "4 items delivered, 96 lost")
	checkDelivery(t, readManifest(t, m), 4, 4096, 4096, 0)
}

// TestProducerKilledWhileConsumerWaits measures the consumer's detection
// of the producer's death while it sleeps on an empty ring.
func TestProducerKilledWhileConsumerWaits(t *testing.T) {
	name := ringName(t)
	c := start(t, time.Minute, nil, "consume", "-name", name)
	p := startFault(t, "produce-after:20", "produce", "-name", name, "-slots", "4", "-slot-size", "4096", "-count", "100", "-hugepages", "off")
	p.waitStderr(t, "fault produce-after 20", 30*time.Second)
	n, _ := ringobj.For(name)
	waitTail(t, n, 20)
	time.Sleep(50 * time.Millisecond)
	killed := kill(t, p)
	exited := c.exited(t, 10*time.Second)
	d := exited.Sub(killed)
	t.Logf("consumer noticed the death, cleaned up and exited %v after the kill", d)
	require.Less(t, d, detectBound())
	oneLine(t, c.wait(t, time.Second), exitPeerLost, "20 items delivered, 80 lost")
}

func waitTail(t *testing.T, n ringobj.Names, tail uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := shmpc(t, 10*time.Second, nil, "ls", "-json")
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var ri ringInfo
			if json.Unmarshal([]byte(line), &ri) == nil && ri.Name == n.Ring && ri.Tail >= tail {
				return
			}
		}
		require.True(t, time.Now().Before(deadline), "ring %s did not reach tail %d", n.Ring, tail)
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProducerDiedBeforeCleanup: the stream was complete and delivered,
// then the producer died before removing the ring: the consumer removes
// it and exits 0.
func TestProducerDiedBeforeCleanup(t *testing.T) {
	name := ringName(t)
	m := tempFile(t, "m")
	c := start(t, time.Minute, nil, "consume", "-name", name, "-manifest", m)
	p := startFault(t, "produce-before-cleanup", "produce", "-name", name, "-slots", "4", "-slot-size", "4096", "-count", "30", "-hugepages", "off")
	p.waitStderr(t, "fault produce-before-cleanup", 30*time.Second)
	kill(t, p)
	require.Equal(t, 0, c.wait(t, 10*time.Second).code)
	checkDelivery(t, readManifest(t, m), 30, 4096, 4096, 0)
}

// TestProducerDiedAfterEnd: the producer marked the end of the stream and
// died before the consumer drained it (the consumer was killed too, with
// items unreleased): at -count, or early, at its head, after a SIGINT. A
// new producer on the NAME resumes the ended ring (nothing left to send),
// a new consumer drains it, the producer removes it: both exit 0, every
// item of the stream delivered, repeats only of the unreleased.
func TestProducerDiedAfterEnd(t *testing.T) {
	for _, early := range []bool{false, true} {
		t.Run(fmt.Sprintf("early=%v", early), func(t *testing.T) {
			name := ringName(t)
			n, _ := ringobj.For(name)
			m1, m2 := tempFile(t, "m1"), tempFile(t, "m2")
			// The consumer holds item hold in its handler: with 25 the
			// producer commits all 30 items and ends at -count; with 5 the
			// ring fills at head 13, where SIGINT ends the stream.
			const items, slots = 30, 8
			hold := uint64(25)
			if early {
				hold = 5
			}
			c := startFault(t, fmt.Sprintf("consume-in-handler:%d", hold), "consume", "-name", name, "-workers", "1", "-manifest", m1, "-peer-timeout", "30s")
			p := startFault(t, "produce-ended", "produce", "-name", name, "-slots", strconv.Itoa(slots), "-slot-size", "4096", "-count", strconv.Itoa(items),
				"-hugepages", "off", "-peer-timeout", "30s")
			c.waitStderr(t, fmt.Sprintf("fault consume-in-handler %d", hold), 30*time.Second)
			want := uint64(items)
			if early {
				waitFull(t, n, slots)
				require.NoError(t, p.c.Process.Signal(os.Interrupt))
				want = hold + slots
			}
			p.waitStderr(t, "fault produce-ended", 30*time.Second)
			kill(t, p)
			kill(t, c)

			p2 := start(t, time.Minute, nil, "produce", "-name", name, "-hugepages", "off")
			p2.waitStderr(t, "nothing left to send", 30*time.Second)
			c2 := start(t, time.Minute, nil, "consume", "-name", name, "-manifest", m2)
			pr := p2.wait(t, time.Minute)
			require.Equal(t, 0, pr.code, pr.stderr)
			require.Contains(t, pr.stderr, fmt.Sprintf("resuming ring %s at item %d", name, want))
			cr := c2.wait(t, time.Minute)
			require.Equal(t, 0, cr.code, cr.stderr)
			l1, l2 := readManifest(t, m1), readManifest(t, m2)
			requireNoRepeats(t, "consumer 1", l1)
			requireNoRepeats(t, "consumer 2", l2)
			// Only what the first consumer had not released may repeat:
			// at most the slot count.
			checkDelivery(t, append(l1, l2...), want, 4096, 4096, slots)
		})
	}
}

// TestIntegrityErrorStops: a payload changed after its CRC was computed is
// never delivered: the consumer stops at that item with exit 4; the
// producer treats it as gone (exit 3); nothing is left.
func TestIntegrityErrorStops(t *testing.T) {
	name := ringName(t)
	m := tempFile(t, "m")
	c := start(t, time.Minute, nil, "consume", "-name", name, "-workers", "1", "-manifest", m)
	p := startFault(t, "produce-corrupt:5", "produce", "-name", name, "-slots", "4", "-slot-size", "4096", "-count", "20", "-hugepages", "off")
	cr := c.wait(t, 30*time.Second)
	oneLine(t, cr, exitIntegrity, "item 5", "integrity")
	pr := p.wait(t, 30*time.Second)
	require.Equal(t, exitPeerLost, pr.code, pr.stderr)
	lines := readManifest(t, m)
	require.Len(t, lines, 5)
	checkDelivery(t, lines, 5, 4096, 4096, 0)
}

// TestBothKilledResume: with both sides dead the ring stays (ls shows its
// owners dead, gc -dry-run would remove it); a new producer resumes it and
// a new consumer completes the stream, at least once.
func TestBothKilledResume(t *testing.T) {
	name := ringName(t)
	m1, m2 := tempFile(t, "m1"), tempFile(t, "m2")
	const items = 200
	p := start(t, time.Minute, nil, "produce", "-name", name, "-slots", "8", "-slot-size", "4096", "-count", strconv.Itoa(items),
		"-hugepages", "off", "-peer-timeout", "30s")
	c := startFault(t, "consume-in-handler:50", "consume", "-name", name, "-workers", "2", "-manifest", m1)
	c.waitStderr(t, "fault consume-in-handler 50", 30*time.Second)
	kill(t, c)
	kill(t, p)

	ri := lsRing(t, name)
	require.False(t, ri.ProducerAlive)
	require.False(t, ri.ConsumerAlive)
	require.NotZero(t, ri.ProducerPID)
	r := shmpc(t, 30*time.Second, nil, "gc", "-dry-run", "-name", name)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, name+": would remove segment key")
	n, _ := ringobj.For(name)
	left, _ := ringobj.Leftovers(n)
	require.Len(t, left, 6, "a dry run removes nothing")

	p2 := start(t, time.Minute, nil, "produce", "-name", name, "-hugepages", "off")
	// A consumer that found no producer would give up at once (peer
	// timeout 0): start it once the producer resumed the ring.
	p2.waitStderr(t, "resuming ring", 30*time.Second)
	c2 := start(t, time.Minute, nil, "consume", "-name", name, "-manifest", m2)
	require.Equal(t, 0, p2.wait(t, time.Minute).code)
	require.Equal(t, 0, c2.wait(t, time.Minute).code)
	l1, l2 := readManifest(t, m1), readManifest(t, m2)
	requireNoRepeats(t, "consumer 1", l1)
	requireNoRepeats(t, "consumer 2", l2)
	checkDelivery(t, append(l1, l2...), items, 4096, 4096, 8) // the slot count
}

// TestBothKilledGC: gc removes a ring whose owners are both dead, and only
// it; -fresh discards one instead of resuming.
func TestBothKilledGC(t *testing.T) {
	dead := ringName(t)
	p := start(t, time.Minute, nil, "produce", "-name", dead, "-slots", "2", "-slot-size", "4096", "-count", "10", "-hugepages", "off")
	n, _ := ringobj.For(dead)
	waitFull(t, n, 2)
	kill(t, p)

	live := ringName(t)
	m := tempFile(t, "m")
	pl := start(t, time.Minute, nil, "produce", "-name", live, "-slots", "2", "-slot-size", "4096", "-count", "10", "-hugepages", "off")
	nl, _ := ringobj.For(live)
	waitFull(t, nl, 2)

	r := shmpc(t, 30*time.Second, nil, "gc", "-name", live)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, live+": left alone: its producer is alive")
	left, _ := ringobj.Leftovers(nl)
	require.Len(t, left, 6, "gc touched a live ring")

	r = shmpc(t, 30*time.Second, nil, "gc", "-name", dead)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, dead+": removed segment key")
	left, _ = ringobj.Leftovers(n)
	require.Empty(t, left)

	// The live ring is unharmed: it completes exactly once.
	c := start(t, time.Minute, nil, "consume", "-name", live, "-manifest", m)
	require.Equal(t, 0, pl.wait(t, time.Minute).code)
	require.Equal(t, 0, c.wait(t, time.Minute).code)
	checkDelivery(t, readManifest(t, m), 10, 4096, 4096, 0)

	// -fresh discards a dead ring.
	p = start(t, time.Minute, nil, "produce", "-name", dead, "-slots", "2", "-slot-size", "4096", "-count", "10", "-hugepages", "off")
	waitFull(t, n, 2)
	kill(t, p)
	m2 := tempFile(t, "m2")
	p = start(t, time.Minute, nil, "produce", "-name", dead, "-fresh", "-slots", "2", "-slot-size", "4096", "-count", "3", "-hugepages", "off")
	p.waitStderr(t, "discarded the existing ring", 30*time.Second)
	c = start(t, time.Minute, nil, "consume", "-name", dead, "-manifest", m2)
	pr := p.wait(t, time.Minute)
	require.Equal(t, 0, pr.code, pr.stderr)
	require.Equal(t, 0, c.wait(t, time.Minute).code)
	checkDelivery(t, readManifest(t, m2), 3, 4096, 4096, 0)
}

func lsRing(t *testing.T, name string) ringInfo {
	t.Helper()
	r := shmpc(t, 30*time.Second, nil, "ls", "-json")
	require.Equal(t, 0, r.code, r.stderr)
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ri ringInfo
		if json.Unmarshal([]byte(line), &ri) == nil && ri.Name == name {
			return ri
		}
	}
	t.Fatalf("ring %s not in ls -json:\n%s", name, r.stdout)
	return ringInfo{}
}

// TestRunKilledLeavesNoOrphan: killing `run` kills its children
// (PR_SET_PDEATHSIG); gc then removes the ring they left.
func TestRunKilledLeavesNoOrphan(t *testing.T) {
	r := start(t, time.Minute, nil, "run", "-slots", "4", "-slot-size", "4096", "-count", "100000000", "-hugepages", "off")
	var kids []proc.ID
	deadline := time.Now().Add(20 * time.Second)
	for len(kids) < 2 {
		require.True(t, time.Now().Before(deadline), "run's children did not appear")
		kids = children(r.c.Process.Pid)
		time.Sleep(10 * time.Millisecond)
	}
	name := ""
	for name == "" && time.Now().Before(deadline) {
		for n := range ringNames() {
			if strings.HasPrefix(n, fmt.Sprintf("run-%d-", r.c.Process.Pid)) {
				name = n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.NotEmpty(t, name, "run's ring not found")
	t.Cleanup(func() { requireNoLeftovers(t, name) })
	waitManifestLs(t, name)
	kill(t, r)
	for _, k := range kids {
		for proc.Alive(k) {
			require.True(t, time.Now().Before(deadline.Add(10*time.Second)), "child %d outlived run", k.PID)
			time.Sleep(5 * time.Millisecond)
		}
	}
	g := shmpc(t, 30*time.Second, nil, "gc", "-name", name)
	require.Equal(t, 0, g.code, g.stderr)
	require.Contains(t, g.stdout, name+": removed")
}

func waitManifestLs(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for lsRing(t, name).Tail == 0 {
		require.True(t, time.Now().Before(deadline), "ring %s made no progress", name)
		time.Sleep(10 * time.Millisecond)
	}
}

// children returns the identities of pid's child processes.
func children(pid int) []proc.ID {
	var out []proc.ID
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cpid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[1] == strconv.Itoa(pid) {
			st, err := proc.StartTime(cpid)
			if err == nil {
				out = append(out, proc.ID{PID: cpid, Start: st})
			}
		}
	}
	return out
}
