package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/internal/payload"
)

// selfTest runs fn as a trial of a scenario with no shmpc process (the
// "binary" is /bin/sh, for the checks of process output) and returns the
// result.
func selfTest(t *testing.T, fn func(tr *Trial)) Result {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("the self-test runs /bin/sh, which is missing")
	}
	s := &Scenario{Name: "self-test", run: fn}
	return RunTrial(&Config{Binary: "/bin/sh", DetectBound: 100 * time.Millisecond}, s, Normal, 0)
}

// TestCheckersCatch feeds the suite's checks with deliveries that break
// each rule and requires every one to be counted: the suite can fail.
func TestCheckersCatch(t *testing.T) {
	st := stream{slots: 4, slotSize: 4096, items: 10, total: 9*4096 + 1000, bytes: true}
	res := selfTest(t, func(tr *Trial) {
		m := tr.file("manifest")
		var b strings.Builder
		line := func(seq uint64, n int, crc uint32) {
			fmt.Fprintf(&b, `{"seq":%d,"len":%d,"crc32c":%d}`+"\n", seq, n, crc)
		}
		for seq := uint64(0); seq < 3; seq++ {
			line(seq, 4096, payload.CRC(seq, 4096))
		}
		line(2, 4096, payload.CRC(2, 4096))   // a repeat within one consumer
		line(3, 4096, payload.CRC(3, 4096)^1) // damaged data delivered
		line(4, 4000, payload.CRC(4, 4000))   // the wrong length
		line(12, 4096, payload.CRC(12, 4096)) // beyond the stream
		line(9, 1000, payload.CRC(9, 1000))   // the short last item, good
		if err := os.WriteFile(m, []byte(b.String()), 0o600); err != nil {
			tr.fatalf("write manifest: %v", err)
		}
		got := tr.delivered("consumer", m, st)                                                         // 3 bad, 1 repeat
		tr.requireAll("the stream", got, 0, 6)                                                         // 5 is missing: 1 lost
		tr.requireBelow("consumer", got, 10)                                                           // 12: 1 more bad
		tr.requireWindow(map[uint64]int{3: 1, 7: 1}, map[uint64]int{3: 1, 7: 1}, 3, 5, 4)              // 7 outside: 1 repeat
		tr.requireWindow(map[uint64]int{1: 1, 2: 1, 3: 1}, map[uint64]int{1: 1, 2: 1, 3: 1}, 0, 10, 2) // 3 > 2 slots: 1 repeat

		sink := newPatternSink(st, 0)
		item := func(seq uint64) []byte {
			d := make([]byte, st.lenOf(seq))
			payload.Fill(d, seq)
			return d
		}
		_, _ = sink.Write(item(0))
		bad := item(1)
		bad[100] ^= 0x10
		_, _ = sink.Write(bad[:50]) // in pieces, as a pipe delivers
		_, _ = sink.Write(bad[50:])
		_, _ = sink.Write(item(2)[:10])
		sink.check(tr, true, 3) // 1 bad item; ends inside item 2; 2 items, not 3

		tr.detected("survivor", 200*time.Millisecond) // over the 100ms bound
	})
	if res.BadDelivered != 5 {
		t.Errorf("bad deliveries counted: %d, want 5 (damaged, wrong length, beyond the stream twice, wrong bytes)", res.BadDelivered)
	}
	if res.Dups != 3 {
		t.Errorf("repeats counted: %d, want 3", res.Dups)
	}
	if res.Lost != 1 {
		t.Errorf("lost counted: %d, want 1", res.Lost)
	}
	if res.Items != 8 {
		t.Errorf("items checked: %d, want 8", res.Items)
	}
	if res.Detect != 200*time.Millisecond {
		t.Errorf("worst detection %v, want 200ms", res.Detect)
	}
	for _, want := range []string{"ends inside item 2", "has 2 items, want 3", "bound 100ms", "item 1 differs from the payload at byte 100"} {
		if !strings.Contains(strings.Join(res.Failures, "\n"), want) {
			t.Errorf("no failure says %q:\n%s", want, strings.Join(res.Failures, "\n"))
		}
	}
	if res.OK() {
		t.Error("the trial passed")
	}
}

// TestStderrChecks: a crash trace, several error lines, an unexpected exit
// status and a hang are each failures; a one-line error with the expected
// status is not.
func TestStderrChecks(t *testing.T) {
	cases := []struct {
		script  string
		allowed []int
		want    string // in a failure; "" for none
	}{
		{`echo 'shmpc consume: producer of x is gone: 3 items delivered' >&2; exit 3`, []int{3}, ""},
		{`echo 'shmpc produce: ring x uses huge pages' >&2; echo 'shmpc produce: boom' >&2; exit 1`, []int{1}, ""},
		{`echo 'panic: runtime error: index out of range' >&2; echo 'goroutine 1 [running]:' >&2; exit 2`, []int{2}, "crash"},
		{`echo 'fatal error: fault' >&2; echo '[signal SIGBUS: bus error]' >&2; exit 2`, []int{2}, "crash"},
		{`printf 'one\ntwo\n' >&2; exit 1`, []int{1}, "2 error lines"},
		{`echo 'shmpc consume: item 5: integrity' >&2; exit 4`, []int{3}, "want one of [3]"},
		{`exec sleep 60`, []int{0}, "hang"},
	}
	for _, c := range cases {
		res := selfTest(t, func(tr *Trial) {
			p := tr.start("sh", procOpt{}, "-c", c.script)
			p.wait(300 * time.Millisecond)
			tr.expectCode(p, c.allowed)
		})
		got := strings.Join(res.Failures, "\n")
		switch {
		case c.want == "" && got != "":
			t.Errorf("%q: unexpected failure: %s", c.script, got)
		case c.want != "" && !strings.Contains(got, c.want):
			t.Errorf("%q: failures %q do not say %q", c.script, got, c.want)
		}
	}
}

// TestDetectionNeedsAKill: a survivor that exited before its peer was
// killed (it took a live peer for dead) is a failure, not a fast
// detection; and waitFor ends the trial when a watched process has exited
// even if the condition holds by then.
func TestDetectionNeedsAKill(t *testing.T) {
	res := selfTest(t, func(tr *Trial) {
		tr.detected("consumer", -3*time.Millisecond)
		tr.expired("producer", 0, 100*time.Millisecond)
		tr.detected("consumer", 20*time.Millisecond) // a real one
	})
	require.Len(t, res.Failures, 2, "%v", res.Failures)
	for _, f := range res.Failures {
		require.Contains(t, f, "before its peer was killed")
	}
	require.Equal(t, 20*time.Millisecond, res.Detect, "only a positive time counts as a detection")

	res = selfTest(t, func(tr *Trial) {
		p := tr.start("survivor", procOpt{}, "-c", "exit 3")
		p.wait(10 * time.Second)
		tr.waitFor("something that is already true", time.Second, func() bool { return true }, p)
		tr.failf("waitFor returned although the watched process had exited")
	})
	require.Len(t, res.Failures, 1, "%v", res.Failures)
	require.Contains(t, res.Failures[0], "exited with status 3 while waiting for something that is already true")
}
