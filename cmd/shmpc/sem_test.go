package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/sem"
)

// TestStaleSemaphoreCounts: semaphores left with any count by a crash
// (here: every one posted 5000 times before the ring exists) neither make
// a side deliver anything twice nor block it with work pending: the
// indices in the segment are the truth, the semaphores only wake.
func TestStaleSemaphoreCounts(t *testing.T) {
	name := ringName(t)
	n, err := ringobj.For(name)
	require.NoError(t, err)
	for _, s := range n.SemNames() {
		x, err := sem.Create(s, 5000, 0o600)
		require.NoError(t, err)
		require.NoError(t, x.Close())
	}
	m := tempFile(t, "m")
	p := start(t, time.Minute, nil, "produce", "-name", name, "-slots", "2", "-slot-size", "4096", "-count", "3000", "-hugepages", "off")
	c := start(t, time.Minute, nil, "consume", "-name", name, "-workers", "2", "-manifest", m)
	require.Equal(t, 0, p.wait(t, time.Minute).code)
	require.Equal(t, 0, c.wait(t, time.Minute).code)
	checkDelivery(t, readManifest(t, m), 3000, 4096, 4096, 0)
}

// TestSemaphoreCountsStayBounded: a long stream of small items through a
// small ring, with both sides sleeping often, leaves every semaphore's
// count near zero: a post is made only for a side that flagged itself
// asleep, at most once per flag.
func TestSemaphoreCountsStayBounded(t *testing.T) {
	items := "30000"
	if raceEnabled {
		items = "5000"
	}
	name := ringName(t)
	c := start(t, time.Minute, nil, "consume", "-name", name, "-workers", "2")
	p := startFault(t, "produce-before-cleanup", "produce", "-name", name, "-slots", "2", "-slot-size", "4096", "-count", items, "-hugepages", "off")
	p.waitStderr(t, "fault produce-before-cleanup", time.Minute)
	n, err := ringobj.For(name)
	require.NoError(t, err)
	for _, s := range n.SemNames() {
		x, err := sem.Open(s)
		require.NoError(t, err)
		v, err := x.Value()
		require.NoError(t, err)
		require.NoError(t, x.Close())
		t.Logf("%s: %d", s, v)
		require.LessOrEqual(t, v, uint32(2), "semaphore %s count grew to %d over %s items", s, v, items)
	}
	kill(t, p)
	require.Equal(t, 0, c.wait(t, 10*time.Second).code)
}
