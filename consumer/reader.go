package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Reader reads a ring's stream as bytes: the data of the verified items in
// sequence order, one after the other, with no boundaries between them. It
// is an io.Reader and an io.WriterTo over Next: an item is released as soon
// as its last byte was copied out (Read) or written (WriteTo), so the
// producer gets its slot back at once. Read returns io.EOF once the stream
// ended and every item was read; then the stream is drained (see Next).
//
// Costs: Read copies each byte once more, into the caller's buffer;
// WriteTo hands w the item's bytes directly (the slot, or with
// Options.Copy the verified private copy, which is what a writer that must
// see exactly the verified bytes wants). Use WriteTo (io.Copy does) where
// you can.
//
// A Reader is used by one goroutine; it does not close the Consumer.
type Reader struct {
	c   *Consumer
	ctx context.Context
	cur Item
	off int
	has bool // cur is an item not yet released
}

// Reader returns a Reader of c's stream whose reads end with ctx's error
// (wrapped) when ctx ends. A Consumer is read one way: through Next (and
// Readers), or by Run.
func (c *Consumer) Reader(ctx context.Context) *Reader {
	return &Reader{c: c, ctx: ctx}
}

// Read copies the stream's next bytes into p. Errors are those of Next:
// io.EOF at the end of the stream, ErrIntegrity, a *PeerLostError, ctx's.
func (r *Reader) Read(p []byte) (int, error) {
	for {
		if r.has && r.off < len(r.cur.Data) {
			n := copy(p, r.cur.Data[r.off:])
			r.off += n
			if r.off == len(r.cur.Data) {
				if err := r.release(); err != nil {
					return n, err
				}
			}
			return n, nil
		}
		if r.has {
			if err := r.release(); err != nil { // an empty item
				return 0, err
			}
		}
		if len(p) == 0 {
			return 0, nil
		}
		it, err := r.c.Next(r.ctx)
		if err != nil {
			return 0, err
		}
		r.cur, r.off, r.has = it, 0, true
	}
}

// WriteTo writes the rest of the stream to w, item by item, releasing each
// item once w took all of it, and returns the number of bytes written and
// nil at the end of the stream. An item w did not take whole is not
// released (the ring's next consumer gets it again) and its error is
// returned.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if r.has {
			n, err := w.Write(r.cur.Data[r.off:])
			total += int64(n)
			r.off += n
			if err == nil && r.off < len(r.cur.Data) {
				err = io.ErrShortWrite
			}
			if err != nil {
				return total, fmt.Errorf("write item %d: %w", r.cur.Seq, err)
			}
			if err := r.release(); err != nil {
				return total, err
			}
		}
		it, err := r.c.Next(r.ctx)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		r.cur, r.off, r.has = it, 0, true
	}
}

func (r *Reader) release() error {
	r.has = false
	err := r.cur.Release()
	r.cur = Item{}
	return err
}
