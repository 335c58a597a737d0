package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

// blockingPipe returns a pipe whose read end is blocking and not in Go's
// poller, as a process's inherited standard input is.
func blockingPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	var fds [2]int
	require.NoError(t, unix.Pipe2(fds[:], unix.O_CLOEXEC))
	r, w = os.NewFile(uintptr(fds[0]), "pipe-r"), os.NewFile(uintptr(fds[1]), "pipe-w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func statusFlags(t *testing.T, f *os.File) int {
	t.Helper()
	rc, err := f.SyscallConn()
	require.NoError(t, err)
	var flags int
	var ferr error
	require.NoError(t, rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }))
	require.NoError(t, ferr)
	return flags
}

// TestInterruptibleStdinPipe: data passes; a read waiting on an idle pipe
// returns ctx's error when ctx ends; restore puts the shared description's
// flags back and leaves the original descriptor open and usable.
func TestInterruptibleStdinPipe(t *testing.T) {
	pr, pw := blockingPipe(t)
	before := statusFlags(t, pr)
	require.Zero(t, before&unix.O_NONBLOCK, "the test pipe should start blocking")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, restore, err := interruptibleStdin(ctx, pr)
	require.NoError(t, err)
	defer restore()
	require.NotSame(t, pr, r, "a pipe should be read through the poller")

	_, err = pw.Write([]byte("hello"))
	require.NoError(t, err)
	buf := make([]byte, 5)
	_, err = io.ReadFull(r, buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf))

	done := make(chan error, 1)
	go func() {
		_, err := r.Read(buf)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("read of an idle pipe returned before ctx ended: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("read of an idle pipe did not return within 10s of ctx's end")
	}

	restore()
	restore() // a second call does nothing
	require.Equal(t, before, statusFlags(t, pr), "file status flags after restore")
	_, err = pw.Write([]byte("x"))
	require.NoError(t, err)
	_, err = io.ReadFull(pr, buf[:1])
	require.NoError(t, err, "the original descriptor after restore")
	require.Equal(t, "x", string(buf[:1]))
}

// TestInterruptibleStdinFallback: a regular file and /dev/null, which
// the poller does not take and which never block, are read as they are,
// with their flags untouched.
func TestInterruptibleStdinFallback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in")
	require.NoError(t, os.WriteFile(path, []byte("data"), 0o600))
	for _, p := range []string{path, os.DevNull} {
		f, err := os.Open(p)
		require.NoError(t, err)
		before := statusFlags(t, f)
		ctx, cancel := context.WithCancel(context.Background())
		r, restore, err := interruptibleStdin(ctx, f)
		require.NoError(t, err, p)
		require.Same(t, f, r, "%s: read as it is", p)
		require.Equal(t, before, statusFlags(t, f), "%s: flags while reading", p)
		b, err := io.ReadAll(r)
		require.NoError(t, err, p)
		if p == path {
			require.Equal(t, "data", string(b))
		}
		cancel()
		restore()
		require.Equal(t, before, statusFlags(t, f), "%s: flags after restore", p)
		f.Close()
	}
}

