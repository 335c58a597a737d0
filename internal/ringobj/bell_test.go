package ringobj_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/sem"
)

// bellSems opens a fresh ring's semaphores, unlinked at cleanup.
func bellSems(t *testing.T) (ringobj.Names, *ringobj.Sems) {
	t.Helper()
	n, err := ringobj.For(uniqueName(t))
	require.NoError(t, err)
	sems, err := ringobj.OpenSems(n, true, 0o600, os.Geteuid())
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = sems.Close()
		_ = ringobj.UnlinkSems(n)
	})
	return n, sems
}

// TestBellCounters: a sleep counts in the sleeper's Sleeps word before it waits on
// the semaphore, a Ring that posts counts in the ringer's Wakes word; a Ring with
// nobody flagged, a Kick, and a post that fails count nothing; a Bell without counter
// words works as before.
func TestBellCounters(t *testing.T) {
	n, sems := bellSems(t)
	var waiting atomic.Uint32
	var sleeps, wakes atomic.Uint64
	sleeper := ringobj.Bell{Waiting: &waiting, Sem: sems.Filled, Sleeps: &sleeps}
	ringer := ringobj.Bell{Waiting: &waiting, Sem: sems.Filled, Wakes: &wakes}

	require.NoError(t, ringer.Ring())
	require.NoError(t, ringer.Kick())
	require.Zero(t, wakes.Load(), "a Ring with nobody asleep and a Kick are not wake-ups")
	ok, err := sems.Filled.TryWait() // take the Kick's post back
	require.NoError(t, err)
	require.True(t, ok)

	for _, armed := range []bool{false, true} {
		sleeps.Store(0)
		wakes.Store(0)
		var ready atomic.Bool
		done := make(chan error, 1)
		go func() {
			if armed {
				done <- sleeper.SleepArmed(ready.Load)
			} else {
				done <- sleeper.Sleep(context.Background(), ready.Load)
			}
		}()
		deadline := time.Now().Add(10 * time.Second)
		for sleeps.Load() == 0 || waiting.Load() == 0 {
			require.True(t, time.Now().Before(deadline), "armed %v: the sleeper did not count a sleep within 10s", armed)
			time.Sleep(time.Millisecond)
		}
		ready.Store(true)
		require.NoError(t, ringer.Ring())
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("armed %v: the sleeper was not woken within 10s", armed)
		}
		require.EqualValues(t, 1, wakes.Load(), "armed %v: one post", armed)
		// One wait, or more if it took longer than Recheck to ring it.
		require.GreaterOrEqual(t, sleeps.Load(), uint64(1), "armed %v", armed)
		require.Zero(t, waiting.Load())
	}

	// A Ring whose post fails counts nothing.
	closed, err := sem.Open(n.Filled)
	require.NoError(t, err)
	require.NoError(t, closed.Close())
	waiting.Store(1)
	require.Error(t, ringobj.Bell{Waiting: &waiting, Sem: closed, Wakes: &wakes}.Ring())
	require.EqualValues(t, 1, wakes.Load(), "a failed post is not a wake-up")

	// No counter words: nothing to count, nothing breaks.
	waiting.Store(1)
	require.NoError(t, ringobj.Bell{Waiting: &waiting, Sem: sems.Filled}.Ring())
	require.NoError(t, ringobj.Bell{Waiting: &waiting, Sem: sems.Filled}.Sleep(context.Background(), func() bool { return true }))
	require.NoError(t, ringobj.Bell{Waiting: &waiting, Sem: sems.Filled}.SleepArmed(func() bool { return true }))
	require.EqualValues(t, 1, wakes.Load())
}
