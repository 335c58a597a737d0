package sem

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Sentinel errors. Test for them with errors.Is: the errors returned by this
// package wrap them together with the semaphore's name and the operation.
var (
	// ErrClosed is returned by every method of a Semaphore after Close, and by
	// a Wait that Close interrupted. It is os.ErrClosed, so callers that
	// already test for that need nothing new.
	ErrClosed = os.ErrClosed

	// ErrOverflow is returned by Post when the value is already ValueMax
	// (glibc's sem_post fails with EOVERFLOW in the same state).
	ErrOverflow = errors.New("semaphore value would exceed SEM_VALUE_MAX")

	// ErrInvalidName is matched by every *NameError: the name is one glibc's
	// sem_open or sem_unlink refuses.
	ErrInvalidName = errors.New("invalid semaphore name")

	// ErrInvalid means the file behind a name is not a usable process-shared
	// glibc semaphore: not a regular file, shorter than 32 bytes, a private
	// word other than 0x80, or a value above ValueMax. The file is left as
	// it is; nothing is mapped.
	ErrInvalid = errors.New("not a valid process-shared glibc semaphore")

	// ErrForeignOwner is reported by CheckOwner when the file belongs to
	// another uid than the one asked for.
	ErrForeignOwner = errors.New("semaphore owned by another user")

	// ErrLoosePerm is reported by CheckOwner when the file's permission bits
	// grant more than the ones asked for.
	ErrLoosePerm = errors.New("semaphore permissions looser than requested")
)

// NameError reports a name that glibc refuses. It matches ErrInvalidName
// and, through Unwrap, the errno glibc sets for the same name: EINVAL or
// ENAMETOOLONG from Create, Open, OpenOrCreate and Path, ENOENT or
// ENAMETOOLONG from Unlink.
type NameError struct {
	Name   string        // the name as the caller gave it
	Reason string        // which rule it breaks
	Errno  syscall.Errno // what glibc's errno would be
}

// Error says which name broke which rule, and glibc's errno for it.
func (e *NameError) Error() string {
	return fmt.Sprintf("invalid semaphore name %s: %s (%v)", quoteName(e.Name), e.Reason, e.Errno)
}

// Unwrap returns the errno glibc would set for the same name.
func (e *NameError) Unwrap() error { return e.Errno }

// Is reports whether target is ErrInvalidName.
func (e *NameError) Is(target error) bool { return target == ErrInvalidName }

// quoteName quotes a name for a message, shortening very long ones.
func quoteName(name string) string {
	const keep = 48
	if len(name) <= keep {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("%q... (%d bytes)", name[:keep], len(name))
}