// TestProduceStdinSIGTERM: `produce -stdin` waiting in a read of an idle
// pipe stops on SIGTERM, as it does when data flows: it ends the stream
// and exits with the status of a signal stop, leaving nothing behind.
// With its consumer attached both exit 0; with none ever attached it waits
// -wait for one, as any ended stream does, and exits 3.
func TestProduceStdinSIGTERM(t *testing.T) {
	for _, withConsumer := range []bool{true, false} {
		t.Run(map[bool]string{true: "consumer", false: "alone"}[withConsumer], func(t *testing.T) {
			t.Parallel()
			name := ringName(t)
			pr, _ := blockingPipe(t) // its write end stays open, unwritten, until the test ends
			const wait = 2 * time.Second
			p := startCustom(t, time.Minute, []string{"produce", "-name", name, "-stdin", "-slots", "2", "-slot-size", "4096",
				"-hugepages", "off", "-wait", wait.String(), "-json"}, func(s *started) { s.c.Stdin = pr })
			pr.Close()
			var c *started
			if withConsumer {
				c = start(t, time.Minute, nil, "consume", "-name", name, "-json")
				waitConsumer(t, name, c.c.Process.Pid)
			} else {
				waitRing(t, name)
			}
			time.Sleep(200 * time.Millisecond) // well into its read
			select {
			case <-p.done:
				t.Fatalf("produce exited before the signal; stderr:\n%s", p.errb.String())
			default:
			}
			require.NoError(t, p.c.Process.Signal(syscall.SIGTERM))
			bound := 10 * time.Second
			if !withConsumer {
				bound += wait
			}
			pres := p.wait(t, bound)
			var ps produceSummary
			require.True(t, lastJSON([]byte(pres.stdout), &ps), "producer summary: %q", pres.stdout)
			require.Zero(t, ps.Items)
			if withConsumer {
				require.Equal(t, 0, pres.code, "producer stderr:\n%s", pres.stderr)
				cres := c.wait(t, 10*time.Second)
				require.Equal(t, 0, cres.code, "consumer stderr:\n%s", cres.stderr)
			} else {
				require.Equal(t, exitPeerLost, pres.code, "producer stderr:\n%s", pres.stderr)
				require.Contains(t, pres.stderr, "no consumer attached")
			}
			requireNoLeftovers(t, name)
		})
	}
}

// waitConsumer waits until ring name records the consumer pid as its
// consumer.
func waitConsumer(t *testing.T, name string, pid int) {
	t.Helper()
	n, err := ringobj.For(name)
	require.NoError(t, err)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if seg, err := shm.Attach(n.Key, true, shm.Options{Lock: shm.Off}); err == nil {
			r, err := ring.Open(seg.Bytes())
			ok := err == nil && r.ConsumerID().PID == uint32(pid)
			seg.Detach()
			if ok {
				return
			}
		}
		require.True(t, time.Now().Before(deadline), "consumer %d did not attach to %s within 20s", pid, name)
		time.Sleep(5 * time.Millisecond)
	}
}

// TestProduceNoSource: produce with neither -count, -bytes nor -stdin and
// no ring to resume is a usage error naming the three, and leaves
// nothing (it looks for the ring before it makes one, and removes one it
// made when the ring went away in between); with a ring left by a dead
// producer it resumes that ring's stream.
func TestProduceNoSource(t *testing.T) {
	name := ringName(t)
	require.False(t, ringExists(name), "a ring that was never made")
	for _, args := range [][]string{
		{"produce", "-name", name, "-hugepages", "off"},
		{"produce", "-name", name, "-fresh", "-hugepages", "off"},
	} {
		r := shmpc(t, 30*time.Second, nil, args...)
		oneLine(t, r, exitUsage, "nothing to send", "-count N", "-bytes SIZE", "-stdin")
		requireNoLeftovers(t, name)
	}

	// A ring whose producer died full: produce with no source resumes it.
	p := start(t, time.Minute, nil, "produce", "-name", name, "-slots", "2", "-slot-size", "4096", "-count", "30", "-hugepages", "off")
	n, _ := ringobj.For(name)
	waitFull(t, n, 2)
	require.NoError(t, p.c.Process.Kill())
	p.wait(t, 10*time.Second)
	require.True(t, ringExists(name), "a ring left by a dead producer")
	manifest := tempFile(t, "manifest")
	p2 := start(t, time.Minute, nil, "produce", "-name", name, "-hugepages", "off")
	c := start(t, time.Minute, nil, "consume", "-name", name, "-manifest", manifest)
	require.Equal(t, 0, p2.wait(t, time.Minute).code)
	require.Equal(t, 0, c.wait(t, time.Minute).code)
	checkDelivery(t, readManifest(t, manifest), 30, 4096, 4096, 0)
	requireNoLeftovers(t, name)
}
