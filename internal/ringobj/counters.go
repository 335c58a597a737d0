package ringobj

import "sync"

// Snapshot reads a value from a mapped segment (a ring's live counters,
// for a side's Stats) safely against that side detaching the segment from
// another goroutine: Read looks while it is mapped, Detach takes a last
// look and then unmaps, and afterwards Read returns that last look. The
// zero value reads nothing (the zero T) until Set. (Generic so that this
// package does not import ring, whose tests import this package.)
type Snapshot[T any] struct {
	mu       sync.Mutex
	read     func() T
	last     T
	detached bool
}

// Set gives the function that reads the value (once the segment is
// attached).
func (s *Snapshot[T]) Set(read func() T) {
	s.mu.Lock()
	s.read = read
	s.mu.Unlock()
}

// Read returns the value: read now, or the last look before Detach.
func (s *Snapshot[T]) Read() T {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.detached && s.read != nil {
		s.last = s.read()
	}
	return s.last
}

// Detach takes the last look and calls detach (which unmaps the segment)
// with no Read in progress, returning detach's error.
func (s *Snapshot[T]) Detach(detach func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.read != nil && !s.detached {
		s.last = s.read()
	}
	s.detached = true
	return detach()
}
