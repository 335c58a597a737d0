package producer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shmpc/shmpc/internal/testutil"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func uniqueName(t *testing.T) string { return testutil.RingName(t, "p") }

// openPatient opens a small producer on name that waits a minute for its
// first consumer (so only the test decides when a wait ends).
func openPatient(t *testing.T, name string) *producer.Producer {
	t.Helper()
	o := small()
	o.Wait = time.Minute
	p, err := producer.Open(context.Background(), name, o)
	require.NoError(t, err)
	return p
}

func small() producer.Options {
	return producer.Options{Slots: 2, SlotSize: 4096, HugePages: shm.Off, Wait: 200 * time.Millisecond}
}

func TestOpenRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"", "a/b", ".x", string(make([]byte, 65))} {
		_, err := producer.Open(ctx, name, small())
		require.Error(t, err, "name %q", name)
		require.Contains(t, err.Error(), "NAME is 1 to 64 characters")
	}
	name := uniqueName(t)
	for _, o := range []producer.Options{
		{SlotSize: 5000}, {SlotSize: -4096}, {Slots: -1}, {Slots: ring.MaxSlots + 1}, {Perm: 0o1777},
	} {
		_, err := producer.Open(ctx, name, o)
		require.Error(t, err, "%+v", o)
	}
}

func TestSecondProducerIsBusy(t *testing.T) {
	ctx := context.Background()
	name := uniqueName(t)
	p, err := producer.Open(ctx, name, small())
	require.NoError(t, err)
	_, err = producer.Open(ctx, name, small())
	require.ErrorIs(t, err, producer.ErrBusy)
	require.Contains(t, err.Error(), fmt.Sprintf("pid %d", os.Getpid()))
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "Close is idempotent")
}

func TestMisuse(t *testing.T) {
	ctx := context.Background()
	name := uniqueName(t)
	p, err := producer.Open(ctx, name, small())
	require.NoError(t, err)
	require.ErrorIs(t, p.Commit(1), ring.ErrNotReserved)
	require.ErrorIs(t, p.Send(ctx, make([]byte, 4097)), ring.ErrTooLarge)
	s1, err := p.Reserve(ctx)
	require.NoError(t, err)
	s2, err := p.Reserve(ctx)
	require.NoError(t, err)
	require.Equal(t, s1.Seq, s2.Seq, "reserving twice without a commit returns the same slot")
	require.ErrorIs(t, p.Commit(4097), ring.ErrTooLarge)
	require.NoError(t, p.Commit(10))
	require.EqualValues(t, 1, p.Next())
	require.NoError(t, p.Close())
	_, err = p.Reserve(ctx)
	require.ErrorIs(t, err, producer.ErrClosed)
	require.ErrorIs(t, p.End(ctx), producer.ErrClosed)
}

// TestNoConsumerGivesUp: a producer whose ring is full waits Wait for its
// first consumer, then reports the peer lost; Close removes everything.
func TestNoConsumerGivesUp(t *testing.T) {
	ctx := context.Background()
	name := uniqueName(t)
	p, err := producer.Open(ctx, name, small())
	require.NoError(t, err)
	require.NoError(t, p.Send(ctx, []byte("a")))
	require.NoError(t, p.Send(ctx, []byte("b")))
	start := time.Now()
	err = p.Send(ctx, []byte("c"))
	require.ErrorIs(t, err, producer.ErrPeerLost)
	require.Contains(t, err.Error(), "no consumer attached")
	require.Contains(t, err.Error(), "0 items delivered, 2 lost")
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	require.NoError(t, p.Close())
}

// TestReserveHonoursContext: a Reserve blocked on a full ring returns the
// context's error when it ends.
func TestReserveHonoursContext(t *testing.T) {
	name := uniqueName(t)
	p := openPatient(t, name)
	defer p.Close()
	for range 2 {
		require.NoError(t, p.Send(context.Background(), []byte("x")))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := p.Reserve(ctx)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
}
