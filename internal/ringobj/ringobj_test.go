package ringobj_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/internal/leakcheck"
	"github.com/shmpc/shmpc/internal/lockfile"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/sem"
	"github.com/shmpc/shmpc/shm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func uniqueName(t *testing.T) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("ro%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
	t.Cleanup(func() {
		left, err := leakcheck.Objects(name)
		require.NoError(t, err)
		if len(left) > 0 {
			t.Errorf("ring %s left objects behind: %v", name, left)
			for _, p := range left { // this test's own (the NAME is unique to it)
				if strings.HasPrefix(p, leakcheck.Dir+"/") {
					_ = os.Remove(p)
				}
			}
		}
	})
	return name
}

// TestNamesFollowTheDesign pins every object name to the design's text,
// written out here rather than derived from the code.
func TestNamesFollowTheDesign(t *testing.T) {
	for _, name := range []string{"a", "x.y-z_1", "e2e-1.x_y"} {
		n, err := ringobj.For(name)
		require.NoError(t, err)
		require.Equal(t, name, n.Ring)
		require.Equal(t, leakcheck.Key(name), n.Key, "SysV key of %q", name)
		var files []string
		for _, s := range n.SemNames() {
			p, err := sem.Path(s)
			require.NoError(t, err)
			files = append(files, p)
		}
		require.Equal(t, []string{
			"/dev/shm/sem.shmpc." + name + ".filled",
			"/dev/shm/sem.shmpc." + name + ".empty",
			"/dev/shm/sem.shmpc." + name + ".ready",
			"/dev/shm/sem.shmpc." + name + ".shutdown",
		}, files)
		require.Equal(t, "/dev/shm/shmpc."+name+".lock", n.Lock)
		require.Equal(t, append(files, n.Lock), n.Files())
	}
	for _, bad := range []string{"", ".x", "a/b", "x y", string(make([]byte, 65))} {
		_, err := ringobj.For(bad)
		require.Error(t, err, "NAME %q", bad)
	}
}

// TestLeftoversSeesEveryObject: with a ring's six objects in place,
// Leftovers and the independent leakcheck agree on all of them, and on
// nothing once they are removed.
func TestLeftoversSeesEveryObject(t *testing.T) {
	name := uniqueName(t)
	n, err := ringobj.For(name)
	require.NoError(t, err)
	sems, err := ringobj.OpenSems(n, true, 0o600, os.Geteuid())
	require.NoError(t, err)
	require.NoError(t, sems.Close())
	t.Cleanup(func() { _ = ringobj.UnlinkSems(n) })
	lock, err := lockfile.Claim(n.Lock, lockfile.Producer, lockfile.ClaimOptions{Create: true, Perm: 0o600, UID: os.Geteuid()})
	require.NoError(t, err)
	seg, err := shm.Create(n.Key, 4096, shm.Options{HugePages: shm.Off, Lock: shm.Off})
	require.NoError(t, err)

	left, err := ringobj.Leftovers(n)
	require.NoError(t, err)
	independent, err := leakcheck.Objects(name)
	require.NoError(t, err)
	require.Len(t, left, 6, "%v", left)
	require.ElementsMatch(t, independent, left)

	require.NoError(t, seg.Remove())
	require.NoError(t, seg.Detach())
	require.NoError(t, ringobj.UnlinkSems(n))
	require.NoError(t, ringobj.LeaveLockFile(lock, n, lockfile.Producer, false, 0))
	require.NoError(t, lock.Close())
	left, err = ringobj.Leftovers(n)
	require.NoError(t, err)
	require.Empty(t, left)
}

// TestCheckSegmentRefusesWhatIsNotOurs: a segment owned by us but created
// by another uid (handed over with IPC_SET), owned by another uid, or with
// a mode beyond the permission bits is not ours.
func TestCheckSegmentRefusesWhatIsNotOurs(t *testing.T) {
	n, err := ringobj.For("r")
	require.NoError(t, err)
	me := 1000
	ours := shm.Info{UID: me, CUID: me, Mode: 0o600}
	require.NoError(t, ringobj.CheckSegment(n, ours, me, 0o600))
	require.NoError(t, ringobj.CheckSegment(n, shm.Info{UID: me, CUID: me, Mode: 0o640}, me, 0o660))
	for what, info := range map[string]shm.Info{
		"handed over":   {UID: me, CUID: 65534, Mode: 0o600},
		"another owner": {UID: 65534, CUID: me, Mode: 0o600},
		"looser mode":   {UID: me, CUID: me, Mode: 0o666},
	} {
		err := ringobj.CheckSegment(n, info, me, 0o600)
		require.True(t, errors.Is(err, ringobj.ErrForeign), "%s: %v", what, err)
		t.Logf("%s: %v", what, err)
	}
}

