package sem

import (
	"strings"

	"golang.org/x/sys/unix"
)

const (
	// Dir is where glibc keeps named semaphores (its SHMDIR).
	Dir = "/dev/shm/"

	// filePrefix is what glibc puts in front of a semaphore's name.
	filePrefix = "sem."

	// nameMaxOpen is the longest name (after leading '/' are stripped) that
	// open(2) accepts: "sem." plus the name must fit NAME_MAX (255).
	nameMaxOpen = 255 - len(filePrefix)

	// nameMaxGlibc is the longest name glibc 2.36's name buffer holds;
	// longer names are EINVAL before any system call.
	nameMaxGlibc = 255
)

// semName is a validated name.
type semName struct {
	canon string // "/" + the name without its leading slashes
	path  string // Dir + "sem." + the name without its leading slashes
}

// parseName applies glibc's rules (posix/shm-directory.c in 2.36): leading
// '/' are stripped; what is left must be non-empty and contain no '/'. A
// result longer than 255 bytes is EINVAL; 252 to 255 bytes pass glibc's own
// check but fail in open(2), link(2) or unlink(2) with ENAMETOOLONG, which
// is reported here up front. A NUL byte, which a C string cannot hold, is
// EINVAL.
func parseName(name string) (semName, error) {
	base := strings.TrimLeft(name, "/")
	bad := func(errno unix.Errno, reason string) (semName, error) {
		return semName{}, &NameError{Name: name, Reason: reason, Errno: errno}
	}
	switch {
	case base == "":
		return bad(unix.EINVAL, "empty once leading '/' are removed")
	case strings.IndexByte(base, '/') >= 0:
		return bad(unix.EINVAL, "contains '/' after its leading slashes")
	case strings.IndexByte(base, 0) >= 0:
		return bad(unix.EINVAL, "contains a NUL byte")
	case len(base) > nameMaxGlibc:
		return bad(unix.EINVAL, "longer than 255 bytes")
	case len(base) > nameMaxOpen:
		return bad(unix.ENAMETOOLONG, "longer than 251 bytes, so sem.NAME exceeds NAME_MAX")
	}
	return semName{canon: "/" + base, path: Dir + filePrefix + base}, nil
}

// Path returns the file glibc uses for the named semaphore:
// "/dev/shm/sem." followed by name without its leading slashes. "/x", "//x"
// and "x" all name /dev/shm/sem.x. An invalid name gives a *NameError
// (matching ErrInvalidName and glibc's errno). Path does not touch the file
// system.
func Path(name string) (string, error) {
	n, err := parseName(name)
	if err != nil {
		return "", err
	}
	return n.path, nil
}
