package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
)

// Item is one verified item returned by Next: its sequence number, its
// bytes and their checksum. Data is a view into the ring's slot (or, with
// Options.Copy, the consumer's private copy) and is valid until Release or
// Close. The slot goes back to the producer only when the item is
// released: hold few.
type Item struct {
	Seq  uint64
	Data []byte
	// CRC is the CRC32C (Castagnoli) the producer published with the item,
	// which Data was verified against: a caller that passes the item on
	// with its checksum need not compute it again.
	CRC uint32

	c   *Consumer
	buf []byte // the copy buffer Data lives in (Options.Copy), back to the pool at Release
}

// Release gives the item's slot back to the producer. Items may be
// released in any order and from any goroutine; each exactly once (a
// second Release returns an error and changes nothing). An item not
// released is delivered again to the ring's next consumer.
func (it Item) Release() error {
	if it.c == nil {
		return errors.New("consumer: Release of an Item that Next did not return")
	}
	return it.c.releaseItem(it.Seq, len(it.Data), it.buf)
}

// Next returns the next item of the stream, verified, in sequence order,
// waiting while the ring is empty. It returns io.EOF (unwrapped, as
// io.Reader does) once the stream ended and every item was returned; the
// stream is reported drained to the producer once every item is also
// released. Other errors are Run's: ctx's error (wrapped) when ctx ends,
// ErrIntegrity for an item that failed verification (it is never
// returned), a *PeerLostError, ErrClosed; after one of them Next returns
// the same error again, except that a new ctx may be tried after ctx's.
//
// With Workers > 1, items waiting behind the one Next needs are verified
// by helper goroutines meanwhile, so a caller that handles items on one
// goroutine does not also pay for every checksum there. Next is used by
// one goroutine at a time (Item.Release by any), and not together with
// Run: a Consumer is read one way, and Next after Run returns ErrRan.
func (c *Consumer) Next(ctx context.Context) (Item, error) {
	return c.NextInto(ctx, nil)
}

// NextInto is Next that, with Options.Copy, makes the item's private copy
// in dst when the item fits (its length is at most len(dst)): Item.Data is
// then dst[:len(Item.Data)], and Release leaves dst to the caller. A caller
// that gathers several items into one buffer (to write them out together)
// so saves copying each again. An item a helper verified ahead (Workers >
// 1) is copied into dst from the helper's copy. Without Options.Copy, or
// when the item does not fit, NextInto is Next and Data is where Next puts
// it. dst must not be written while the item is held.
func (c *Consumer) NextInto(ctx context.Context, dst []byte) (Item, error) {
	pl, err := c.puller()
	if err != nil {
		return Item{}, err
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if !c.opt.Copy {
		dst = nil
	}
	return pl.next(ctx, dst)
}

// puller returns the Consumer's pull engine, starting it at the first
// call; it fails once Close was called or Run was used.
func (c *Consumer) puller() (*puller, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("next: %w", ErrClosed)
	}
	if c.pull != nil {
		return c.pull, nil
	}
	if c.ran {
		return nil, fmt.Errorf("next: %w", ErrRan)
	}
	c.ran = true
	c.pull = newPuller(c)
	return c.pull, nil
}

// Entry states: queued for verification, taken by a goroutine that
// verifies it, verified (err says how it went).
const (
	entQueued int32 = iota
	entClaimed
	entDone
)

// entry is an acquired item in the pull window, before Next returns it.
type entry struct {
	it    ring.Item
	buf   []byte
	data  []byte
	err   error
	state atomic.Int32
	done  chan struct{} // one token from the helper that verified it
}

// puller is the engine behind Next (and Run with Options.Ordered): it
// acquires items in order into a window of at most Workers entries, hands
// the ones behind the head to helper goroutines for verification, and
// returns the head once it is verified, verifying it itself when no helper
// has taken it yet.
type puller struct {
	c  *Consumer
	mu sync.Mutex // held by Next for its whole call; Close takes it to wait for one

	win        []*entry // the window: a circular buffer of acquired, not yet returned items
	head, n    int
	todo       chan *entry // to the helpers; nil with one worker
	helpers    sync.WaitGroup
	eof        atomic.Bool // the stream ended and every item was acquired
	err        error       // sticky: the error that stopped the stream
	finishOnce sync.Once
	finishErr  error // of the drain, once done

	ctx  context.Context // ends at Close
	stop context.CancelCauseFunc

	space, items ringobj.Bell

	bufMu sync.Mutex
	bufs  [][]byte // free copy buffers (Options.Copy)
}

