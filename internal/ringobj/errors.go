package ringobj

import (
	"errors"
	"os"
)

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
	// AppBridgeStream is taken by the bridge module (bridge.AppWordStream):
	// the random key of the stream a bridge carries, so that its successors
	// on either side carry on the same stream. Nothing else may use it.
	AppBridgeStream = 7
)

// ClosedError is the ErrClosed of the producer and consumer packages: it
// says which side was closed (os.ErrClosed says "file already closed") and
// matches os.ErrClosed with errors.Is.
type ClosedError struct{ Side string }

func (e *ClosedError) Error() string { return e.Side + " is closed" }

// Is reports whether target is os.ErrClosed.
func (e *ClosedError) Is(target error) bool { return target == os.ErrClosed }

// PeerLostError is the error of a side whose peer died or left and whose
// successor did not come in time (or who made no progress past a stall
// timeout). It matches ErrPeerLost with errors.Is; errors.As finds it to
// read the counts.
type PeerLostError struct {
	// What happened, e.g. "consumer of NAME is gone".
	What string
	// Delivered is how many items of the stream a consumer released.
	Delivered uint64
	// Lost is how many items are lost if the ring goes now: published but
	// not released and, when the stream's length is known, never sent.
	// LostKnown says whether the stream's length was known; without it,
	// Lost counts only what was published and not released.
	Lost      uint64
	LostKnown bool
	// Report is the counts in words, as Error shows them.
	Report string
}

func (e *PeerLostError) Error() string {
	return e.What + ": " + e.Report + ": " + ErrPeerLost.Error()
}

// Is reports whether target is ErrPeerLost.
func (e *PeerLostError) Is(target error) bool { return target == ErrPeerLost }
