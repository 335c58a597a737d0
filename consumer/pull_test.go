package consumer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/shm"
)

// sender is a producer in its own goroutine sending items then ending the
// stream; wait returns End's (or the first Send's) error, bounded.
type sender struct {
	p    *producer.Producer
	done chan error
}

func startSender(t *testing.T, name string, slots, size int, items [][]byte) *sender {
	t.Helper()
	ctx := context.Background()
	p, err := producer.Open(ctx, name, producer.Options{Slots: slots, SlotSize: size, HugePages: shm.Off, Lock: shm.Off, PeerTimeout: time.Minute})
	require.NoError(t, err)
	s := &sender{p: p, done: make(chan error, 1)}
	go func() {
		for _, it := range items {
			if err := p.Send(ctx, it); err != nil {
				s.done <- err
				return
			}
		}
		s.done <- p.End(ctx)
	}()
	t.Cleanup(func() {
		_ = p.Close()
		s.wait(t)
	})
	return s
}

func (s *sender) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup's look
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the producer did not finish within 30s")
		return nil
	}
}

// randomItems returns n items of random lengths up to size (some empty),
// each with its own bytes.
func randomItems(n, size int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([][]byte, n)
	for i := range out {
		l := r.IntN(size + 1)
		if i%7 == 3 {
			l = 0
		}
		b := make([]byte, l)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		out[i] = b
	}
	return out
}

// TestNextDeliversInOrder: the pull loop returns every item once, verified,
// in order, with copy and zero-copy, one worker and several; items may be
// held and released out of order; io.EOF ends it; then the producer's End
// returns (the stream was drained) and a second Release of an item fails.
func TestNextDeliversInOrder(t *testing.T) {
	for _, copyMode := range []bool{false, true} {
		for _, workers := range []int{1, 3} {
			t.Run(fmt.Sprintf("copy=%v/workers=%d", copyMode, workers), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				name := uniqueName(t)
				want := randomItems(60, 4096, uint64(workers))
				s := startSender(t, name, 4, 4096, want)
				c, err := consumer.Open(ctx, name, consumer.Options{Workers: workers, Copy: copyMode})
				require.NoError(t, err)
				defer c.Close()
				var held []consumer.Item
				var first consumer.Item
				for seq := 0; ; seq++ {
					it, err := c.Next(ctx)
					if err == io.EOF {
						require.Equal(t, len(want), seq, "io.EOF after %d items", seq)
						break
					}
					require.NoError(t, err)
					require.Equal(t, uint64(seq), it.Seq)
					require.True(t, bytes.Equal(want[seq], it.Data), "item %d's bytes", seq)
					require.Equal(t, crc32.Checksum(want[seq], crc32.MakeTable(crc32.Castagnoli)), it.CRC, "item %d's CRC", seq)
					held = append(held, it)
					// Hold up to two items; release the newer first.
					if len(held) == 2 {
						require.NoError(t, held[1].Release())
						require.NoError(t, held[0].Release())
						if seq == 1 {
							first = held[0]
						}
						held = held[:0]
					}
				}
				for _, it := range held {
					require.NoError(t, it.Release())
				}
				require.NoError(t, s.wait(t), "the producer's End: the stream must be drained")
				_, err = c.Next(ctx)
				require.Equal(t, io.EOF, err, "Next after the end")
				require.Error(t, first.Release(), "a second Release of item 0")
				require.Error(t, consumer.Item{}.Release(), "Release of a zero Item")
				st := c.Stats()
				require.Equal(t, uint64(len(want)), st.Items)
				var total uint64
				for _, w := range want {
					total += uint64(len(w))
				}
				// The ring's live counters say the same, both sides'.
				require.Equal(t, uint64(len(want)), st.Ring.ItemsCommitted)
				require.Equal(t, uint64(len(want)), st.Ring.ItemsReleased)
				require.Equal(t, total, st.Ring.BytesCommitted)
				require.Equal(t, total, st.Ring.BytesReleased)
				require.NoError(t, c.Close())
				require.Equal(t, st.Ring.ItemsReleased, c.Stats().Ring.ItemsReleased, "Stats after Close: the counters as Close left them")
			})
		}
	}
}

