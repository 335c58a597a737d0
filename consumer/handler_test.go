package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/shm"
)

// TestHandlerErrorStopsWithoutRelease: a handler error stops Run with that
// error and leaves the item unreleased, so the next consumer gets it again
// (and everything after it), while nothing before it is repeated.
func TestHandlerErrorStopsWithoutRelease(t *testing.T) {
	ctx := context.Background()
	name := uniqueName(t)
	p, err := producer.Open(ctx, name, producer.Options{Slots: 4, SlotSize: 4096, HugePages: shm.Off, PeerTimeout: time.Minute})
	require.NoError(t, err)
	defer p.Close()

	sendDone := make(chan error, 1)
	go func() {
		for i := range 20 {
			if err := p.Send(ctx, []byte(fmt.Sprint(i))); err != nil {
				sendDone <- err
				return
			}
		}
		sendDone <- p.End(ctx)
	}()

	boom := errors.New("boom")
	c1, err := consumer.Open(ctx, name, consumer.Options{Ordered: true})
	require.NoError(t, err)
	var first []uint64
	err = c1.Run(ctx, func(seq uint64, data []byte) error {
		if seq == 7 {
			return boom
		}
		first = append(first, seq)
		return nil
	})
	require.ErrorIs(t, err, boom)
	require.Contains(t, err.Error(), "handler for item 7")
	require.NoError(t, c1.Close())
	require.Len(t, first, 7)

	c2, err := consumer.Open(ctx, name, consumer.Options{Workers: 3})
	require.NoError(t, err)
	var mu sync.Mutex
	second := map[uint64]bool{}
	require.NoError(t, c2.Run(ctx, func(seq uint64, data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, fmt.Sprint(seq), string(data))
		second[seq] = true
		return nil
	}))
	require.NoError(t, c2.Close())
	require.NoError(t, <-sendDone)
	for seq := uint64(0); seq < 20; seq++ {
		require.Equal(t, seq >= 7, second[seq], "item %d", seq)
	}
}

// TestRunGracefulStop: cancelling Run's context stops acquiring, lets the
// items in flight finish and be released, and returns nil.
func TestRunGracefulStop(t *testing.T) {
	ctx := context.Background()
	name := uniqueName(t)
	p, err := producer.Open(ctx, name, producer.Options{Slots: 4, SlotSize: 4096, HugePages: shm.Off, PeerTimeout: time.Minute})
	require.NoError(t, err)
	defer p.Close()
	sendCtx, stopSend := context.WithCancel(ctx)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for p.Send(sendCtx, []byte("x")) == nil {
		}
	}()
	// A Producer is not safe for concurrent use: stop the sender before
	// the deferred Close.
	defer func() { stopSend(); <-sent }()
	c, err := consumer.Open(ctx, name, consumer.Options{Workers: 2})
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	var handled sync.WaitGroup
	handled.Add(1)
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- c.Run(runCtx, func(seq uint64, data []byte) error {
			once.Do(handled.Done)
			time.Sleep(time.Millisecond)
			return nil
		})
	}()
	handled.Wait()
	cancel()
	select {
	case err := <-done:
		// A graceful stop, reported as the context's end (the CLI maps it
		// to exit 0).
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop within 10s of its context's end")
	}
	st := c.Stats()
	require.NotZero(t, st.Items)
	require.Equal(t, st.Items, c.Ring().Tail(), "every handled item was released")
	require.NoError(t, c.Close())
}

