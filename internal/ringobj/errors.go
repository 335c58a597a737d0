package ringobj

import "errors"

// Errors shared by the producer and consumer packages, which re-export
// them; the CLI maps them to exit codes.
var (
	// ErrPeerLost: the other side died or left and no successor came within
	// the peer timeout (exit status 3).
	ErrPeerLost = errors.New("peer lost")
	// ErrBusy: the role is held by another live process.
	ErrBusy = errors.New("role held by a live process")
	// ErrForeign: an object with the ring's name or key exists but is not
	// this ring's (another uid, another NAME, not a ring, wrong geometry).
	ErrForeign = errors.New("object is not this ring's")
	// ErrNoRing: no ring of that NAME appeared within the wait.
	ErrNoRing = errors.New("ring not found")
)

// Application words of the ring header (ring.AppWord) used by shmpc.
const (
	AppFirstReserve = 0 // Unix ns of the stream's first reserve (producer)
	AppLastRelease  = 1 // Unix ns of the latest release (consumer)
)