// TestOrderedVerifiesInParallel: with Options.Ordered the handler sees the
// items one at a time in sequence order, while the items behind the one in
// the handler are verified on other goroutines meanwhile (ordered mode
// used to mean one worker: every checksum on the handler's goroutine).
func TestOrderedVerifiesInParallel(t *testing.T) {
	var inHandler, overlapped atomic.Int64
	defer consumer.SetCheckHook(func(uint64) func() {
		if inHandler.Load() > 0 {
			overlapped.Add(1)
		}
		return func() {}
	})()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := uniqueName(t)
	want := randomItems(40, 64<<10, 1)
	s := startSender(t, name, 8, 64<<10, want)
	c, err := consumer.Open(ctx, name, consumer.Options{Workers: 4, Ordered: true, Copy: true})
	require.NoError(t, err)
	defer c.Close()
	next := uint64(0)
	var busy atomic.Int32
	require.NoError(t, c.Run(ctx, func(seq uint64, data []byte) error {
		if busy.Add(1) != 1 {
			t.Errorf("item %d: the handler runs twice at once", seq)
		}
		defer busy.Add(-1)
		inHandler.Add(1)
		defer inHandler.Add(-1)
		if seq != next {
			t.Errorf("item %d handed over when %d was due", seq, next)
		}
		next++
		if !bytes.Equal(want[seq], data) {
			t.Errorf("item %d's bytes", seq)
		}
		time.Sleep(2 * time.Millisecond) // items pile up behind this one
		return nil
	}))
	require.NoError(t, s.wait(t))
	require.Equal(t, uint64(len(want)), next)
	t.Logf("%d of %d verifications ran while the handler was busy", overlapped.Load(), len(want))
	require.Greater(t, overlapped.Load(), int64(len(want)/4), "verification is serialized with the handler")
}

// TestNextContextAndClose: a context that ended makes Next return its
// error (wrapped) without ending the stream, so Next goes on with another
// context; Close from another goroutine ends a Next asleep on an empty
// ring with ErrClosed; Release after Close fails; Run after Next, and Next
// after Run, return ErrRan.
func TestNextContextAndClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := uniqueName(t)
	p, err := producer.Open(ctx, name, producer.Options{Slots: 2, SlotSize: 4096, HugePages: shm.Off, Lock: shm.Off, PeerTimeout: time.Minute})
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Send(ctx, []byte("one")))

	c, err := consumer.Open(ctx, name, consumer.Options{})
	require.NoError(t, err)
	dead, stop := context.WithCancel(ctx)
	stop()
	_, err = c.Next(dead)
	require.ErrorIs(t, err, context.Canceled)
	it, err := c.Next(ctx)
	require.NoError(t, err, "Next with a live context after a cancelled one")
	require.Equal(t, "one", string(it.Data))
	require.NoError(t, it.Release())

	short, stopShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stopShort()
	_, err = c.Next(short)
	require.ErrorIs(t, err, context.DeadlineExceeded, "Next on an empty ring until the deadline")
	require.ErrorIs(t, c.Run(ctx, func(uint64, []byte) error { return nil }), consumer.ErrRan)

	require.NoError(t, p.Send(ctx, []byte("two")))
	held, err := c.Next(ctx)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := c.Next(ctx)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, c.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, consumer.ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not return within 10s of Close")
	}
	require.ErrorIs(t, held.Release(), consumer.ErrClosed)
	_, err = c.Next(ctx)
	require.ErrorIs(t, err, consumer.ErrClosed)

	name2 := uniqueName(t)
	s := startSender(t, name2, 2, 4096, [][]byte{[]byte("x")})
	c2, err := consumer.Open(ctx, name2, consumer.Options{})
	require.NoError(t, err)
	defer c2.Close()
	require.NoError(t, c2.Run(ctx, func(uint64, []byte) error { return nil }))
	_, err = c2.Next(ctx)
	require.ErrorIs(t, err, consumer.ErrRan)
	require.NoError(t, s.wait(t))
}

// TestReaderRoundTrip: the stream read through Reader, with Read (through
// testing/iotest's awkward readers) and WriteTo, is the concatenation of
// the items, for items of awkward sizes: empty, one byte, the slot size.
func TestReaderRoundTrip(t *testing.T) {
	const size = 4096
	items := [][]byte{{}, {1}, bytes.Repeat([]byte{2}, size), {}, bytes.Repeat([]byte{3}, size-1), {4}}
	items = append(items, randomItems(30, size, 9)...)
	var all []byte
	for _, it := range items {
		all = append(all, it...)
	}
	for _, how := range []string{"testreader", "onebyte", "half", "writeto", "readall"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			name := uniqueName(t)
			s := startSender(t, name, 4, size, items)
			c, err := consumer.Open(ctx, name, consumer.Options{Workers: 2, Copy: how == "writeto"})
			require.NoError(t, err)
			defer c.Close()
			r := c.Reader(ctx)
			var got []byte
			switch how {
			case "testreader":
				require.NoError(t, iotest.TestReader(r, all))
				got = all
			case "onebyte":
				got, err = io.ReadAll(iotest.OneByteReader(r))
			case "half":
				got, err = io.ReadAll(iotest.HalfReader(r))
			case "writeto":
				var b bytes.Buffer
				var n int64
				n, err = r.WriteTo(&b)
				require.Equal(t, int64(len(all)), n)
				got = b.Bytes()
			case "readall":
				got, err = io.ReadAll(r)
			}
			require.NoError(t, err)
			require.Equal(t, sha256.Sum256(all), sha256.Sum256(got))
			require.NoError(t, s.wait(t), "the producer's End")
		})
	}
}

