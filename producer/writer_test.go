package producer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/shm"
)

const wslot = 4096 // the slot size of the Writer tests

// item is one delivered item.
type item struct {
	seq  uint64
	data []byte
}

// collector is an in-process consumer that keeps a copy of every item.
type collector struct {
	c     *consumer.Consumer
	mu    sync.Mutex
	items []item
	res   chan error
}

// openWriterPair opens a producer on a fresh ring of slots slots of wslot
// bytes and an in-process consumer that collects what it delivers; both are
// closed at the end of the test. The context returned, for the producer's
// calls, ends after 30 s or as soon as the consumer's Run fails, so that a
// producer never waits long for a consumer that stopped.
func openWriterPair(t *testing.T, slots int) (*producer.Producer, *collector, context.Context) {
	t.Helper()
	name := uniqueName(t)
	p, err := producer.Open(context.Background(), name, producer.Options{
		Slots: slots, SlotSize: wslot, HugePages: shm.Off, Lock: shm.Off, Wait: 10 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	c, err := consumer.Open(context.Background(), name, consumer.Options{Workers: 1, Wait: 10 * time.Second})
	require.NoError(t, err)
	col := &collector{c: c, res: make(chan error, 1)}
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	go func() {
		err := c.Run(context.Background(), func(seq uint64, data []byte) error {
			col.mu.Lock()
			col.items = append(col.items, item{seq, bytes.Clone(data)})
			col.mu.Unlock()
			return nil
		})
		if err != nil {
			cancel()
		}
		col.res <- err
	}()
	return p, col, ctx
}

// requireOK fails the test if err (of the producer's call what) is not
// nil, with the consumer's error when its Run failed.
func (col *collector) requireOK(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		return
	}
	select {
	case rerr := <-col.res:
		t.Fatalf("%s: %v; the consumer's Run returned: %v", what, err, rerr)
	case <-time.After(time.Second):
		t.Fatalf("%s: %v", what, err)
	}
}

// wait waits (bounded) for the consumer's Run to return nil and returns the
// items in sequence order, which it checks are dense from 0.
func (col *collector) wait(t *testing.T) []item {
	t.Helper()
	select {
	case err := <-col.res:
		require.NoError(t, err, "consumer Run")
	case <-time.After(30 * time.Second):
		t.Fatal("consumer Run did not return within 30 s of the stream's end")
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	items := slices.Clone(col.items)
	slices.SortFunc(items, func(a, b item) int { return int(a.seq) - int(b.seq) })
	for i, it := range items {
		require.EqualValues(t, i, it.seq, "sequence numbers are dense from 0")
	}
	return items
}

// requireSameBytes checks that the items hold data, in order (by SHA-256).
func requireSameBytes(t *testing.T, data []byte, items []item) {
	t.Helper()
	h := sha256.New()
	n := 0
	for _, it := range items {
		h.Write(it.data)
		n += len(it.data)
	}
	require.Equal(t, len(data), n, "bytes delivered")
	require.Equal(t, sha256.Sum256(data), [32]byte(h.Sum(nil)), "SHA-256 of what was delivered")
}

// lengths returns the items' lengths.
func lengths(items []item) []int {
	var l []int
	for _, it := range items {
		l = append(l, len(it.data))
	}
	return l
}

// testData returns n pseudo-random bytes.
func testData(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	_, _ = r.Read(b)
	return b
}

// awkwardSizes are the stream lengths of the round trips.
var awkwardSizes = []int{0, 1, wslot - 1, wslot, wslot + 1, 3*wslot + wslot/2}

// writerOnly hides a Writer's ReadFrom, so io.Copy calls Write.
type writerOnly struct{ io.Writer }

// TestWriterRoundTrip: a stream written with Write (whole, in random
// pieces, or through io.Copy from testing/iotest readers, which writes what
// each read returned) arrives whole and in order, cut into items of the slot
// size but for the last.
func TestWriterRoundTrip(t *testing.T) {
	feeds := map[string]func(w *producer.Writer, data []byte) error{
		"whole": func(w *producer.Writer, data []byte) error {
			n, err := w.Write(data)
			if err == nil && n != len(data) {
				err = fmt.Errorf("Write returned %d of %d", n, len(data))
			}
			return err
		},
		"random-pieces": func(w *producer.Writer, data []byte) error {
			r := rand.New(rand.NewPCG(1, uint64(len(data))))
			for len(data) > 0 {
				k := min(len(data), r.IntN(2*wslot))
				if _, err := w.Write(data[:k]); err != nil {
					return err
				}
				data = data[k:]
			}
			return nil
		},
		"OneByteReader": func(w *producer.Writer, data []byte) error {
			_, err := io.Copy(writerOnly{w}, iotest.OneByteReader(bytes.NewReader(data)))
			return err
		},
		"HalfReader": func(w *producer.Writer, data []byte) error {
			_, err := io.Copy(writerOnly{w}, iotest.HalfReader(bytes.NewReader(data)))
			return err
		},
		"DataErrReader": func(w *producer.Writer, data []byte) error {
			_, err := io.Copy(writerOnly{w}, iotest.DataErrReader(bytes.NewReader(data)))
			return err
		},
	}
	for _, size := range awkwardSizes {
		for fname, feed := range feeds {
			t.Run(fmt.Sprintf("%s-%d", fname, size), func(t *testing.T) {
				p, col, ctx := openWriterPair(t, 4)
				data := testData(size)
				w := p.Writer(ctx)
				col.requireOK(t, feed(w, data), "write")
				col.requireOK(t, w.Close(), "close")
				items := col.wait(t)
				requireSameBytes(t, data, items)
				for i, it := range items {
					if i < len(items)-1 {
						require.Equal(t, wslot, len(it.data), "item %d of %d is a whole slot", i, len(items))
					}
				}
				require.Equal(t, (size+wslot-1)/wslot, len(items), "items")
				require.NoError(t, w.Close(), "a second Close returns what the first did")
				_, err := w.Write([]byte("x"))
				require.ErrorIs(t, err, producer.ErrClosed)
			})
		}
	}
}

// readRecorder records the length of every Read that returned bytes.
type readRecorder struct {
	r     io.Reader
	reads []int
}

func (rr *readRecorder) Read(b []byte) (int, error) {
	n, err := rr.r.Read(b)
	if n > 0 {
		rr.reads = append(rr.reads, n)
	}
	return n, err
}

// TestReadFromRoundTrip: ReadFrom (what io.Copy uses) commits what each Read
// returned as one item: the stream arrives whole and in order, with the
// reads' boundaries as item boundaries; a reader's error other than io.EOF
// comes back after the bytes before it were committed.
func TestReadFromRoundTrip(t *testing.T) {
	errBoom := errors.New("boom")
	readers := map[string]struct {
		mk   func(data []byte) io.Reader
		fail error
	}{
		"bytes.Reader":  {mk: func(d []byte) io.Reader { return bytes.NewReader(d) }},
		"OneByteReader": {mk: func(d []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(d)) }},
		"HalfReader":    {mk: func(d []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(d)) }},
		"DataErrReader": {mk: func(d []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(d)) }},
		"ErrReader": {
			mk:   func(d []byte) io.Reader { return io.MultiReader(bytes.NewReader(d), iotest.ErrReader(errBoom)) },
			fail: errBoom,
		},
	}
	for _, size := range awkwardSizes {
		for rname, rd := range readers {
			t.Run(fmt.Sprintf("%s-%d", rname, size), func(t *testing.T) {
				p, col, ctx := openWriterPair(t, 16)
				data := testData(size)
				rec := &readRecorder{r: rd.mk(data)}
				w := p.Writer(ctx)
				n, err := w.ReadFrom(rec)
				if rd.fail != nil {
					require.ErrorIs(t, err, rd.fail)
				} else {
					col.requireOK(t, err, "read from")
				}
				require.EqualValues(t, size, n, "bytes ReadFrom committed")
				col.requireOK(t, w.Close(), "close")
				items := col.wait(t)
				requireSameBytes(t, data, items)
				require.Equal(t, rec.reads, lengths(items), "one item per Read")
			})
		}
	}
}

// TestWriterKeepsOrderAcrossReadFrom: a partial item of Write is committed
// before ReadFrom reads, so the bytes keep their order, and the items are:
// the partial item, one per Read, then Write's.
func TestWriterKeepsOrderAcrossReadFrom(t *testing.T) {
	p, col, ctx := openWriterPair(t, 4)
	data := testData(wslot + 100 + 5000 + 3000)
	w := p.Writer(ctx)
	_, err := w.Write(data[:wslot+100])
	col.requireOK(t, err, "write")
	rec := &readRecorder{r: iotest.HalfReader(bytes.NewReader(data[wslot+100 : wslot+5100]))}
	n, err := w.ReadFrom(rec)
	col.requireOK(t, err, "read from")
	require.EqualValues(t, 5000, n)
	_, err = w.Write(data[wslot+5100:])
	col.requireOK(t, err, "write")
	col.requireOK(t, w.Close(), "close")
	items := col.wait(t)
	requireSameBytes(t, data, items)
	want := append([]int{wslot, 100}, rec.reads...)
	want = append(want, 3000)
	require.Equal(t, want, lengths(items))
}
