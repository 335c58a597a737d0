package lockfile

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/internal/internalhook"
)

const helperEnv = "SHMPC_LOCKFILE_HELPER"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		// Helper process: take the producer role, say so, then block until killed.
		l, err := Open(path, false, 0, -1)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		if err := l.TryLock(Producer); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func tempPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), fmt.Sprintf("shmpc.test%d.lock", os.Getpid()))
}

func TestRolesAreIndependentAndExclusive(t *testing.T) {
	path := tempPath(t)
	a, err := Open(path, true, 0o600, os.Getuid())
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	b, err := Open(path, false, 0, os.Getuid())
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })

	require.NoError(t, a.TryLock(Producer))
	require.NoError(t, a.TryLock(Producer), "relocking our own role succeeds")
	require.ErrorIs(t, b.TryLock(Producer), ErrHeld)
	held, err := b.Held(Producer)
	require.NoError(t, err)
	require.True(t, held)
	held, err = a.Held(Producer)
	require.NoError(t, err)
	require.False(t, held, "our own lock is not another's")

	require.NoError(t, b.TryLock(Consumer), "the consumer byte is separate")
	held, err = a.Held(Consumer)
	require.NoError(t, err)
	require.True(t, held)

	require.NoError(t, a.Unlock(Producer))
	require.NoError(t, b.TryLock(Producer))
	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "Close is idempotent")
	require.ErrorIs(t, b.TryLock(Producer), os.ErrClosed)
	require.NoError(t, a.TryLock(Producer), "closing b dropped its locks")
}

func TestPermIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	t.Cleanup(func() { syscall.Umask(old) })
	path := tempPath(t)
	l, err := Open(path, true, 0o660, -1)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	_, perm, err := l.Stat()
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o660), perm)
}

func TestRefusesSymlinkMissingAndForeign(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	require.NoError(t, os.WriteFile(target, nil, 0o600))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(target, link))
	_, err := Open(link, true, 0o600, -1)
	require.ErrorIs(t, err, ErrForeign)

	_, err = Open(filepath.Join(dir, "absent"), false, 0, -1)
	require.ErrorIs(t, err, fs.ErrNotExist)

	_, err = Open(target, false, 0, os.Getuid()+1)
	require.ErrorIs(t, err, ErrForeign)

	require.NoError(t, os.Mkdir(filepath.Join(dir, "d"), 0o700))
	_, err = Open(filepath.Join(dir, "d"), false, 0, -1)
	require.Error(t, err)
}

func TestRemoveLockedOnlyOurInodeWithAllLocks(t *testing.T) {
	path := tempPath(t)
	a, err := Open(path, true, 0o600, -1)
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	_, err = a.RemoveLocked()
	require.Error(t, err, "removing without the locks is refused")
	_, err = os.Stat(path)
	require.NoError(t, err)

	require.NoError(t, os.Remove(path))
	b, err := Open(path, true, 0o600, -1) // a successor's file
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	_, err = a.LockAll()
	require.NoError(t, err)
	removed, err := a.RemoveLocked()
	require.NoError(t, err)
	require.False(t, removed)
	_, err = os.Stat(path)
	require.NoError(t, err, "a must not remove its successor's file")
	_, err = b.LockAll()
	require.NoError(t, err)
	removed, err = b.RemoveLocked()
	require.NoError(t, err)
	require.True(t, removed)
	_, err = os.Stat(path)
	require.ErrorIs(t, err, fs.ErrNotExist)
}

// TestLockAllRespectsHolders: a cleaner gets nothing while either role or
// a claimant's gate is held, and holds afterwards exactly what it held
// before.
func TestLockAllRespectsHolders(t *testing.T) {
	path := tempPath(t)
	owner, err := Claim(path, Consumer, ClaimOptions{Create: true, Perm: 0o600, UID: -1})
	require.NoError(t, err)
	t.Cleanup(func() { owner.Close() })
	c, err := Open(path, false, 0, -1)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })

	_, err = c.LockAll()
	require.ErrorIs(t, err, ErrHeld, "the consumer role is held")
	held, err := owner.Held(Producer)
	require.NoError(t, err)
	require.False(t, held, "a failed LockAll gives back the producer role it took")
	held, err = owner.Held(gate)
	require.NoError(t, err)
	require.False(t, held, "a failed LockAll gives back the gate")

	// The owner, holding the consumer role, cleans up: it keeps its role.
	undo, err := owner.LockAll()
	require.NoError(t, err)
	undo()
	held, err = c.Held(Consumer)
	require.NoError(t, err)
	require.True(t, held, "undo keeps the role held before LockAll")
	held, err = c.Held(Producer)
	require.NoError(t, err)
	require.False(t, held)

	// A claimant holding the gate shared keeps a cleaner out.
	require.NoError(t, c.setLock(unix.F_RDLCK, gate))
	require.NoError(t, owner.Unlock(Consumer))
	other, err := Open(path, false, 0, -1)
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })
	_, err = other.LockAll()
	require.ErrorIs(t, err, ErrHeld)
}

