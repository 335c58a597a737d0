package producer_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/shm"
)

// shortReader returns at most max bytes per Read: a pipe that holds max.
type shortReader struct {
	r   io.Reader
	max int
}

func (s shortReader) Read(b []byte) (int, error) { return s.r.Read(b[:min(len(b), s.max)]) }

// TestReadFromItemsAreWhatWasReady: with slots larger than ReadFrom's read
// buffer, reads that come back full are gathered into one item until the
// slot is full (a file fills whole slots), and a read that comes back short
// ends the item (a pipe's bytes do not wait for more input).
func TestReadFromItemsAreWhatWasReady(t *testing.T) {
	const slot = 1 << 20
	data := testData(2*slot + slot/2)
	for _, tc := range []struct {
		name string
		r    func() io.Reader
		want []int
	}{
		{"file", func() io.Reader { return bytes.NewReader(data) }, []int{slot, slot, slot / 2}},
		{"pipe", func() io.Reader { return shortReader{bytes.NewReader(data), 100_000} }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			name := uniqueName(t)
			p, err := producer.Open(ctx, name, producer.Options{Slots: 4, SlotSize: slot, HugePages: shm.Off, Lock: shm.Off, Wait: 10 * time.Second})
			require.NoError(t, err)
			defer p.Close()
			c, err := consumer.Open(ctx, name, consumer.Options{Wait: 10 * time.Second})
			require.NoError(t, err)
			defer c.Close()
			var got []byte
			var lens []int
			done := make(chan error, 1)
			go func() {
				for {
					it, err := c.Next(ctx)
					if err == io.EOF {
						done <- nil
						return
					}
					if err != nil {
						done <- err
						return
					}
					got = append(got, it.Data...)
					lens = append(lens, len(it.Data))
					if err := it.Release(); err != nil {
						done <- err
						return
					}
				}
			}()
			w := p.Writer(ctx)
			n, err := w.ReadFrom(tc.r())
			require.NoError(t, err)
			require.Equal(t, int64(len(data)), n)
			require.NoError(t, w.Close())
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("the consumer did not finish within 30s")
			}
			require.True(t, bytes.Equal(data, got), "the bytes, in order")
			want := tc.want
			if want == nil {
				for left := len(data); left > 0; left -= 100_000 {
					want = append(want, min(left, 100_000))
				}
			}
			require.Equal(t, want, lens, "item lengths")
		})
	}
}
