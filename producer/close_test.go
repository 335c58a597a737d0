package producer_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/internal/internalhook"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/producer"
)

// within runs f in a goroutine and fails the test unless it returns within d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// openConsumer attaches an in-process consumer whose handler blocks until
// release is closed; Run's result arrives on the returned channel.
func openConsumer(t *testing.T, name string, release <-chan struct{}) (*consumer.Consumer, <-chan error) {
	t.Helper()
	c, err := consumer.Open(context.Background(), name, consumer.Options{Workers: 1, Wait: 5 * time.Second})
	require.NoError(t, err)
	res := make(chan error, 1)
	go func() {
		res <- c.Run(context.Background(), func(uint64, []byte) error {
			<-release
			return nil
		})
	}()
	return c, res
}

// TestCloseAbortsBlockedCalls: Close from another goroutine ends a Reserve
// or End that waits (for a first consumer, on a live consumer that does
// not release, for the drain), which returns ErrClosed; nothing is left.
func TestCloseAbortsBlockedCalls(t *testing.T) {
	for _, tc := range []struct {
		name     string
		consumer bool
		end      bool
	}{
		{"reserve-no-consumer", false, false},
		{"reserve-live-consumer", true, false},
		{"end-no-consumer", false, true},
		{"end-live-consumer", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := uniqueName(t)
			p := openPatient(t, name)
			release := make(chan struct{})
			var c *consumer.Consumer
			var runRes <-chan error
			if tc.consumer {
				c, runRes = openConsumer(t, name, release)
			}
			for range 2 {
				require.NoError(t, p.Send(context.Background(), []byte("x")))
			}
			blocked := make(chan error, 1)
			go func() {
				if tc.end {
					blocked <- p.End(context.Background())
					return
				}
				_, err := p.Reserve(context.Background())
				blocked <- err
			}()
			select {
			case err := <-blocked:
				t.Fatalf("the call returned before Close: %v", err)
			case <-time.After(150 * time.Millisecond):
			}
			start := time.Now()
			within(t, 5*time.Second, "Close", func() { require.NoError(t, p.Close()) })
			select {
			case err := <-blocked:
				require.ErrorIs(t, err, producer.ErrClosed)
			case <-time.After(time.Second):
				t.Fatal("the blocked call did not return after Close")
			}
			t.Logf("Close took %v", time.Since(start))
			_, err := p.Reserve(context.Background())
			require.ErrorIs(t, err, producer.ErrClosed)
			if c != nil {
				close(release)
				select {
				case err := <-runRes:
					if tc.end {
						// The stream was ended: the consumer drains it.
						require.NoError(t, err)
					} else {
						// The producer left a ring with unreleased items: lost.
						require.ErrorIs(t, err, consumer.ErrPeerLost)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("consumer Run did not return after the producer closed")
				}
				require.NoError(t, c.Close())
			}
		})
	}
}

