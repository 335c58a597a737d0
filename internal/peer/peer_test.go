package peer

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shmpc/shmpc/internal/lockfile"
	"github.com/shmpc/shmpc/internal/proc"
)

const helperEnv = "SHMPC_PEER_HELPER"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		l, err := lockfile.Open(path, false, 0, -1)
		if err == nil {
			err = l.TryLock(lockfile.Consumer)
		}
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// holder starts a process that holds the consumer role of a new lock file.
func holder(t *testing.T) (*lockfile.File, *exec.Cmd) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shmpc.peer.lock")
	l, err := lockfile.Open(path, true, 0o600, -1)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path, "GORACE=atexit_sleep_ms=0")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() { s, _ := bufio.NewReader(out).ReadString('\n'); line <- s }()
	select {
	case s := <-line:
		require.Equal(t, "locked\n", s)
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not lock within 10s")
	}
	return l, cmd
}

func detect(t *testing.T, w *Watcher, cmd *exec.Cmd) time.Duration {
	t.Helper()
	require.True(t, w.Present())
	require.True(t, w.Seen())
	ctx, stop := w.Watch(context.Background(), true)
	defer stop()
	select {
	case <-ctx.Done():
		t.Fatal("watch ended while the peer lives")
	case <-time.After(300 * time.Millisecond):
	}
	killed := time.Now()
	require.NoError(t, cmd.Process.Kill())
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("peer death not noticed within 5s")
	}
	d := time.Since(killed)
	require.ErrorIs(t, context.Cause(ctx), ErrChanged)
	require.False(t, w.Present())
	return d
}

// TestPidfdWatch: with the peer's identity, death is noticed through the
// pidfd, well before the next look at the lock would have.
func TestPidfdWatch(t *testing.T) {
	l, cmd := holder(t)
	st, err := proc.StartTime(cmd.Process.Pid)
	require.NoError(t, err)
	w := New(l, lockfile.Consumer, func() proc.ID { return proc.ID{PID: cmd.Process.Pid, Start: st} })
	d := detect(t, w, cmd)
	t.Logf("detected in %v", d)
	require.Less(t, d, 150*time.Millisecond)
}

// TestWatchAfterTheNamedProcessExited: the identity names a process that
// exits while another holds the role (a header naming an earlier peer);
// once the pidfd fired, the lock is looked at every Interval, not at the
// pidfd's slow safety-net pace (SlowInterval), so the holder's death later
// is still noticed well within 250 ms.
func TestWatchAfterTheNamedProcessExited(t *testing.T) {
	l, cmd := holder(t)
	named := exec.Command("sleep", "0.03")
	require.NoError(t, named.Start())
	t.Cleanup(func() { _ = named.Process.Kill(); _ = named.Wait() })
	st, err := proc.StartTime(named.Process.Pid)
	require.NoError(t, err)
	w := New(l, lockfile.Consumer, func() proc.ID { return proc.ID{PID: named.Process.Pid, Start: st} })
	require.True(t, w.Present())
	ctx, stop := w.Watch(context.Background(), true)
	defer stop()
	start := time.Now()
	waited := make(chan error, 1)
	go func() { waited <- named.Wait() }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the named process did not exit within 10s")
	}
	// Past the pidfd's first slow look (SlowInterval after the Watch
	// began), so that the look after it is SlowInterval away at the old pace.
	time.Sleep(SlowInterval + 10*time.Millisecond - time.Since(start))
	require.NoError(t, ctx.Err(), "watch ended while the holder lives")
	killed := time.Now()
	require.NoError(t, cmd.Process.Kill())
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the holder's death not noticed within 5s")
	}
	d := time.Since(killed)
	t.Logf("detected in %v", d)
	require.ErrorIs(t, context.Cause(ctx), ErrChanged)
	require.Less(t, d, 150*time.Millisecond, "noticed at the pidfd's slow pace, not every Interval")
}

// TestLockWatch: without an identity (or with a wrong one) the lock is
// polled, and death is still noticed within 250 ms.
func TestLockWatch(t *testing.T) {
	for _, id := range []func() proc.ID{nil, func() proc.ID { return proc.ID{PID: 1, Start: 12345} }} {
		l, cmd := holder(t)
		w := New(l, lockfile.Consumer, id)
		d := detect(t, w, cmd)
		t.Logf("detected in %v", d)
		require.Less(t, d, 250*time.Millisecond)
	}
}

// TestWatchAbsentToPresent: a watch for an absent peer ends when one
// takes the role.
func TestWatchAbsentToPresent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shmpc.peer.lock")
	l, err := lockfile.Open(path, true, 0o600, -1)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	w := New(l, lockfile.Consumer, nil)
	require.False(t, w.Present())
	require.False(t, w.Seen())
	ctx, stop := w.Watch(context.Background(), false)
	defer stop()
	other, err := lockfile.Open(path, false, 0, -1)
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })
	require.NoError(t, other.TryLock(lockfile.Consumer))
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Fatal("arrival not noticed within 1s")
	}
	require.True(t, w.Seen())
}