// TestCloseStopsRun: Close from another goroutine stops a Run that sleeps
// on an empty ring or is inside the handler: Close waits for the handler,
// the item in it is released before Close returns (Close never detaches
// under Run), and Run returns ErrClosed.
func TestCloseStopsRun(t *testing.T) {
	for _, inHandler := range []bool{false, true} {
		t.Run(fmt.Sprintf("inHandler=%v", inHandler), func(t *testing.T) {
			ctx := context.Background()
			name := uniqueName(t)
			p, err := producer.Open(ctx, name, producer.Options{Slots: 4, SlotSize: 4096, HugePages: shm.Off, PeerTimeout: time.Minute})
			require.NoError(t, err)
			defer p.Close()
			c, err := consumer.Open(ctx, name, consumer.Options{Workers: 2})
			require.NoError(t, err)
			entered := make(chan struct{}, 1)
			release := make(chan struct{})
			runRes := make(chan error, 1)
			go func() {
				runRes <- c.Run(ctx, func(seq uint64, data []byte) error {
					entered <- struct{}{}
					<-release
					return nil
				})
			}()
			if inHandler {
				require.NoError(t, p.Send(ctx, []byte("x")))
				select {
				case <-entered:
				case <-time.After(5 * time.Second):
					t.Fatal("the handler was not called")
				}
			} else {
				time.Sleep(100 * time.Millisecond) // Run sleeps on the empty ring
			}
			closed := make(chan error, 1)
			go func() { closed <- c.Close() }()
			if inHandler {
				select {
				case err := <-closed:
					t.Fatalf("Close returned while the handler ran: %v", err)
				case <-time.After(100 * time.Millisecond):
				}
			}
			close(release)
			select {
			case err := <-closed:
				require.NoError(t, err)
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not return")
			}
			// Close returned after Run's last release: the count is final.
			want := uint64(0)
			if inHandler {
				want = 1
			}
			require.Equal(t, want, c.Stats().Items, "the item in the handler was released before Close returned")
			select {
			case err := <-runRes:
				require.ErrorIs(t, err, consumer.ErrClosed)
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return")
			}
			require.Equal(t, want, p.Ring().Tail())
			require.ErrorIs(t, c.Run(ctx, func(uint64, []byte) error { return nil }), consumer.ErrClosed)
		})
	}
}

// TestAPIErrors: a cancelled context is answered first by every call that
// takes one, even with a slot free or an item waiting; a second Run is
// ErrRan; ErrClosed says which side and matches os.ErrClosed; a lost peer
// is a *PeerLostError with its counts; Wait: NoWait does not wait.
func TestAPIErrors(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	name := uniqueName(t)

	_, err := producer.Open(cancelled, name, producer.Options{Slots: 2, SlotSize: 4096, HugePages: shm.Off})
	require.ErrorIs(t, err, context.Canceled)
	_, err = consumer.Open(cancelled, name, consumer.Options{})
	require.ErrorIs(t, err, context.Canceled)

	start := time.Now()
	_, err = consumer.Open(ctx, name, consumer.Options{Wait: consumer.NoWait})
	require.ErrorIs(t, err, consumer.ErrNoRing)
	require.Less(t, time.Since(start), time.Second, "NoWait waits for nothing")

	p, err := producer.Open(ctx, name, producer.Options{Slots: 2, SlotSize: 4096, HugePages: shm.Off, StreamItems: 5})
	require.NoError(t, err)
	require.ErrorIs(t, p.Send(cancelled, []byte("x")), context.Canceled, "Send with a free slot and a cancelled context")
	_, err = p.Reserve(cancelled)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, p.End(cancelled), context.Canceled)
	require.EqualValues(t, 0, p.Next(), "nothing was sent on a cancelled context")
	require.NoError(t, p.Send(ctx, []byte("one")))

	c, err := consumer.Open(ctx, name, consumer.Options{Workers: 1})
	require.NoError(t, err)
	require.ErrorIs(t, c.Run(cancelled, func(uint64, []byte) error { return nil }), context.Canceled)
	require.ErrorIs(t, c.Run(ctx, func(uint64, []byte) error { return nil }), consumer.ErrRan, "a second Run")
	require.NoError(t, c.Close())
	err = c.Run(ctx, func(uint64, []byte) error { return nil })
	require.ErrorIs(t, err, consumer.ErrClosed)
	require.ErrorIs(t, err, os.ErrClosed)
	require.Contains(t, err.Error(), "consumer is closed")

	// The consumer left without releasing: with PeerTimeout 0 the
	// producer's End gives up at once, saying what was delivered and lost.
	err = p.End(ctx)
	require.ErrorIs(t, err, producer.ErrPeerLost)
	var lost *producer.PeerLostError
	require.ErrorAs(t, err, &lost)
	require.EqualValues(t, 0, lost.Delivered)
	require.EqualValues(t, 5, lost.Lost, "1 committed and not released, 4 never sent")
	require.True(t, lost.LostKnown)
	t.Logf("%v", err)
	require.NoError(t, p.Close())
	err = p.Send(ctx, []byte("x"))
	require.ErrorIs(t, err, producer.ErrClosed)
	require.Contains(t, err.Error(), "producer is closed")
}
