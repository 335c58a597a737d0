package e2e

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/shmpc/shmpc/internal/payload"
)

// patternSink is the standard output of a `consume -stdout`: it checks
// every byte against the payload of the items first, first+1, ... of the
// stream, in order, as they arrive. It is safe for concurrent use.
type patternSink struct {
	mu      sync.Mutex
	st      stream
	seq     uint64 // the item being received
	off     int    // bytes of it received
	want    []byte // its payload
	items   int    // items received completely
	bad     int    // items with a wrong byte
	badNow  bool   // the current item was counted bad
	extra   int    // bytes beyond the stream's end
	firstBd string
}

func newPatternSink(st stream, first uint64) *patternSink {
	return &patternSink{st: st, seq: first}
}

func (s *patternSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		if s.seq >= s.st.items {
			s.extra += len(p)
			break
		}
		if s.want == nil {
			s.want = make([]byte, s.st.lenOf(s.seq))
			payload.Fill(s.want, s.seq)
		}
		k := min(len(p), len(s.want)-s.off)
		if !bytes.Equal(p[:k], s.want[s.off:s.off+k]) && !s.badNow {
			s.badNow = true
			s.bad++
			if s.firstBd == "" {
				i := 0
				for p[i] == s.want[s.off+i] {
					i++
				}
				s.firstBd = fmt.Sprintf("item %d differs from the payload at byte %d", s.seq, s.off+i)
			}
		}
		s.off += k
		p = p[k:]
		if s.off == len(s.want) {
			s.items++
			s.seq++
			s.off, s.want, s.badNow = 0, nil, false
		}
	}
	return n, nil
}

// check records what the sink found in the trial: items with a wrong byte
// are integrity errors delivered; bytes past the stream are too. complete
// says the consumer ended normally, so a partial last item is an error;
// wantItems (if not negative) is how many items it must have received.
func (s *patternSink) check(tr *Trial, complete bool, wantItems int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tr.logf("standard output: %d items checked byte for byte, %d bad", s.items, s.bad)
	if s.bad > 0 {
		tr.res.BadDelivered += s.bad
		tr.failf("standard output: %d items are not the payload (%s)", s.bad, s.firstBd)
	}
	if s.extra > 0 {
		tr.res.BadDelivered++
		tr.failf("standard output: %d bytes beyond the stream's end", s.extra)
	}
	if complete && s.off != 0 {
		tr.failf("standard output ends inside item %d (%d bytes of %d)", s.seq, s.off, len(s.want))
	}
	if wantItems >= 0 && s.items != wantItems {
		tr.failf("standard output has %d items, want %d", s.items, wantItems)
	}
}
