package ringobj

import (
	"sync"

	"github.com/shmpc/shmpc/ring"
)

// Counters reads a ring's live counters for a side's Stats, safely against
// that side detaching the segment from another goroutine: Read looks at
// the header while it is mapped, Detach takes a last look and then
// unmaps, and afterwards Read returns that last look. The zero value is
// ready to use (it reads nothing until Set).
type Counters struct {
	mu       sync.Mutex
	r        *ring.Ring
	last     ring.Counters
	detached bool
}

// Set names the ring to read (once it is attached).
func (c *Counters) Set(r *ring.Ring) {
	c.mu.Lock()
	c.r = r
	c.mu.Unlock()
}

// Read returns the counters: the header's now, or the last look before
// Detach.
func (c *Counters) Read() ring.Counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.detached && c.r != nil {
		c.last = c.r.Counters()
	}
	return c.last
}

// Detach takes the last look at the header and calls detach (which unmaps
// the segment) with no Read in progress, returning detach's error.
func (c *Counters) Detach(detach func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.r != nil {
		c.last = c.r.Counters()
	}
	c.detached = true
	return detach()
}
