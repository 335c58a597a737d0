// Package testutil holds the helpers that the tests of several packages
// share: ring NAMEs unique to a test, and the check that a test left no
// object of its rings behind. It is imported by tests only.
package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/internal/leakcheck"
	"github.com/shmpc/shmpc/internal/syncbuf"
	"github.com/shmpc/shmpc/shm"
)

var nonName = regexp.MustCompile(`[^A-Za-z0-9]+`)

// RingName returns a ring NAME unique to tb: prefix, the pid, a random
// suffix and the tail of the test's name (to tell whose a leftover is). It
// registers a cleanup that fails tb if any object of that ring remains
// (see RequireNoLeftovers), also when tb failed.
func RingName(tb testing.TB, prefix string) string {
	tb.Helper()
	var b [3]byte
	_, _ = rand.Read(b[:])
	base := nonName.ReplaceAllString(tb.Name(), "-")
	if len(base) > 36 {
		base = base[len(base)-36:]
	}
	name := fmt.Sprintf("%s%d-%s-%s", prefix, os.Getpid(), hex.EncodeToString(b[:]), base)
	require.NoError(tb, shm.ValidName(name))
	tb.Cleanup(func() { RequireNoLeftovers(tb, name) })
	return name
}

// RequireNoLeftovers fails tb if anything of ring name exists: any file in
// /dev/shm whose name contains "shmpc."+name, or a segment with the ring's
// key in /proc/sysvipc/shm (internal/leakcheck, which derives neither from
// the code under test), and removes what it finds: only that ring's own
// objects (the NAME is unique to the test).
func RequireNoLeftovers(tb testing.TB, name string) {
	tb.Helper()
	left, err := leakcheck.Objects(name)
	require.NoError(tb, err)
	if len(left) == 0 {
		return
	}
	tb.Errorf("ring %s left objects behind: %v", name, left)
	if info, err := shm.Lookup(leakcheck.Key(name)); err == nil {
		_ = shm.RemoveID(info.ID)
	}
	for _, p := range left {
		if strings.HasPrefix(p, leakcheck.Dir+"/") {
			_ = os.Remove(p)
		}
	}
}

// SyncBuffer is a bytes.Buffer safe for one writer (a child process's
// output, copied by exec's goroutine) and readers at once.
type SyncBuffer = syncbuf.Buffer
