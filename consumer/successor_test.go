package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/shm"
)

// TestProducerClosedWithoutEndThenSuccessor: a producer that closes
// without ending its stream removes the ring's segment while its consumer
// is still attached, and a new producer of the NAME then makes a new
// segment that consumer never sees, while it holds the same producer role
// the consumer watches. The consumer must not take that producer for its
// own and wait for ever (nor the new producer for it): it reports the loss.
func TestProducerClosedWithoutEndThenSuccessor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := uniqueName(t)
	o := producer.Options{Slots: 2, SlotSize: 4096, HugePages: shm.Off, Lock: shm.Off, Wait: 30 * time.Second}
	p1, err := producer.Open(ctx, name, o)
	require.NoError(t, err)
	require.NoError(t, p1.Send(ctx, []byte("from the first producer")))

	c, err := consumer.Open(ctx, name, consumer.Options{PeerTimeout: 30 * time.Second})
	require.NoError(t, err)
	defer c.Close()
	got := make(chan uint64, 10)
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, func(seq uint64, data []byte) error {
			got <- seq
			return nil
		})
	}()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the first item was not delivered within 10s")
	}
	require.NoError(t, p1.Close()) // no End: the segment goes, the consumer stays
	p2, err := producer.Open(ctx, name, o)
	require.NoError(t, err)
	defer p2.Close()
	select {
	case err := <-done:
		require.ErrorIs(t, err, consumer.ErrPeerLost)
		require.Contains(t, err.Error(), "removed the ring")
	case <-time.After(10 * time.Second):
		t.Fatal("the consumer still waits, 10s after its producer removed the ring, on a successor's ring it cannot see")
	}
}
