package producer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/internal/internalhook"
	"github.com/shmpc/shmpc/producer"
)

// TestConsumerBeforeOpenReturnsCounts: a consumer that attaches while the
// producer's Open is still running (right after the ring is formatted) and
// leaves again is a consumer that came: the producer, finding the ring
// full, reports it gone at once (peer timeout 0), not "no consumer
// attached" after its whole Wait. (Open read the consumer's claim
// generation after that consumer had bumped it, so the generation never
// changed; seen as a 30 s stall in a two-process example.)
func TestConsumerBeforeOpenReturnsCounts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := uniqueName(t)
	var hookErr error
	internalhook.ProducerAttached = func(ring string) {
		if ring != name {
			return
		}
		c, err := consumer.Open(ctx, name, consumer.Options{Wait: 5 * time.Second})
		if err != nil {
			hookErr = err
			return
		}
		hookErr = c.Close()
	}
	defer func() { internalhook.ProducerAttached = nil }()
	o := small()
	o.Wait = 10 * time.Second
	p, err := producer.Open(ctx, name, o)
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, hookErr, "the consumer that attached during Open")
	require.NoError(t, p.Send(ctx, []byte("a")))
	require.NoError(t, p.Send(ctx, []byte("b")))
	start := time.Now()
	err = p.Send(ctx, []byte("c"))
	took := time.Since(start)
	require.ErrorIs(t, err, producer.ErrPeerLost)
	require.NotContains(t, err.Error(), "no consumer attached", "a consumer did attach")
	require.Less(t, took, 5*time.Second, "the consumer's departure was noticed only at the end of Wait")
	require.Equal(t, uint64(1), p.Stats().ProducerPeerLosses)
}

// TestStatsCountWhatMoved: after a run in which the producer had to sleep
// on a full ring, Stats (the ring's live counters) equal what was moved,
// and show the producer's sleep and the consumer's wake-up of it; after
// End removed the ring they stay as they were.
func TestStatsCountWhatMoved(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := uniqueName(t)
	p := openPatient(t, name)
	defer p.Close()
	const n = 20
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := p.Send(ctx, make([]byte, 100+i)); err != nil {
				sent <- err
				return
			}
		}
		sent <- p.End(ctx)
	}()
	// Let the producer fill the ring and fall asleep.
	deadline := time.Now().Add(10 * time.Second)
	for p.Ring().Head() < 2 || p.Stats().ProducerSleeps == 0 {
		require.True(t, time.Now().Before(deadline), "the producer did not sleep on its full ring within 10s")
		time.Sleep(time.Millisecond)
	}
	c, err := consumer.Open(ctx, name, consumer.Options{})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Run(ctx, func(uint64, []byte) error { return nil }))
	select {
	case err := <-sent:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("End did not return within 30s")
	}
	var bytes uint64
	for i := range n {
		bytes += uint64(100 + i)
	}
	st := p.Stats()
	require.Equal(t, uint64(n), st.ItemsCommitted)
	require.Equal(t, uint64(n), st.ItemsReleased)
	require.Equal(t, bytes, st.BytesCommitted)
	require.Equal(t, bytes, st.BytesReleased)
	require.NotZero(t, st.ProducerSleeps)
	require.NotZero(t, st.ConsumerWakes, "the consumer woke the sleeping producer")
	require.Zero(t, st.ProducerPeerLosses+st.ConsumerPeerLosses)
	require.Equal(t, st, c.Stats().Ring, "both sides read the same header")
}
