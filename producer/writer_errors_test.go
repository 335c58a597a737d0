package producer_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

// TestWriterAllocatesNothing: Write, Flush and ReadFrom allocate nothing per
// item while the ring has room (no side sleeps).
func TestWriterAllocatesNothing(t *testing.T) {
	name := uniqueName(t)
	p, err := producer.Open(context.Background(), name, producer.Options{
		Slots: 128, SlotSize: wslot, HugePages: shm.Off, Lock: shm.Off, Wait: 10 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := p.Writer(ctx)
	slot := testData(wslot)
	write := func(b []byte) {
		if _, err := w.Write(b); err != nil {
			panic(err)
		}
	}
	// A whole slot per Write: one item per run.
	require.Zero(t, testing.AllocsPerRun(20, func() { write(slot) }), "Write of a slot")
	// Small Writes into one slot, then Flush: one item per run.
	require.Zero(t, testing.AllocsPerRun(20, func() {
		for i := 0; i < 16; i++ {
			write(slot[i*100 : i*100+100])
		}
		if err := w.Flush(); err != nil {
			panic(err)
		}
	}), "small Writes and Flush")
	// ReadFrom of three slots: three items per run.
	src := testData(3 * wslot)
	br := bytes.NewReader(nil)
	require.Zero(t, testing.AllocsPerRun(20, func() {
		br.Reset(src)
		if _, err := w.ReadFrom(br); err != nil {
			panic(err)
		}
	}), "ReadFrom")
	require.EqualValues(t, 21+21+63, p.Next(), "items committed")
}

// TestWriterHonoursContext: once the Writer's context has ended, Write,
// ReadFrom and Close return its error without sending more, also when the
// context ends while they wait for a free slot; Flush still works.
func TestWriterHonoursContext(t *testing.T) {
	t.Run("cancelled-before", func(t *testing.T) {
		p := openPatient(t, uniqueName(t)) // 2 slots of 4096, no consumer
		defer p.Close()
		ctx, cancel := context.WithCancel(context.Background())
		w := p.Writer(ctx)
		n, err := w.Write([]byte("abc"))
		require.NoError(t, err)
		require.Equal(t, 3, n)
		cancel()
		n, err = w.Write([]byte("def"))
		require.ErrorIs(t, err, context.Canceled)
		require.Zero(t, n)
		m, err := w.ReadFrom(bytes.NewReader([]byte("ghi")))
		require.ErrorIs(t, err, context.Canceled)
		require.Zero(t, m)
		require.NoError(t, w.Flush(), "the end of ctx does not break the Writer")
		require.EqualValues(t, 1, p.Next(), "the partial item was committed by Flush, nothing else")
		require.ErrorIs(t, w.Close(), context.Canceled)
		require.ErrorIs(t, w.Close(), context.Canceled, "a second Close returns the first's error")
		require.False(t, p.Ended(), "Close with an ended context did not end the stream")
	})
	t.Run("close-flushes", func(t *testing.T) {
		p := openPatient(t, uniqueName(t))
		defer p.Close()
		ctx, cancel := context.WithCancel(context.Background())
		w := p.Writer(ctx)
		_, err := w.Write([]byte("abc"))
		require.NoError(t, err)
		cancel()
		require.ErrorIs(t, w.Close(), context.Canceled)
		require.EqualValues(t, 1, p.Next(), "Close committed the partial item before End")
	})
	t.Run("write-waiting", func(t *testing.T) {
		p := openPatient(t, uniqueName(t))
		defer p.Close()
		ctx, cancel := context.WithCancel(context.Background())
		w := p.Writer(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		var n int
		var err error
		within(t, 10*time.Second, "Write on a full ring after its context ended", func() {
			n, err = w.Write(make([]byte, 3*4096))
		})
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 2*4096, n, "two slots filled before the ring was full")
		require.EqualValues(t, 2, p.Next())
	})
	t.Run("readfrom-endless", func(t *testing.T) {
		p, err := producer.Open(context.Background(), uniqueName(t), producer.Options{
			Slots: 16, SlotSize: 4096, HugePages: shm.Off, Lock: shm.Off, Wait: time.Minute,
		})
		require.NoError(t, err)
		defer p.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		reads := 0
		endless := readerFunc(func(b []byte) (int, error) {
			reads++
			if reads == 3 {
				cancel()
			}
			return copy(b, "0123456789"), nil
		})
		w := p.Writer(ctx)
		var n int64
		within(t, 10*time.Second, "ReadFrom of an endless reader after its context ended", func() {
			n, err = w.ReadFrom(endless)
		})
		require.ErrorIs(t, err, context.Canceled)
		require.EqualValues(t, 30, n)
		require.Equal(t, 3, reads, "no Read after the context ended")
		require.EqualValues(t, 3, p.Next(), "three items, one per Read")
	})
	t.Run("readfrom-waiting", func(t *testing.T) {
		p := openPatient(t, uniqueName(t))
		defer p.Close()
		ctx, cancel := context.WithCancel(context.Background())
		w := p.Writer(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		var n int64
		var err error
		within(t, 10*time.Second, "ReadFrom on a full ring after its context ended", func() {
			n, err = w.ReadFrom(bytes.NewReader(make([]byte, 3*4096)))
		})
		require.ErrorIs(t, err, context.Canceled)
		require.EqualValues(t, 2*4096, n)
	})
	t.Run("close-waiting", func(t *testing.T) {
		p := openPatient(t, uniqueName(t))
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		w := p.Writer(ctx)
		_, err := w.Write([]byte("abc"))
		require.NoError(t, err)
		within(t, 10*time.Second, "Close waiting for a drain after its context ended", func() {
			require.ErrorIs(t, w.Close(), context.DeadlineExceeded)
		})
	})
}

// readerFunc is an io.Reader made of a function.
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// TestWriterPeerLost: a Write waiting on a full ring whose consumer goes
// returns an error matching ErrPeerLost that errors.As finds as a
// *PeerLostError; the Writer is broken after it (the same error again, and
// Close does not end the stream).
func TestWriterPeerLost(t *testing.T) {
	name := uniqueName(t)
	p, err := producer.Open(context.Background(), name, producer.Options{
		Slots: 2, SlotSize: wslot, HugePages: shm.Off, Lock: shm.Off, Wait: 10 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	c, err := consumer.Open(context.Background(), name, consumer.Options{Workers: 1, Wait: 10 * time.Second})
	require.NoError(t, err)
	errStop := errors.New("handler stops")
	runRes := make(chan error, 1)
	go func() {
		runRes <- c.Run(context.Background(), func(uint64, []byte) error { return errStop })
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := p.Writer(ctx)
	writeRes := make(chan error, 1)
	go func() {
		_, err := w.Write(make([]byte, 3*wslot)) // the third slot waits: nothing is released
		writeRes <- err
	}()
	select {
	case err := <-runRes:
		require.ErrorIs(t, err, errStop)
	case <-time.After(10 * time.Second):
		t.Fatal("consumer Run did not stop on its handler's error")
	}
	require.NoError(t, c.Close()) // the consumer goes; PeerTimeout is 0
	select {
	case err = <-writeRes:
	case <-time.After(10 * time.Second):
		t.Fatal("Write did not return within 10 s of the consumer's going")
	}
	require.ErrorIs(t, err, producer.ErrPeerLost)
	var pl *producer.PeerLostError
	require.ErrorAs(t, err, &pl)
	require.Zero(t, pl.Delivered)
	require.EqualValues(t, 2, pl.Lost)
	_, err2 := w.Write([]byte("x"))
	require.Equal(t, err, err2, "the Writer is broken: the same error again")
	require.Equal(t, err, w.Close(), "Close returns the error and does not end the stream")
	require.False(t, p.Ended())
}

// TestWriterDetectsTakenSlot: a Send between two Writes takes the slot the
// Writer was filling; the next Write says so instead of writing into a
// published slot.
func TestWriterDetectsTakenSlot(t *testing.T) {
	p := openPatient(t, uniqueName(t))
	defer p.Close()
	ctx := context.Background()
	w := p.Writer(ctx)
	_, err := w.Write([]byte("abc"))
	require.NoError(t, err)
	require.NoError(t, p.Send(ctx, []byte("x")))
	_, err = w.Write([]byte("def"))
	require.ErrorIs(t, err, ring.ErrNotReserved)
	require.Contains(t, err.Error(), "Flush the Writer")
	require.EqualValues(t, 1, p.Next(), "only Send's item was committed")
}

// TestWriterStopsOnClose: the Producer's Close from another goroutine ends
// a Write that waits for a free slot, which returns ErrClosed; the Writer
// keeps returning it, and Close of the Writer does not end the stream.
func TestWriterStopsOnClose(t *testing.T) {
	p := openPatient(t, uniqueName(t)) // 2 slots of 4096, no consumer
	w := p.Writer(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := w.Write(make([]byte, 3*4096))
		res <- err
	}()
	select {
	case err := <-res:
		t.Fatalf("Write returned before Close: %v", err)
	case <-time.After(150 * time.Millisecond):
	}
	within(t, 5*time.Second, "Close", func() { require.NoError(t, p.Close()) })
	var err error
	select {
	case err = <-res:
	case <-time.After(5 * time.Second):
		t.Fatal("Write did not return within 5 s of Close")
	}
	require.ErrorIs(t, err, producer.ErrClosed)
	_, err = w.Write([]byte("x"))
	require.ErrorIs(t, err, producer.ErrClosed)
	require.ErrorIs(t, w.Close(), producer.ErrClosed)
}