func newPuller(c *Consumer) *puller {
	w := max(1, min(c.opt.Workers, c.ring.Slots()))
	pl := &puller{
		c:   c,
		win: make([]*entry, w),
	}
	pl.space, pl.items = c.bells()
	for i := range pl.win {
		pl.win[i] = &entry{done: make(chan struct{}, 1)}
	}
	pl.ctx, pl.stop = context.WithCancelCause(context.Background())
	c.watch.Start(func() { _ = pl.items.Kick() }, ringobj.Recheck)
	if w > 1 {
		pl.todo = make(chan *entry, w)
		for range w - 1 {
			pl.helpers.Add(1)
			go pl.helper()
		}
	}
	return pl
}

// helper verifies the entries it is handed that Next has not taken.
func (pl *puller) helper() {
	defer pl.helpers.Done()
	for e := range pl.todo {
		if e.state.CompareAndSwap(entQueued, entClaimed) {
			pl.verify(e)
			e.state.Store(entDone)
			e.done <- struct{}{}
		}
	}
}

func (pl *puller) verify(e *entry) { e.data, e.err = pl.c.check(e.it, e.buf) }

// next is NextInto with pl.mu held (dst nil: Next).
func (pl *puller) next(ctx context.Context, dst []byte) (Item, error) {
	if pl.err != nil {
		return Item{}, pl.err
	}
	if err := ctx.Err(); err != nil {
		return Item{}, fmt.Errorf("next item of %s: %w", pl.c.names.Ring, err)
	}
	for {
		if err := pl.fill(); err != nil {
			return Item{}, pl.fail(err)
		}
		if pl.n > 0 {
			break
		}
		if pl.eof.Load() {
			pl.maybeFinish()
			if pl.finishErr != nil {
				return Item{}, pl.finishErr
			}
			return Item{}, io.EOF
		}
		if err := pl.wait(ctx); err != nil {
			return Item{}, err
		}
	}
	e := pl.win[pl.head]
	into := dst != nil && e.buf != nil && len(e.it.Data) <= len(dst)
	if e.state.CompareAndSwap(entQueued, entClaimed) {
		if into {
			pl.putBuf(e.buf)
			e.buf = nil
			e.data, e.err = pl.c.check(e.it, dst)
		} else {
			pl.verify(e)
		}
		e.state.Store(entDone)
	} else {
		<-e.done
		if into && e.err == nil {
			e.data = dst[:copy(dst, e.data)]
			pl.putBuf(e.buf)
			e.buf = nil
		}
	}
	pl.head = (pl.head + 1) % len(pl.win)
	pl.n--
	if e.err != nil {
		// Not released: a successor consumer meets the same bad item.
		return Item{}, pl.fail(e.err)
	}
	it := Item{Seq: e.it.Seq, Data: e.data, CRC: e.it.CRC, c: pl.c, buf: e.buf}
	e.it, e.buf, e.data = ring.Item{}, nil, nil
	return it, nil
}

// fill acquires published items into the window while it has room, and
// hands every one behind the head to the helpers.
func (pl *puller) fill() error {
	for pl.n < len(pl.win) && !pl.eof.Load() {
		var buf []byte
		if pl.c.opt.Copy {
			buf = pl.getBuf()
		}
		it, err := pl.c.rd.Acquire()
		switch {
		case err == nil:
		case errors.Is(err, ring.ErrEmpty):
			pl.putBuf(buf)
			return nil
		case errors.Is(err, io.EOF):
			pl.putBuf(buf)
			pl.eof.Store(true)
			return nil
		default:
			pl.putBuf(buf)
			return fmt.Errorf("acquire from %s: %w", pl.c.names.Ring, err)
		}
		e := pl.win[(pl.head+pl.n)%len(pl.win)]
		e.it, e.buf, e.err = it, buf, nil
		e.state.Store(entQueued)
		if pl.n > 0 && pl.todo != nil {
			select {
			case pl.todo <- e:
			default: // the helpers are behind: Next verifies it when it gets there
			}
		}
		pl.n++
	}
	return nil
}

// wait sleeps until an item is published, the stream ends, ctx ends or
// Close is called.
func (pl *puller) wait(ctx context.Context) error {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopClose := context.AfterFunc(pl.ctx, func() { cancel(ErrClosed) })
	defer stopClose()
	stopKick := context.AfterFunc(wctx, func() { _ = pl.items.Kick() })
	defer stopKick()
	err := pl.c.waitItems(wctx, pl.items)
	if err == nil {
		return nil
	}
	if context.Cause(wctx) == ErrClosed {
		return pl.fail(fmt.Errorf("next: %w", ErrClosed))
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		// Not sticky: the caller may go on with another context.
		return fmt.Errorf("next item of %s: %w", pl.c.names.Ring, ctx.Err())
	}
	var gone errProducerGone
	if errors.As(err, &gone) {
		err = pl.c.peerLost("producer of "+pl.c.names.Ring+" "+gone.what, pl.c.rd.Next())
		pl.c.removeIfProducerGone()
	}
	return pl.fail(err)
}

