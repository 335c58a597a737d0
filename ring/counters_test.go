package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/internal/testutil"
	"github.com/shmpc/shmpc/shm"
)

// realRing creates ring name in a fresh SysV segment with its semaphores, both removed
// at cleanup, and returns the producer's view and a second attachment for the
// consumer (two mappings of the same memory, as two processes have).
func realRing(t *testing.T, name string, slots, slotSize int) (prod, cons *Ring, sems *ringobj.Sems) {
	t.Helper()
	n, err := ringobj.For(name)
	noErr(t, err, "names")
	size, err := Size(slots, slotSize)
	noErr(t, err, "Size")
	opt := shm.Options{HugePages: shm.Off, Lock: shm.Off}
	seg, err := shm.Create(n.Key, size, opt)
	noErr(t, err, "create segment")
	t.Cleanup(func() {
		_ = seg.Detach()
		_ = seg.Remove()
	})
	sems, err = ringobj.OpenSems(n, true, 0o600, os.Geteuid())
	noErr(t, err, "open semaphores")
	t.Cleanup(func() {
		_ = sems.Close()
		_ = ringobj.UnlinkSems(n)
	})
	prod, err = Format(seg.Bytes(), Config{Name: name, Slots: slots, SlotSize: slotSize, OwnerUID: uint32(os.Geteuid())})
	noErr(t, err, "Format")
	seg2, err := shm.Attach(n.Key, false, opt)
	noErr(t, err, "attach for the consumer")
	t.Cleanup(func() { _ = seg2.Detach() })
	cons, err = Open(seg2.Bytes())
	noErr(t, err, "Open for the consumer")
	return prod, cons, sems
}

