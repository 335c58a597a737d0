package producer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/shmpc/shmpc/internal/crc32c"
	"github.com/shmpc/shmpc/ring"
)

// Writer sends a byte stream through a Producer: it is an io.Writer, an
// io.ReaderFrom (so io.Copy reads straight into the ring's slots) and an
// io.Closer whose Close ends the stream. Producer.Writer returns one.
//
// Write fills slots: it copies the bytes into the slot it holds, at the
// offset reached, checksumming them in the same pass (as Send does), and
// commits each slot that becomes full. So a stream written with Write is
// cut into items of the slot size, but for the last one, whatever the sizes
// of the writes; Flush commits a partial item at once, Close does it before
// ending the stream.
//
// ReadFrom reads through a small cached buffer and copies on into slots:
// each item is what the reader had ready, up to the slot size (see ReadFrom).
//
// A Writer is not safe for concurrent use, and belongs to the goroutine that
// uses its Producer. While a Write has left a partial item, send only
// through the Writer; after Flush or ReadFrom, which leave nothing pending,
// the Producer's own methods may be used again (a Write that finds its
// partial item taken by them returns an error matching ring.ErrNotReserved).
// The Producer's Close from another goroutine makes a call that waits return
// ErrClosed, as it does for Reserve.
//
// Errors: a call returns its context's error, wrapped, once the context has
// ended (before any work when it had ended already): Write and ReadFrom then
// send nothing more. The producer's errors (ErrPeerLost, ErrClosed,
// ErrEnded, ...) come wrapped, and match with errors.Is; after such an error
// the Writer is broken: every later call returns the same error, and Close
// does not end the stream.
type Writer struct {
	p   *Producer
	ctx context.Context

	buf []byte // the slot being filled by Write; nil when none is
	seq uint64 // its item number
	off int    // bytes of buf written
	crc uint32 // CRC32C of buf[:off], taken from the data as it was copied in

	piece []byte // ReadFrom's private read buffer, made at its first call

	err      error // the first error other than the context's: sticky
	closed   bool
	closeErr error
}

// Writer returns a Writer that sends a byte stream through p. ctx bounds
// every call of the Writer, Close (which waits for the consumer to drain the
// stream) included.
func (p *Producer) Writer(ctx context.Context) *Writer {
	return &Writer{p: p, ctx: ctx}
}

// errWriterSlot: a partial item of the Writer was committed or dropped by a
// direct call of the Producer.
var errWriterSlot = fmt.Errorf("the Writer's partial item was committed or dropped by another call of the Producer; Flush the Writer before using the Producer directly: %w", ring.ErrNotReserved)

// Write copies b into the ring's slots, committing each slot it fills; the
// bytes of a slot not yet full stay there until a later Write fills it, or
// Flush or Close commits them. It returns how many bytes of b went into
// slots, and an error when that is less than len(b): when ctx ended, or
// Reserve failed waiting for a free slot (ErrPeerLost, ErrClosed, ...).
func (w *Writer) Write(b []byte) (int, error) {
	if err := w.usable("write"); err != nil {
		return 0, err
	}
	if err := w.p.enter("write"); err != nil {
		return 0, w.fail("write", err)
	}
	defer w.p.leave()
	if err := w.ctx.Err(); err != nil {
		return 0, w.fail("write", err)
	}
	if err := w.own(); err != nil {
		return 0, w.fail("write", err)
	}
	n := 0
	for n < len(b) {
		if w.buf == nil {
			s, err := w.p.reserve(w.ctx)
			if err != nil {
				return n, w.fail("write", err)
			}
			w.buf, w.seq, w.off, w.crc = s.Buf, s.Seq, 0, 0
		}
		k := min(len(w.buf)-w.off, len(b)-n)
		w.crc = crc32c.CopyUpdate(w.crc, w.buf[w.off:w.off+k], b[n:n+k])
		w.off += k
		n += k
		if w.off == len(w.buf) {
			if err := w.commit(); err != nil {
				return n, w.fail("write", err)
			}
		}
	}
	return n, nil
}

// Flush commits the partial item a Write left, if any, as one item. It does
// not wait.
func (w *Writer) Flush() error {
	if err := w.usable("flush"); err != nil {
		return err
	}
	if err := w.p.enter("flush"); err != nil {
		return w.fail("flush", err)
	}
	defer w.p.leave()
	if err := w.flush(); err != nil {
		return w.fail("flush", err)
	}
	return nil
}