// fail makes err the stream's sticky error (the first one wins).
func (pl *puller) fail(err error) error {
	if pl.err == nil {
		pl.err = err
	}
	return pl.err
}

// maybeFinish tells the producer the stream is drained once the end was
// seen and every item is released: at most once, from Next, Release or
// Close, whichever sees it last.
func (pl *puller) maybeFinish() {
	if !pl.eof.Load() || pl.c.rd.Pending() != 0 {
		return
	}
	pl.finishOnce.Do(func() {
		if pl.finishErr = pl.c.finish(); pl.finishErr != nil {
			pl.c.opt.Logf("%v", pl.finishErr)
		}
	})
}

// close stops the helpers (Close holds pl.mu, so no Next runs) and gives
// back what the window holds: acquired, never returned, not released.
func (pl *puller) close() {
	if pl.todo != nil {
		close(pl.todo)
		pl.helpers.Wait()
		pl.todo = nil
	}
	pl.c.watch.Stop()
	pl.n = 0
	if pl.err == nil {
		pl.err = fmt.Errorf("next: %w", ErrClosed)
	}
}

func (pl *puller) getBuf() []byte {
	pl.bufMu.Lock()
	defer pl.bufMu.Unlock()
	if n := len(pl.bufs); n > 0 {
		b := pl.bufs[n-1]
		pl.bufs = pl.bufs[:n-1]
		return b
	}
	return make([]byte, pl.c.ring.SlotSize())
}

func (pl *puller) putBuf(b []byte) {
	if b == nil {
		return
	}
	pl.bufMu.Lock()
	pl.bufs = append(pl.bufs, b[:cap(b)])
	pl.bufMu.Unlock()
}

// releaseItem is Item.Release: the ring's release, the counters, the
// producer's doorbell, and the drain once the last item of an ended stream
// is back.
func (c *Consumer) releaseItem(seq uint64, n int, buf []byte) error {
	c.mu.Lock()
	closed, pl := c.closed, c.pull
	c.mu.Unlock()
	if closed {
		return fmt.Errorf("release item %d: %w", seq, ErrClosed)
	}
	if err := c.rd.Release(seq); err != nil {
		return fmt.Errorf("release item %d: %w", seq, err)
	}
	c.released(uint64(n))
	if pl == nil {
		return nil
	}
	pl.putBuf(buf)
	if err := pl.space.Ring(); err != nil {
		return fmt.Errorf("wake producer: %w", err)
	}
	if pl.eof.Load() && pl.mu.TryLock() {
		pl.maybeFinish()
		pl.mu.Unlock()
	}
	return nil
}

// released counts a released item of n bytes and stamps the release time.
func (c *Consumer) released(n uint64) int64 {
	c.items.Add(1)
	c.bytes.Add(n)
	if c.firstReserve.Load() == 0 {
		// Written before the first item was published, so set by now;
		// kept here so that Stats never reads a ring Close detached.
		c.firstReserve.Store(int64(c.ring.AppWord(ringobj.AppFirstReserve).Load()))
	}
	now := time.Now().UnixNano()
	c.lastRelease.Store(now)
	c.ring.AppWord(ringobj.AppLastRelease).Store(uint64(now))
	return now
}

// runOrdered is Run with Options.Ordered: the pull engine's items, handed
// to h one at a time in sequence order on Run's goroutine, each released
// when h returns, while helpers verify the items behind it.
func (c *Consumer) runOrdered(ctx context.Context, h Handler) error {
	c.mu.Lock()
	c.pull = newPuller(c)
	pl := c.pull
	c.mu.Unlock()
	for {
		pl.mu.Lock()
		it, err := pl.next(ctx, nil)
		pl.mu.Unlock()
		if err == io.EOF {
			pl.mu.Lock()
			pl.maybeFinish()
			pl.mu.Unlock()
			return pl.finishErr
		}
		if err != nil {
			if ctx.Err() != nil && (errors.Is(err, ctx.Err()) || errors.Is(err, ErrClosed)) {
				return c.stoppedBy(ctx) // graceful stop
			}
			return err
		}
		if err := h(it.Seq, it.Data); err != nil {
			return fmt.Errorf("handler for item %d: %w", it.Seq, err)
		}
		if err := it.Release(); err != nil {
			return err
		}
	}
}
