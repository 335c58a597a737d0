package peer

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/internal/lockfile"
	"github.com/shmpc/shmpc/internal/proc"
)

// The monitor is the hot path's replacement for a watch per sleep: these
// tests hold it to the same bounds as the watch.

// waitFired waits up to bound for the monitor to fire past f and returns
// how long it took.
func waitFired(t *testing.T, w *Watcher, woken *atomic.Int32, f uint64, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for w.Fired() == f {
		if time.Since(start) > bound {
			t.Fatalf("monitor did not fire within %v", bound)
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	// The monitor counts the firing, then calls wake: give the call the
	// moment between the two (a -race build can stretch it).
	for woken.Load() == 0 {
		if time.Since(start) > bound {
			t.Fatalf("the monitor fired, but wake was not called within %v", bound)
		}
		time.Sleep(100 * time.Microsecond)
	}
	return took
}

// TestMonitorDeath: an armed monitor calls wake when the peer dies, through
// the pidfd (with the peer's identity) or the lock (without), within the
// 250 ms of the design; it does not fire while the peer lives, nor while no
// sleeper is armed.
func TestMonitorDeath(t *testing.T) {
	for _, withID := range []bool{true, false} {
		l, cmd := holder(t)
		var id func() proc.ID
		if withID {
			st, err := proc.StartTime(cmd.Process.Pid)
			require.NoError(t, err)
			id = func() proc.ID { return proc.ID{PID: cmd.Process.Pid, Start: st} }
		}
		w := New(l, lockfile.Consumer, id)
		var woken atomic.Int32
		w.Start(func() { woken.Add(1) }, 0)
		w.Start(func() { t.Error("a second Start replaced the wake function") }, 0)
		f := w.Arm(true)
		time.Sleep(3 * Interval)
		require.Equal(t, f, w.Fired(), "fired while the peer lives")
		require.Zero(t, woken.Load())

		killed := time.Now()
		require.NoError(t, cmd.Process.Kill())
		waitFired(t, w, &woken, f, 5*time.Second)
		d := time.Since(killed)
		t.Logf("with identity %v: death noticed in %v", withID, d)
		require.Less(t, d, 250*time.Millisecond)

		// Disarmed, it stays quiet although the presence differs.
		w.Disarm()
		f, n := w.Fired(), woken.Load()
		time.Sleep(3 * Interval)
		require.Equal(t, f, w.Fired())
		require.Equal(t, n, woken.Load())
		w.Stop()
		w.Stop() // idempotent
	}
}

// TestMonitorArrival: armed for an absent peer, the monitor fires when one
// takes the role.
func TestMonitorArrival(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shmpc.peer.lock")
	l, err := lockfile.Open(path, true, 0o600, -1)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	w := New(l, lockfile.Consumer, nil)
	var woken atomic.Int32
	w.Start(func() { woken.Add(1) }, 0)
	defer w.Stop()
	f := w.Arm(false)
	other, err := lockfile.Open(path, false, 0, -1)
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })
	require.NoError(t, other.TryLock(lockfile.Consumer))
	waitFired(t, w, &woken, f, time.Second)
	require.True(t, w.Seen())
}

// TestMonitorStopWithoutStart: Stop without Start does nothing.
func TestMonitorStopWithoutStart(t *testing.T) {
	l, _ := holder(t)
	New(l, lockfile.Consumer, nil).Stop()
}

// TestMonitorKicksLongSleeps: while one sleep stays armed with the peer as
// expected, the monitor calls wake every `every` (a sleeper whose doorbell
// was lost looks again) without counting a change; a new Arm restarts the
// clock, and a disarmed monitor stays quiet.
func TestMonitorKicksLongSleeps(t *testing.T) {
	l, _ := holder(t)
	w := New(l, lockfile.Consumer, nil)
	var woken atomic.Int32
	const every = 200 * time.Millisecond
	w.Start(func() { woken.Add(1) }, every)
	defer w.Stop()
	f := w.Arm(true)
	start := time.Now()
	for woken.Load() < 2 {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%d kicks within 5s, want 2", woken.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	d := time.Since(start)
	t.Logf("two kicks in %v", d)
	require.GreaterOrEqual(t, d, 2*every-Interval, "kicked before the sleep was long")
	require.Equal(t, f, w.Fired(), "a kick is not a change of presence")
	w.Disarm()
	n := woken.Load()
	time.Sleep(every + 3*Interval)
	require.Equal(t, n, woken.Load(), "kicked while disarmed")
}