// TestCloseRacesSends: Close at a random moment while another goroutine
// sends as fast as it can never crashes the sender; every Send returns nil
// or ErrClosed, and nothing is left.
func TestCloseRacesSends(t *testing.T) {
	for i := range 30 {
		name := uniqueName(t)
		p := openPatient(t, name)
		release := make(chan struct{})
		close(release)
		var c *consumer.Consumer
		var runRes <-chan error
		if i%2 == 0 {
			c, runRes = openConsumer(t, name, release)
		}
		var sent atomic.Int64
		senderErr := make(chan error, 1)
		go func() {
			for {
				if err := p.Send(context.Background(), []byte("item")); err != nil {
					senderErr <- err
					return
				}
				sent.Add(1)
			}
		}()
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		within(t, 5*time.Second, "Close", func() { require.NoError(t, p.Close()) })
		select {
		case err := <-senderErr:
			require.ErrorIs(t, err, producer.ErrClosed)
		case <-time.After(2 * time.Second):
			t.Fatal("sender did not stop after Close")
		}
		if c != nil {
			select {
			case err := <-runRes:
				if err != nil && !errors.Is(err, consumer.ErrPeerLost) {
					t.Fatalf("consumer: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("consumer Run did not return after the producer closed")
			}
			require.NoError(t, c.Close())
		}
	}
}

// TestEndRemovesRing: End removes every object as soon as the consumer
// drained the stream, so a consumer in the same process returns at once
// rather than waiting for the producer's Close.
func TestEndRemovesRing(t *testing.T) {
	name := uniqueName(t)
	n, err := ringobj.For(name)
	require.NoError(t, err)
	o := small()
	o.Wait = 5 * time.Second
	p, err := producer.Open(context.Background(), name, o)
	require.NoError(t, err)
	defer p.Close()
	release := make(chan struct{})
	close(release)
	c, runRes := openConsumer(t, name, release)
	defer c.Close()
	for range 10 {
		require.NoError(t, p.Send(context.Background(), []byte("x")))
	}
	within(t, 5*time.Second, "End", func() { require.NoError(t, p.End(context.Background())) })
	ended := time.Now()
	left, err := ringobj.Leftovers(n)
	require.NoError(t, err)
	require.Empty(t, left, "End removed the ring")
	select {
	case err := <-runRes:
		require.NoError(t, err)
		t.Logf("the consumer's Run returned %v after End", time.Since(ended))
		require.Less(t, time.Since(ended), time.Second, "the consumer returned promptly after End")
	case <-time.After(5 * time.Second):
		t.Fatal("consumer Run did not return after End")
	}
	require.EqualValues(t, 10, c.Stats().Items)
	// The accessors work on a removed ring.
	require.EqualValues(t, 10, p.Next())
	require.True(t, p.Ended())
	require.Equal(t, "normal", p.Pages())
	_, err = p.Reserve(context.Background())
	require.ErrorIs(t, err, producer.ErrClosed)
	require.ErrorIs(t, p.End(context.Background()), producer.ErrClosed)
	require.NoError(t, p.Close())
}

// TestSecondCloseWaitsForFirst: a Close that finds another Close under way
// returns only once that one removed everything, so a process that exits
// after its own (second) Close leaks nothing.
func TestSecondCloseWaitsForFirst(t *testing.T) {
	for range 20 {
		name := uniqueName(t)
		n, err := ringobj.For(name)
		require.NoError(t, err)
		p := openPatient(t, name)
		for range 2 {
			require.NoError(t, p.Send(context.Background(), []byte("x")))
		}
		go func() {
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			_ = p.Close()
		}()
		_, err = p.Reserve(context.Background()) // the ring is full: waits until Close
		require.ErrorIs(t, err, producer.ErrClosed)
		within(t, 5*time.Second, "the second Close", func() { require.NoError(t, p.Close()) })
		left, err := ringobj.Leftovers(n)
		require.NoError(t, err)
		require.Empty(t, left, "objects left when the second Close returned")
	}
}

// TestConsumerAttachingIsNotGone: a consumer that attaches while the
// producer judges whether one is there (between its look at the claim
// generation and its look at the lock) is a first consumer arriving, not
// one that left: End waits for it to drain instead of giving up with
// "consumer is gone" (with PeerTimeout 0). The hook attaches the consumer
// in exactly that window.
func TestConsumerAttachingIsNotGone(t *testing.T) {
	name := uniqueName(t)
	o := small()
	o.Wait = 10 * time.Second
	p, err := producer.Open(context.Background(), name, o)
	require.NoError(t, err)
	defer p.Close()
	for range 2 {
		require.NoError(t, p.Send(context.Background(), []byte("x")))
	}
	var c *consumer.Consumer
	var runRes <-chan error
	release := make(chan struct{})
	close(release)
	var once sync.Once
	internalhook.BetweenPeerLooks = func() {
		once.Do(func() { c, runRes = openConsumer(t, name, release) })
	}
	t.Cleanup(func() { internalhook.BetweenPeerLooks = nil })
	within(t, 10*time.Second, "End", func() { require.NoError(t, p.End(context.Background())) })
	require.NotNil(t, c, "the hook ran")
	select {
	case err := <-runRes:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("consumer Run did not return")
	}
	require.EqualValues(t, 2, c.Stats().Items)
	require.NoError(t, c.Close())
}