// TestReaderWriteError: an item the writer did not take whole is not
// released, and WriteTo returns the writer's error.
func TestReaderWriteError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := uniqueName(t)
	p, err := producer.Open(ctx, name, producer.Options{Slots: 4, SlotSize: 4096, HugePages: shm.Off, Lock: shm.Off, PeerTimeout: time.Minute})
	require.NoError(t, err)
	defer p.Close()
	for i := range 3 {
		require.NoError(t, p.Send(ctx, bytes.Repeat([]byte{byte(i)}, 100)))
	}
	c, err := consumer.Open(ctx, name, consumer.Options{})
	require.NoError(t, err)
	defer c.Close()
	boom := errors.New("disk full")
	w := &failAfter{n: 150, err: boom}
	n, err := c.Reader(ctx).WriteTo(w)
	require.ErrorIs(t, err, boom)
	require.Equal(t, int64(150), n)
	require.Equal(t, uint64(1), c.Ring().Tail(), "item 0 released, item 1 (taken in part) not")
}

type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(b []byte) (int, error) {
	if len(b) <= f.n {
		f.n -= len(b)
		return len(b), nil
	}
	n := f.n
	f.n = 0
	return n, f.err
}

// TestNextAllocatesNothing: the pull loop allocates nothing per item in a
// steady state, zero-copy and copy mode.
func TestNextAllocatesNothing(t *testing.T) {
	for _, copyMode := range []bool{false, true} {
		t.Run(fmt.Sprintf("copy=%v", copyMode), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			name := uniqueName(t)
			p, err := producer.Open(ctx, name, producer.Options{Slots: 4, SlotSize: 4096, HugePages: shm.Off, Lock: shm.Off, PeerTimeout: time.Minute})
			require.NoError(t, err)
			defer p.Close()
			c, err := consumer.Open(ctx, name, consumer.Options{Workers: 2, Copy: copyMode})
			require.NoError(t, err)
			defer c.Close()
			data := make([]byte, 4096)
			var mu sync.Mutex
			step := func() {
				mu.Lock()
				defer mu.Unlock()
				require.NoError(t, p.Send(ctx, data))
				require.NoError(t, p.Send(ctx, data))
				for range 2 {
					it, err := c.Next(ctx)
					require.NoError(t, err)
					require.NoError(t, it.Release())
				}
			}
			step() // warm up: buffers, the helpers
			allocs := testing.AllocsPerRun(200, step)
			require.Zero(t, allocs, "allocations per two items")
		})
	}
}