// TestOpenSemsRefusesForeignFiles: a semaphore file of another uid is
// refused before it is mapped, and nothing of ours is left behind.
func TestOpenSemsRefusesForeignFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a file of another uid")
	}
	name := uniqueName(t)
	n, err := ringobj.For(name)
	require.NoError(t, err)
	s, err := sem.Create(n.Empty, 0, 0o666)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	p, _ := sem.Path(n.Empty)
	require.NoError(t, os.Chown(p, 65534, 65534))
	t.Cleanup(func() { _ = os.Remove(p) })
	_, err = ringobj.OpenSems(n, true, 0o600, 0)
	require.ErrorIs(t, err, sem.ErrForeignOwner)
	t.Logf("%v", err)
	_, err = os.Stat(p)
	require.NoError(t, err, "the foreign file is left alone")
	require.NoError(t, os.Remove(p))
}

// TestLeaveRetriesWhileTheGateIsHeld: a side leaving while another
// process holds the gate (the other side in the middle of its own try)
// must try again once the gate is free, even with no wait for roles; it
// used to give up at once, and two sides leaving together could both
// leave the lock file behind (seen in CI: `consume -stdout | head -c 1`).
func TestLeaveRetriesWhileTheGateIsHeld(t *testing.T) {
	n, err := ringobj.For(uniqueName(t))
	require.NoError(t, err)
	l, err := ringobj.ClaimRole(n, lockfile.Producer, true, 0o600, os.Getuid())
	require.NoError(t, err)
	defer l.Close()

	other, err := os.OpenFile(n.Lock, os.O_RDWR, 0)
	require.NoError(t, err)
	defer other.Close()
	gate := unix.Flock_t{Type: unix.F_WRLCK, Start: 2, Len: 1}
	require.NoError(t, unix.FcntlFlock(other.Fd(), unix.F_OFD_SETLK, &gate))
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(50 * time.Millisecond)
		un := unix.Flock_t{Type: unix.F_UNLCK, Start: 2, Len: 1}
		_ = unix.FcntlFlock(other.Fd(), unix.F_OFD_SETLK, &un)
	}()
	start := time.Now()
	require.NoError(t, ringobj.LeaveLockFile(l, n, lockfile.Producer, false, 0))
	<-released
	require.NoFileExists(t, n.Lock, "the lock file stayed although both roles came free %v after the gate did", time.Since(start))
}

// TestTwoSidesLeavingAtOnce: a producer and a consumer of a ring with no
// segment leave at the same instant, many times over; the lock file must
// be gone after every round.
func TestTwoSidesLeavingAtOnce(t *testing.T) {
	n, err := ringobj.For(uniqueName(t))
	require.NoError(t, err)
	const rounds = 2000
	for i := range rounds {
		p, err := ringobj.ClaimRole(n, lockfile.Producer, true, 0o600, os.Getuid())
		require.NoError(t, err)
		c, err := ringobj.ClaimRole(n, lockfile.Consumer, false, 0o600, os.Getuid())
		require.NoError(t, err)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		startGun := make(chan struct{})
		for j, side := range []struct {
			l *lockfile.File
			r lockfile.Role
		}{{p, lockfile.Producer}, {c, lockfile.Consumer}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-startGun
				errs[j] = ringobj.LeaveLockFile(side.l, n, side.r, false, 0)
			}()
		}
		close(startGun)
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
		require.NoError(t, p.Close())
		require.NoError(t, c.Close())
		if _, err := os.Lstat(n.Lock); err == nil {
			_ = os.Remove(n.Lock)
			t.Fatalf("round %d of %d: both sides left and the lock file stayed", i+1, rounds)
		}
	}
}
