package lockfile

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
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

func TestRemoveOnlyOurInode(t *testing.T) {
	path := tempPath(t)
	a, err := Open(path, true, 0o600, -1)
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	require.NoError(t, os.Remove(path))
	b, err := Open(path, true, 0o600, -1) // a successor's file
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	require.NoError(t, a.Remove())
	_, err = os.Stat(path)
	require.NoError(t, err, "a must not remove its successor's file")
	require.NoError(t, b.Remove())
	_, err = os.Stat(path)
	require.ErrorIs(t, err, fs.ErrNotExist)
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