// TestBeforeDrainComesBeforeTheProducerIsTold: BeforeDrain runs once, after
// the last item of an ended stream is released and before the producer's End
// returns (End waits for the drain), through Next and through Run.
func TestBeforeDrainComesBeforeTheProducerIsTold(t *testing.T) {
	for _, how := range []string{"next", "run", "run-ordered"} {
		t.Run(how, func(t *testing.T) {
			name := uniqueName(t)
			items := randomItems(20, 4096, 11)
			s := startSender(t, name, 4, 4096, items)
			var calls atomic.Int32
			var endReturned atomic.Bool
			var c *consumer.Consumer
			var problems []string // the hook's findings, checked on the test's goroutine
			c, err := consumer.Open(context.Background(), name, consumer.Options{Workers: 2, Ordered: how == "run-ordered",
				BeforeDrain: func() error {
					if got := c.Stats().Items; got != uint64(len(items)) {
						problems = append(problems, fmt.Sprintf("BeforeDrain after %d of %d items were released", got, len(items)))
					}
					time.Sleep(100 * time.Millisecond) // the producer must still be waiting
					if endReturned.Load() {
						problems = append(problems, "the producer's End returned before BeforeDrain did")
					}
					calls.Add(1)
					return nil
				}})
			require.NoError(t, err)
			defer c.Close()
			go func() {
				_ = s.wait(t)
				endReturned.Store(true)
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if how == "next" {
				for {
					it, err := c.Next(ctx)
					if err == io.EOF {
						break
					}
					require.NoError(t, err)
					require.NoError(t, it.Release())
				}
			} else {
				require.NoError(t, c.Run(ctx, func(uint64, []byte) error { return nil }))
			}
			require.Empty(t, problems)
			require.NoError(t, s.wait(t))
			require.Equal(t, int32(1), calls.Load(), "BeforeDrain calls")
		})
	}
}

// TestBeforeDrainErrorLeavesTheRingToASuccessor: a BeforeDrain that fails
// leaves the drain untold: Next returns the error, the producer keeps
// waiting, and the ring's next consumer finds the stream ended, calls its own
// BeforeDrain and drains it; then the producer's End returns.
func TestBeforeDrainErrorLeavesTheRingToASuccessor(t *testing.T) {
	name := uniqueName(t)
	items := randomItems(10, 1024, 12)
	s := startSender(t, name, 4, 4096, items)
	boom := errors.New("the end could not be recorded")
	c1, err := consumer.Open(context.Background(), name, consumer.Options{BeforeDrain: func() error { return boom }})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	for {
		it, err := c1.Next(ctx)
		if err != nil {
			require.ErrorIs(t, err, boom, "Next after a failed BeforeDrain")
			break
		}
		require.NoError(t, it.Release())
		n++
	}
	require.Equal(t, len(items), n)
	select {
	case err := <-s.done:
		t.Fatalf("the producer's End returned (%v) although the drain was never told", err)
	case <-time.After(200 * time.Millisecond):
	}
	require.NoError(t, c1.Close())

	var called atomic.Bool
	c2, err := consumer.Open(context.Background(), name, consumer.Options{BeforeDrain: func() error { called.Store(true); return nil }})
	require.NoError(t, err)
	defer c2.Close()
	_, err = c2.Next(ctx)
	require.Equal(t, io.EOF, err, "the successor finds the ended, released stream")
	require.True(t, called.Load(), "the successor's BeforeDrain")
	require.NoError(t, s.wait(t))
}

// TestNextIntoGathers: with Copy, NextInto puts each item that fits into the
// caller's buffer (gathering consecutive items one after another, also the
// ones helpers verified ahead), verified; an item that does not fit comes
// as Next's; Release leaves the caller's buffer alone (the consumer never
// writes into it again); without Copy it is Next.
func TestNextIntoGathers(t *testing.T) {
	for _, copyMode := range []bool{true, false} {
		for _, workers := range []int{1, 3} {
			t.Run(fmt.Sprintf("copy=%v/workers=%d", copyMode, workers), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				name := uniqueName(t)
				want := randomItems(80, 4096, uint64(10+workers))
				s := startSender(t, name, 8, 4096, want)
				c, err := consumer.Open(ctx, name, consumer.Options{Workers: workers, Copy: copyMode})
				require.NoError(t, err)
				defer c.Close()
				buf := make([]byte, 0, 3*4096)
				var done []byte // what the gathered items were, to check buf is never written later
				var gathered []int
				fitted := 0
				for seq := 0; ; seq++ {
					if cap(buf)-len(buf) < 1000 { // start again in a new buffer
						done = append(done, buf...)
						buf = make([]byte, 0, 3*4096)
					}
					dst := buf[len(buf):cap(buf)]
					it, err := c.NextInto(ctx, dst)
					if err == io.EOF {
						require.Equal(t, len(want), seq)
						break
					}
					require.NoError(t, err)
					require.Equal(t, uint64(seq), it.Seq)
					require.True(t, bytes.Equal(want[seq], it.Data), "item %d's bytes", seq)
					in := len(it.Data) > 0 && &it.Data[0] == &dst[0]
					if len(it.Data) <= len(dst) && len(it.Data) > 0 {
						fitted++
						require.Equal(t, copyMode, in, "item %d (%d bytes, %d free): in the caller's buffer only with Copy", seq, len(it.Data), len(dst))
					} else {
						require.False(t, in, "item %d does not fit but is in the caller's buffer", seq)
					}
					if in {
						gathered = append(gathered, seq)
						buf = buf[:len(buf)+len(it.Data)]
					}
					require.NoError(t, it.Release())
				}
				done = append(done, buf...)
				require.NoError(t, s.wait(t))
				// The buffers hold the gathered items, in order, untouched since
				// their release.
				var wantDone []byte
				for _, seq := range gathered {
					wantDone = append(wantDone, want[seq]...)
				}
				require.True(t, bytes.Equal(wantDone, done), "the caller's buffers after the stream: not the %d items gathered", len(gathered))
				if copyMode {
					require.Greater(t, len(gathered), 20, "items gathered into the caller's buffers")
				} else {
					require.Empty(t, gathered)
				}
				require.Greater(t, fitted, 20)
			})
		}
	}
}