// ReadFrom reads r until io.EOF and sends what it reads. Each item is what
// r had ready, up to the slot size: ReadFrom reads into a private buffer of
// readPiece bytes (small enough to stay in this core's cache), copies each
// piece into the reserved slot with the fused copy-and-CRC32C kernel (one
// pass, the checksum taken from the private bytes, as Send's), and ends the
// item when the slot is full, a Read returns less than it asked for (a pipe
// with nothing more in it at that moment), or r ends. So a file gives whole
// slots, a pipe what it held, a reader that returns one byte at a time
// single bytes: no byte waits in a slot for more input. A Read that returns
// nothing commits nothing. A partial item that Write left is committed
// first, so the bytes keep their order.
//
// Reading the kernel's data into a cached buffer and copying it on costs
// less than reading it straight into the slot: the kernel's copy into a
// slot that is not in the cache (every slot of a large ring) is the slow
// part, twice as slow as the copy into a cached buffer plus the fused copy.
//
// ReadFrom returns the number of bytes committed, and nil at io.EOF. r's
// other errors come back as r returned them, after the bytes read before
// were committed; the producer's come wrapped, as Write's. ctx is looked at
// before every item, so a cancelled ctx stops ReadFrom at the next item; a
// Read that blocks is not interrupted by it (close the reader, or give it a
// deadline), and the Producer's Close from another goroutine waits for that
// Read to return.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if err := w.usable("read from"); err != nil {
		return 0, err
	}
	if err := w.p.enter("read from"); err != nil {
		return 0, w.fail("read from", err)
	}
	defer w.p.leave()
	if err := w.flush(); err != nil {
		return 0, w.fail("read from", err)
	}
	if w.piece == nil {
		w.piece = make([]byte, readPiece)
	}
	var total int64
	for empty := 0; ; {
		s, err := w.p.reserve(w.ctx) // looks at ctx first
		if err != nil {
			return total, w.fail("read from", err)
		}
		off, crc := 0, uint32(0)
		var rerr error
		for off < len(s.Buf) {
			want := min(len(w.piece), len(s.Buf)-off)
			var n int
			n, rerr = r.Read(w.piece[:want])
			if n < 0 || n > want {
				return total, fmt.Errorf("read from: the reader returned %d for a buffer of %d bytes: %w", n, want, errBadRead)
			}
			crc = crc32c.CopyUpdate(crc, s.Buf[off:], w.piece[:n])
			off += n
			if rerr != nil || n < want {
				break
			}
		}
		if off > 0 {
			if err := w.p.commitCRC(off, crc); err != nil {
				return total, w.fail("read from", err)
			}
			total += int64(off)
			empty = 0
		} else if rerr == nil {
			// The slot stays reserved (the next Reserve returns it).
			if empty++; empty >= maxEmptyReads {
				return total, io.ErrNoProgress
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// readPiece is the size of ReadFrom's private read buffer: a read into it
// is a copy into cache, and the fused kernel takes it on into the slot
// while it is still there.
const readPiece = 256 << 10

// maxEmptyReads is how many Reads in a row may return neither bytes nor an
// error before ReadFrom gives up with io.ErrNoProgress (as bufio does).
const maxEmptyReads = 100

// errBadRead: a Reader returned a count outside its buffer.
var errBadRead = errors.New("invalid read count")

// Close commits the partial item a Write left, then ends the stream: it
// calls the Producer's End with the Writer's context, which waits until the
// consumer has every item and removes the ring, and returns End's error
// (ErrPeerLost when the consumer is gone, ctx's error when ctx ends first).
// After an earlier error of the producer Close returns that error and does
// not end the stream. Close does not close the Producer: defer its Close as
// usual. A second Close returns what the first returned; other calls after
// Close return an error matching ErrClosed.
//
// To end the stream even though ctx has ended (a signal that means "stop
// here, deliver what was sent"), call Flush and then the Producer's End with
// another context.
func (w *Writer) Close() error {
	if w.closed {
		return w.closeErr
	}
	w.closed = true
	w.closeErr = w.close()
	return w.closeErr
}

func (w *Writer) close() error {
	if w.err != nil {
		return w.err
	}
	if err := w.p.enter("close writer"); err != nil {
		return w.fail("close writer", err)
	}
	err := w.flush()
	w.p.leave() // End counts itself in
	if err != nil {
		return w.fail("close writer", err)
	}
	return w.p.End(w.ctx)
}

// usable returns the error of a call on a closed or broken Writer.
func (w *Writer) usable(op string) error {
	if w.closed {
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	return w.err
}

// own checks that the slot the Writer fills is still the Producer's
// reserved one (no Send or Commit took it).
func (w *Writer) own() error {
	if w.buf != nil && (!w.p.reserved || w.p.slot.Seq != w.seq) {
		w.buf = nil
		return errWriterSlot
	}
	return nil
}

// flush commits the partial item, if any, and lets go of the slot. The
// caller counted itself in (enter).
func (w *Writer) flush() error {
	if err := w.own(); err != nil {
		return err
	}
	if w.buf == nil {
		return nil
	}
	if w.off == 0 {
		w.buf = nil // reserved and empty: the next Reserve returns it
		return nil
	}
	return w.commit()
}

// commit publishes buf[:off] with the CRC taken while copying and lets go
// of the slot, whatever the outcome.
func (w *Writer) commit() error {
	n, crc := w.off, w.crc
	w.buf, w.off, w.crc = nil, 0, 0
	return w.p.commitCRC(n, crc)
}

// fail wraps err of operation op and keeps it as the Writer's error unless
// it is the end of ctx (which does not break the Writer: Flush still
// works).
func (w *Writer) fail(op string, err error) error {
	err = fmt.Errorf("%s %s: %w", op, w.p.names.Ring, err)
	if ctx := w.ctx.Err(); ctx != nil && errors.Is(err, ctx) {
		return err
	}
	w.err = err
	return err
}
