package ring

import (
	"io"
	"testing"
)

// TestEndBetweenLoads: the producer commits its last item and ends the stream exactly
// between Acquire's two loads. Acquire loads the end word before head, so it sees "not
// ended" and the new item, never a final count beyond the head it read.
func TestEndBetweenLoads(t *testing.T) {
	r, _ := newRing(t, 2, 8)
	w, rd := r.Writer(), r.Reader()
	fired := false
	betweenEndAndHead = func() {
		if fired {
			return
		}
		fired = true
		commitItem(t, w, 8)
		noErr(t, w.End(), "End")
	}
	t.Cleanup(func() { betweenEndAndHead = nil })
	it, err := rd.Acquire()
	noErr(t, err, "Acquire racing the end of the stream")
	if it.Seq != 0 || !fired {
		t.Fatalf("item %d, hook fired %v", it.Seq, fired)
	}
	noErr(t, rd.Release(it.Seq), "Release")
	if _, err := rd.Acquire(); err != io.EOF {
		t.Fatalf("Acquire after the last item: %v, want io.EOF", err)
	}
}