// TestClaimWaitsForCleaner: a role is not refused because a cleaner holds
// it for a moment; the claim waits for the cleaner and gets the path's
// current file.
func TestClaimWaitsForCleaner(t *testing.T) {
	path := tempPath(t)
	cleaner, err := Open(path, true, 0o600, -1)
	require.NoError(t, err)
	t.Cleanup(func() { cleaner.Close() })
	_, err = cleaner.LockAll()
	require.NoError(t, err)

	_, err = Claim(path, Producer, ClaimOptions{Create: true, Perm: 0o600, UID: -1, Wait: 20 * time.Millisecond})
	require.ErrorIs(t, err, ErrCleaning, "a cleaner holding the gate past the wait")

	done := make(chan error, 1)
	var got *File
	go func() {
		var err error
		got, err = Claim(path, Producer, ClaimOptions{Create: true, Perm: 0o600, UID: -1, Wait: 5 * time.Second})
		done <- err
	}()
	time.Sleep(30 * time.Millisecond)
	removed, err := cleaner.RemoveLocked()
	require.NoError(t, err)
	require.True(t, removed)
	require.NoError(t, cleaner.Close())
	select {
	case err := <-done:
		require.NoError(t, err, "the claim succeeds once the cleaner is gone")
	case <-time.After(10 * time.Second):
		t.Fatal("Claim did not return within 10s of the cleaner leaving")
	}
	t.Cleanup(func() { got.Close() })
	stale, err := got.Stale()
	require.NoError(t, err)
	require.False(t, stale, "the claimed file is the one at the path, not the removed one")
}

// TestClaimRestartsOnReplacedFile holds a claimant between its open and
// its locks (the LockFileOpened hook) while the file is removed and made
// anew: the claim must end on the new file, never hold a role on the
// removed one.
func TestClaimRestartsOnReplacedFile(t *testing.T) {
	path := tempPath(t)
	first, err := Open(path, true, 0o600, -1)
	require.NoError(t, err)
	t.Cleanup(func() { first.Close() })

	var calls atomic.Int32
	opened, release := make(chan struct{}), make(chan struct{})
	internalhook.LockFileOpened = func(string) {
		if calls.Add(1) == 1 {
			close(opened)
			<-release
		}
	}
	t.Cleanup(func() { internalhook.LockFileOpened = nil })
	stales := 0
	done := make(chan error, 1)
	var got *File
	go func() {
		var err error
		got, err = Claim(path, Producer, ClaimOptions{Create: true, Perm: 0o600, UID: -1, OnStale: func() { stales++ }})
		done <- err
	}()
	<-opened
	// While the claimant sleeps between open and lock: the owner removes
	// the file, a successor makes a new one and holds its producer role.
	_, err = first.LockAll()
	require.NoError(t, err)
	removed, err := first.RemoveLocked()
	require.NoError(t, err)
	require.True(t, removed)
	successor, err := Claim(path, Producer, ClaimOptions{Create: true, Perm: 0o600, UID: -1})
	require.NoError(t, err)
	t.Cleanup(func() { successor.Close() })
	close(release)
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrHeld, "the claimant must meet the successor's role, not take a role on the removed file")
	case <-time.After(10 * time.Second):
		t.Fatal("Claim did not return within 10s")
	}
	require.Nil(t, got)
	require.Equal(t, 1, stales, "the claimant noticed the replaced file once")
}

func TestOpenRefusesLooseMode(t *testing.T) {
	path := tempPath(t)
	l, err := Open(path, true, 0o666, -1)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	_, err = Open(path, false, 0o600, os.Getuid())
	require.ErrorIs(t, err, ErrForeign, "a 0666 file is not a 0600 ring's")
	_, err = Open(path, false, 0o666, os.Getuid())
	require.NoError(t, err)
}

// TestLockDiesWithHolder kills a process holding the producer role and
// shows the role becomes free at once.
func TestLockDiesWithHolder(t *testing.T) {
	path := tempPath(t)
	l, err := Open(path, true, 0o600, -1)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path, "GORACE=atexit_sleep_ms=0")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		require.Equal(t, "locked\n", s)
	case <-time.After(10 * time.Second):
		t.Fatal("helper did not report its lock within 10s")
	}
	require.ErrorIs(t, l.TryLock(Producer), ErrHeld)
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	held, err := l.Held(Producer)
	require.NoError(t, err)
	require.False(t, held, "the kernel drops the lock when its holder dies")
	require.NoError(t, l.TryLock(Producer))
}