// waitFor polls cond every millisecond for up to bound, failing with what otherwise.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, bound)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCountersAfterRun moves a stream through a real segment between a producer and a
// consumer goroutine, each on its own mapping and sleeping on the ring's real
// semaphores through ringobj's Bell as the producer and consumer packages do. The
// consumer sleeps first (empty ring) and holds item 0 until the producer slept on the
// full ring, so both sides sleep and wake each other at least once. Afterwards the
// counters say exactly what was moved, and the sleeps and wake-ups agree with the
// semaphores: every post the one side counted was taken by a wait the other counted,
// or is still in the semaphore.
func TestCountersAfterRun(t *testing.T) {
	const (
		slots    = 2
		slotSize = 4096
		total    = 200
	)
	name := testutil.RingName(t, "rc")
	pr, cr, sems := realRing(t, name, slots, slotSize)
	lenOf := func(seq uint64) int { return int(seq*389%slotSize) + 1 }
	var wantBytes uint64
	for seq := range uint64(total) {
		wantBytes += uint64(lenOf(seq))
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	var wg sync.WaitGroup
	// On every way out, also a failure, the two sides stop before the cleanups
	// unmap the segment under them (each returns once ctx ends).
	defer func() {
		cancel()
		wg.Wait()
	}()
	errs := make(chan error, 2)
	holdFirst := make(chan struct{})

	// The consumer: sleeps on `filled` with its Sleeps word, wakes the producer on
	// `empty` with its Wakes word.
	wg.Add(1)
	go func() {
		defer wg.Done()
		items := ringobj.Bell{Waiting: cr.ConsumerWaiting(), Sem: sems.Filled, Sleeps: cr.ConsumerSleeps()}
		space := ringobj.Bell{Waiting: cr.ProducerWaiting(), Sem: sems.Empty, Wakes: cr.ConsumerWakes()}
		rd := cr.Reader()
		for {
			it, err := rd.Acquire()
			switch {
			case errors.Is(err, ErrEmpty):
				next := rd.Next()
				ready := func() bool {
					_, ended := cr.End()
					return cr.Head() != next || ended
				}
				if err := items.Sleep(ctx, ready); err != nil {
					errs <- err
					return
				}
				continue
			case err == io.EOF:
				cr.SetDrained()
				errs <- nil
				return
			case err != nil:
				errs <- err
				return
			}
			if err := rd.Verify(it); err != nil || len(it.Data) != lenOf(it.Seq) || !checkPayload(it.Data, it.Seq) {
				errs <- errors.Join(err, errors.New("item not as committed"))
				return
			}
			if it.Seq == 0 {
				select {
				case <-holdFirst: // the producer slept on the full ring
				case <-ctx.Done():
					errs <- ctx.Err()
					return
				}
			}
			if err := rd.Release(it.Seq); err != nil {
				errs <- err
				return
			}
			if err := space.Ring(); err != nil {
				errs <- err
				return
			}
		}
	}()
	waitFor(t, 20*time.Second, "the consumer sleeps on the empty ring", func() bool { return cr.Counters().ConsumerSleeps > 0 })

	// The producer: sleeps on `empty` with its Sleeps word, wakes the consumer on
	// `filled` with its Wakes word.
	wg.Add(1)
	go func() {
		defer wg.Done()
		toConsumer := ringobj.Bell{Waiting: pr.ConsumerWaiting(), Sem: sems.Filled, Wakes: pr.ProducerWakes()}
		space := ringobj.Bell{Waiting: pr.ProducerWaiting(), Sem: sems.Empty, Sleeps: pr.ProducerSleeps()}
		w := pr.Writer()
		free := func() bool { return pr.Head()-pr.Tail() < slots }
		for seq := uint64(0); seq < total; {
			s, err := w.Reserve()
			if err == ErrFull {
				if err := space.Sleep(ctx, free); err != nil {
					errs <- err
					return
				}
				continue
			}
			if err != nil {
				errs <- err
				return
			}
			n := lenOf(seq)
			fill(s.Buf[:n], seq)
			if err := w.Commit(n); err != nil {
				errs <- err
				return
			}
			if err := toConsumer.Ring(); err != nil {
				errs <- err
				return
			}
			seq++
		}
		if err := w.End(); err != nil {
			errs <- err
			return
		}
		errs <- toConsumer.Ring()
	}()
	waitFor(t, 20*time.Second, "the producer sleeps on the full ring", func() bool { return pr.Counters().ProducerSleeps > 0 })
	close(holdFirst)
	for range 2 {
		select {
		case err := <-errs:
			noErr(t, err, "a side")
		case <-time.After(time.Minute):
			t.Fatal("the stream did not finish within a minute")
		}
	}
	wg.Wait()

	c := cr.Counters()
	if pc := pr.Counters(); pc != c {
		t.Fatalf("the two mappings disagree: %+v and %+v", pc, c)
	}
	t.Logf("counters after %d items: %+v", total, c)
	if c.ItemsCommitted != total || c.BytesCommitted != wantBytes || c.ItemsReleased != total || c.BytesReleased != wantBytes ||
		c.IntegrityErrors != 0 || c.ProducerPeerLosses != 0 || c.ConsumerPeerLosses != 0 {
		t.Fatalf("counters %+v, want %d items and %d bytes both ways and no errors or losses", c, total, wantBytes)
	}
	if c.ProducerSleeps == 0 || c.ConsumerSleeps == 0 || c.ProducerWakes == 0 || c.ConsumerWakes == 0 {
		t.Fatalf("counters %+v: each side slept and was woken at least once", c)
	}
	for _, s := range []struct {
		what          string
		wakes, sleeps uint64
		sem           interface{ Value() (uint32, error) }
	}{
		{"producer's wake-ups of the consumer", c.ProducerWakes, c.ConsumerSleeps, sems.Filled},
		{"consumer's wake-ups of the producer", c.ConsumerWakes, c.ProducerSleeps, sems.Empty},
	} {
		left, err := s.sem.Value()
		noErr(t, err, "semaphore value")
		if s.wakes > s.sleeps+uint64(left) {
			t.Errorf("%s: %d posts, but only %d counted waits and %d posts left in the semaphore", s.what, s.wakes, s.sleeps, left)
		}
	}
	noErr(t, cr.Check(), "Check")
}

// TestCountersAtDocumentedOffsets: each counter is read from the header offset the
// layout promises (what a reader in another language uses), and each side's counter
// words are the ones there.
func TestCountersAtDocumentedOffsets(t *testing.T) {
	r, buf := newRingNoCheck(t, 2, 64)
	pin := []struct {
		off int
		get func(Counters) uint64
	}{
		{512, func(c Counters) uint64 { return c.ItemsCommitted }},
		{520, func(c Counters) uint64 { return c.BytesCommitted }},
		{528, func(c Counters) uint64 { return c.ProducerSleeps }},
		{536, func(c Counters) uint64 { return c.ProducerWakes }},
		{544, func(c Counters) uint64 { return c.ProducerPeerLosses }},
		{384, func(c Counters) uint64 { return c.ItemsReleased }},
		{392, func(c Counters) uint64 { return c.BytesReleased }},
		{400, func(c Counters) uint64 { return c.IntegrityErrors }},
		{584, func(c Counters) uint64 { return c.ConsumerSleeps }},
		{592, func(c Counters) uint64 { return c.ConsumerWakes }},
		{600, func(c Counters) uint64 { return c.ConsumerPeerLosses }},
	}
	for i, p := range pin {
		binary.NativeEndian.PutUint64(buf[p.off:], 0x1000+uint64(i))
	}
	c := r.Counters()
	for i, p := range pin {
		if got := p.get(c); got != 0x1000+uint64(i) {
			t.Errorf("the counter at offset %d reads %#x, want %#x (counters %+v)", p.off, got, 0x1000+uint64(i), c)
		}
	}
	r.ProducerSleeps().Add(1)
	r.ProducerWakes().Add(2)
	r.ConsumerSleeps().Add(3)
	r.ConsumerWakes().Add(4)
	for _, w := range []struct {
		off  int
		want uint64
	}{{528, 0x1002 + 1}, {536, 0x1003 + 2}, {584, 0x1008 + 3}, {592, 0x1009 + 4}} {
		if got := binary.NativeEndian.Uint64(buf[w.off:]); got != w.want {
			t.Errorf("word at %d is %#x after the add through its accessor, want %#x", w.off, got, w.want)
		}
	}
}

// TestCommittedBytesOnlyWhenPublished: a commit that publishes nothing (another
// producer moved head, or ended the stream) leaves the byte count alone, and a crash
// before the publication counts nothing.
func TestCommittedBytesOnlyWhenPublished(t *testing.T) {
	r, _ := newRing(t, 4, 100)
	w1, w2 := r.Writer(), r.Writer()
	_, err := w2.Reserve()
	noErr(t, err, "Reserve by the zombie")
	commitItem(t, w1, 10)
	wantErr(t, w2.Commit(20), ErrIndices, "Commit by the zombie after head moved")
	if c := r.Counters(); c.ItemsCommitted != 1 || c.BytesCommitted != 10 {
		t.Fatalf("after a refused commit: %+v, want 1 item of 10 bytes", c)
	}
	w3 := r.Writer()
	_, err = w3.Reserve()
	noErr(t, err, "Reserve")
	for step := range commitSteps {
		if err := w3.commit(30, 0, step); err != errCrashed {
			t.Fatalf("commit stopped at step %d: %v", step, err)
		}
	}
	noErr(t, w1.End(), "End")
	wantErr(t, w3.Commit(40), ErrEnded, "Commit after the end")
	if c := r.Counters(); c.ItemsCommitted != 1 || c.BytesCommitted != 10 {
		t.Fatalf("after crashed and refused commits: %+v, want 1 item of 10 bytes", c)
	}
}

// TestPeerLossOncePerClaim: a side counts a lost peer once per claim of the peer's
// role, however often it looks, also across a restart of the counting side (the mark
// is in the header); a new claim that is lost counts again.
func TestPeerLossOncePerClaim(t *testing.T) {
	r, buf := newRing(t, 2, 64)
	r.SetConsumerID(Identity{PID: 10, Gen: 1})
	r.SetProducerID(Identity{PID: 11, Gen: 1})
	for range 3 {
		r.ProducerLostConsumer()
	}
	if c := r.Counters(); c.ProducerPeerLosses != 1 || c.ConsumerPeerLosses != 0 {
		t.Fatalf("three looks at one gone consumer: %+v", c)
	}
	resumed, err := Open(buf) // a producer that resumes the ring
	noErr(t, err, "Open")
	resumed.ProducerLostConsumer()
	if c := r.Counters(); c.ProducerPeerLosses != 1 {
		t.Fatalf("the resumed producer counted the same consumer again: %+v", c)
	}
	r.SetConsumerID(Identity{PID: 12, Gen: 2}) // a successor came, and is lost too
	resumed.ProducerLostConsumer()
	resumed.ProducerLostConsumer()
	r.ConsumerLostProducer()
	if c := r.Counters(); c.ProducerPeerLosses != 2 || c.ConsumerPeerLosses != 1 {
		t.Fatalf("a second consumer lost, one producer lost: %+v", c)
	}
	var wg sync.WaitGroup // looks from several goroutines at once count once
	r.SetConsumerID(Identity{PID: 13, Gen: 3})
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); r.ProducerLostConsumer() }()
	}
	wg.Wait()
	if c := r.Counters(); c.ProducerPeerLosses != 3 {
		t.Fatalf("eight concurrent looks at a third lost consumer: %+v", c)
	}
}

