package cinterop

import (
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmpc/shmpc/internal/payload"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/internal/testutil"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

// ringState reads the head and tail of ring name from its header, attached
// read-only; ok is false when there is no readable ring.
func ringState(name string) (head, tail uint64, ok bool) {
	n, err := ringobj.For(name)
	if err != nil {
		return 0, 0, false
	}
	info, err := shm.Lookup(n.Key)
	if err != nil {
		return 0, 0, false
	}
	seg, err := shm.AttachID(info.ID, true, shm.Options{Lock: shm.Off})
	if err != nil {
		return 0, 0, false
	}
	defer seg.Detach()
	r, err := ring.Open(seg.Bytes())
	if err != nil {
		return 0, 0, false
	}
	return r.Head(), r.Tail(), true
}

// ringHead is the head of ring name, 0 when it cannot be read.
func ringHead(name string) uint64 {
	h, _, _ := ringState(name)
	return h
}

// waitFor polls cond every 10 ms for up to 30 s, and fails the test naming
// what it waited for when cond never holds.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30s waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKillProducerMidStream kills a producer with SIGKILL in the middle of
// a -count stream (it waits on a full ring: the consumer is held up writing
// to a pipe nobody reads yet) and resumes the stream with a producer of the
// other language given the same -count. The consumer, which keeps the ring
// for -peer-timeout, must deliver every item exactly once, with the
// payload's bytes: its manifest and the SHA-256 of its -stdout say so.
func TestKillProducerMidStream(t *testing.T) {
	c, g := binaries(t)
	for _, tc := range []struct {
		name                     string
		killed, resumer, consume string
	}{
		{"c-killed-go-resumes", c, g, g},
		{"go-killed-c-resumes", g, c, c},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const count, slots = 24, 4
			name := testutil.RingName(t, "ci")
			manifest := filepath.Join(t.TempDir(), "manifest")
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			cons := start(t, tc.consume, nil, w, "consume", "-name", name, "-stdout", "-manifest", manifest,
				"-wait", "30s", "-peer-timeout", "30s")
			w.Close() // the consumer holds the write end
			args := []string{"produce", "-name", name, "-count", "24", "-slot-size", "64KiB", "-slots", "4", "-wait", "30s"}
			first := start(t, tc.killed, nil, nil, args...)
			waitFor(t, func() bool {
				h, tl, ok := ringState(name)
				return ok && h > 0 && h-tl == slots
			}, "the producer to fill the ring")
			head := ringHead(name)
			if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if st := first.wait(t, bound); st != -1 {
				t.Fatalf("the first producer exited %d before it was killed; stderr:\n%s", st, first.stderr)
			}
			if head == 0 || head >= count {
				t.Fatalf("killed at head %d: not in the middle of a %d-item stream", head, count)
			}
			second := start(t, tc.resumer, nil, nil, args...)
			sum := sha256.New()
			copied := make(chan error, 1)
			go func() {
				_, err := io.Copy(sum, r)
				copied <- err
			}()
			second.requireExit(t, bound, 0)
			cons.requireExit(t, bound, 0)
			select {
			case err := <-copied:
				if err != nil {
					t.Fatalf("read the consumer's output: %v", err)
				}
			case <-time.After(bound):
				t.Fatal("the consumer's output did not end")
			}
			if s := second.stderr.String(); !strings.Contains(s, "resuming ring "+name+" at item ") {
				t.Errorf("the second producer did not say it resumed: %q", s)
			}
			want := sha256.New()
			buf := make([]byte, slotSize)
			lengths := make([]int, count)
			for seq := range uint64(count) {
				payload.Fill(buf, seq)
				want.Write(buf)
				lengths[seq] = slotSize
			}
			if got, exp := sum.Sum(nil), want.Sum(nil); string(got) != string(exp) {
				t.Errorf("the consumer's -stdout has SHA-256 %x, the %d-item payload %x", got, count, exp)
			}
			checkStream(t, readManifest(t, manifest), lengths)
			t.Logf("killed at head %d; %s", head, strings.TrimSpace(second.stderr.String()))
		})
	}
}
