package ring

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
)

// testName returns a ring NAME unique to this test run (pid + counter); ring itself
// does not touch the OS, the name only has to be valid and recognisable.
func testName(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf("t%d.%d", os.Getpid(), nameSeq.Add(1))
}

var nameSeq atomic.Uint64

// newBuf returns a heap buffer of n bytes (8-byte aligned: Go allocates every size
// class of 16 bytes and more on an 8-byte boundary; Format and Open check it anyway).
func newBuf(tb testing.TB, n int) []byte {
	tb.Helper()
	b := make([]byte, max(n, 16))[:n]
	if !aligned8(b) {
		tb.Fatalf("heap buffer of %d bytes is not 8-byte aligned", n)
	}
	return b
}

// newRing formats a ring of the given geometry in a fresh heap buffer and registers a
// Check of it in t.Cleanup.
func newRing(tb testing.TB, slots, slotSize int) (*Ring, []byte) {
	tb.Helper()
	r, buf := newRingNoCheck(tb, slots, slotSize)
	tb.Cleanup(func() {
		if err := r.Check(); err != nil {
			tb.Errorf("ring check after the test: %v", err)
		}
	})
	return r, buf
}

// newRingNoCheck is newRing for tests that corrupt the ring on purpose (they assert
// what Check reports themselves).
func newRingNoCheck(tb testing.TB, slots, slotSize int) (*Ring, []byte) {
	tb.Helper()
	n, err := Size(slots, slotSize)
	if err != nil {
		tb.Fatalf("Size(%d, %d): %v", slots, slotSize, err)
	}
	buf := newBuf(tb, n)
	r, err := Format(buf, Config{Name: testName(tb), Slots: slots, SlotSize: slotSize, OwnerUID: uint32(os.Getuid())})
	if err != nil {
		tb.Fatalf("Format: %v", err)
	}
	return r, buf
}

// wantErr fails unless errors.Is(err, sentinel).
func wantErr(tb testing.TB, err, sentinel error, what string) {
	tb.Helper()
	if !errors.Is(err, sentinel) {
		tb.Fatalf("%s: got error %v, want %v", what, err, sentinel)
	}
}

// noErr fails on a non-nil error.
func noErr(tb testing.TB, err error, what string) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// fill writes the test payload of item seq into b: every byte depends on seq and
// its position, so a byte from another item or position is caught.
func fill(b []byte, seq uint64) {
	x := seq*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
}

// checkPayload reports whether b is the test payload of item seq.
func checkPayload(b []byte, seq uint64) bool {
	x := seq*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		if b[i] != byte(x) {
			return false
		}
	}
	return true
}

// commitItem reserves, fills with the test payload of n bytes and commits one item.
func commitItem(tb testing.TB, w *Writer, n int) uint64 {
	tb.Helper()
	s, err := w.Reserve()
	noErr(tb, err, "Reserve")
	fill(s.Buf[:n], s.Seq)
	noErr(tb, w.Commit(n), "Commit")
	return s.Seq
}