// FuzzCounters: whatever the counter words, the loss marks and the peers' claim
// generations hold, the ring works as usual: a stream goes through intact, and each
// counter reads its scribbled value plus what this run counted (modulo 2^64). A
// scribbled counter is a wrong number and nothing more.
func FuzzCounters(f *testing.F) {
	f.Add(uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), []byte{})
	f.Add(^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), []byte{0xff, 0xff, 0xff, 0xff})
	f.Add(uint64(1)<<63, uint64(7), ^uint64(0)-3, uint64(0), uint64(1), uint64(2), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Fuzz(func(t *testing.T, bytesC, items, bytesR, lostMark, peerGen, sleeps uint64, more []byte) {
		const slots, slotSize, total = 3, 64, 10
		r, buf := newRingNoCheck(t, slots, slotSize)
		h := r.h
		words := []struct {
			w *atomic.Uint64
			v uint64
		}{
			{&h.committedBytes, bytesC}, {&h.items, items}, {&h.bytes, bytesR}, {&h.integrity, sleeps ^ items},
			{&h.producerSleeps, sleeps}, {&h.producerWakes, ^sleeps}, {&h.producerLosses, lostMark ^ 1},
			{&h.producerLostGen, lostMark}, {&h.consumerSleeps, sleeps + 1}, {&h.consumerWakes, bytesC ^ bytesR},
			{&h.consumerLosses, peerGen ^ lostMark}, {&h.consumerLostGen, lostMark + 1},
		}
		for i, w := range words {
			v := w.v
			if i < len(more) {
				v ^= uint64(more[i]) << (8 * (i % 8))
			}
			w.w.Store(v)
		}
		r.SetConsumerID(Identity{PID: 1, Gen: peerGen})
		r.SetProducerID(Identity{PID: 2, Gen: peerGen + 1})
		before := r.Counters()
		marks := [2]uint64{h.producerLostGen.Load(), h.consumerLostGen.Load()}
		_ = r.Check() // may report the scribbled counters; must not panic
		if _, err := Open(buf); err != nil {
			t.Fatalf("Open with scribbled counters: %v", err)
		}

		w, rd := r.Writer(), r.Reader()
		var sum uint64
		for seq := range uint64(total) {
			if seq >= slots {
				it, err := rd.Acquire()
				noErr(t, err, "Acquire")
				noErr(t, rd.Verify(it), "Verify")
				if !checkPayload(it.Data, it.Seq) {
					t.Fatalf("item %d: not its payload", it.Seq)
				}
				noErr(t, rd.Release(it.Seq), "Release")
			}
			n := int(seq*7) % (slotSize + 1)
			commitItem(t, w, n)
			sum += uint64(n)
		}
		noErr(t, w.End(), "End")
		var released uint64
		for {
			it, err := rd.Acquire()
			if err == io.EOF {
				break
			}
			noErr(t, err, "Acquire")
			noErr(t, rd.Verify(it), "Verify")
			noErr(t, rd.Release(it.Seq), "Release")
			released++
		}
		r.ProducerLostConsumer()
		r.ConsumerLostProducer()
		after := r.Counters()

		if after.ItemsCommitted != total || after.BytesCommitted != before.BytesCommitted+sum {
			t.Fatalf("committed %d items, %d bytes; want %d, %d+%d", after.ItemsCommitted, after.BytesCommitted, total, before.BytesCommitted, sum)
		}
		if after.ItemsReleased != before.ItemsReleased+total || after.BytesReleased != before.BytesReleased+sum {
			t.Fatalf("released %d items, %d bytes; want %d+%d, %d+%d", after.ItemsReleased, after.BytesReleased, before.ItemsReleased, total, before.BytesReleased, sum)
		}
		for _, c := range []struct {
			what     string
			got, was uint64
			mark     uint64 // the loss mark before the run
			gen      uint64 // the lost peer's claim generation
		}{
			{"producer losses", after.ProducerPeerLosses, before.ProducerPeerLosses, marks[0], peerGen},
			{"consumer losses", after.ConsumerPeerLosses, before.ConsumerPeerLosses, marks[1], peerGen + 1},
		} {
			want := c.was + 1
			if c.mark == c.gen+1 { // that peer claim was counted already
				want = c.was
			}
			if c.got != want {
				t.Fatalf("%s went from %d to %d (mark %d, peer generation %d), want %d", c.what, c.was, c.got, c.mark, c.gen, want)
			}
		}
		if after.IntegrityErrors != before.IntegrityErrors || after.ProducerSleeps != before.ProducerSleeps ||
			after.ProducerWakes != before.ProducerWakes || after.ConsumerSleeps != before.ConsumerSleeps ||
			after.ConsumerWakes != before.ConsumerWakes {
			t.Fatalf("counters nobody counted in changed: %+v, were %+v", after, before)
		}
		if released != slots {
			t.Fatalf("%d items left to release after the end, want %d", released, slots)
		}
	})
}
