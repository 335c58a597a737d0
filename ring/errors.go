package ring

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test for them with errors.Is: most are returned wrapped in an *Error
// that says which operation and field failed. ErrFull and ErrEmpty are returned as they
// are (they are the expected outcome of polling and must not allocate).
var (
	// ErrNotFormatted: the magic word is still zero; the buffer was never formatted or
	// its formatting was interrupted (Format stores the magic last).
	ErrNotFormatted = errors.New("ring not formatted")
	// ErrBadMagic: the first word is neither zero nor Magic; the memory is not a ring.
	ErrBadMagic = errors.New("bad ring magic")
	// ErrVersion: the layout version is not Version.
	ErrVersion = errors.New("unsupported ring layout version")
	// ErrGeometry: slot count, slot size, offsets or sizes are out of range or disagree
	// with each other or with the buffer (also a short or misaligned buffer).
	ErrGeometry = errors.New("invalid ring geometry")
	// ErrConfig: a Config field other than the geometry is invalid (the name's length).
	ErrConfig = errors.New("invalid ring config")
	// ErrIndices: head, tail or the end-of-stream word break 0 <= head-tail <= slots or
	// final == head.
	ErrIndices = errors.New("inconsistent ring indices")
	// ErrCorrupt: a header or descriptor field holds a value no correct writer stores.
	ErrCorrupt = errors.New("corrupt ring")
	// ErrFull: every slot holds an unreleased item; Reserve again after the consumer
	// releases one.
	ErrFull = errors.New("ring full")
	// ErrEmpty: no published item is waiting; Acquire again after the producer commits.
	ErrEmpty = errors.New("ring empty")
	// ErrEnded: the stream has ended; no more items can be reserved.
	ErrEnded = errors.New("stream ended")
	// ErrIntegrity: an item's bytes do not match its CRC32C. Never deliver such data.
	ErrIntegrity = errors.New("item integrity error")
	// ErrSequence: the descriptor of the next item carries another sequence number.
	ErrSequence = errors.New("descriptor sequence mismatch")
	// ErrTooLarge: a length exceeds the slot size or the destination buffer.
	ErrTooLarge = errors.New("item too large")
	// ErrNotReserved: Commit without a reserved slot.
	ErrNotReserved = errors.New("no slot reserved")
	// ErrNotAcquired: Release of a sequence number that is not acquired by this Reader
	// (never acquired, or already released).
	ErrNotAcquired = errors.New("item not acquired")
)

// Error is the error type of package ring: Op is the operation ("open ring", "acquire
// item", ...), Field the part that is wrong ("slots", "descriptor 3", ...), Reason the
// details, and Err the sentinel it matches with errors.Is.
type Error struct {
	Op     string
	Field  string
	Reason string
	Err    error
}

// Error formats the error as "op: field: reason: sentinel".
func (e *Error) Error() string {
	s := e.Op
	if e.Field != "" {
		s += ": " + e.Field
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the sentinel, so errors.Is(err, ErrGeometry) and friends match.
func (e *Error) Unwrap() error { return e.Err }

// errorf builds an *Error with a formatted reason.
func errorf(op, field string, sentinel error, format string, args ...any) *Error {
	return &Error{Op: op, Field: field, Reason: fmt.Sprintf(format, args...), Err: sentinel}
}
