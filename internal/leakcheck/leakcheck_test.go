package leakcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestKeyVectors pins the key of a few NAMEs, computed outside Go (with
// Python, from the definition: FNV-1a-32 of "shmpc:"+NAME, top bit
// cleared), so a change of the hash, the prefix or the top-bit rule fails
// here whatever the code under test does.
func TestKeyVectors(t *testing.T) {
	for name, want := range map[string]int{
		"a":                     0x54c46075,
		"ring":                  0x1af2ee2c,
		"e2e-1.x_y":             0x561e30dc,
		strings.Repeat("x", 64): 0x468dbab6,
	} {
		require.Equal(t, want, Key(name), name)
	}
}

// TestObjectsFindsWhatTheCodeDoesNotName: any file with the ring's name in
// it and the segment with its key are found, and removing them empties the
// list.
func TestObjectsFindsWhatTheCodeDoesNotName(t *testing.T) {
	name := "leakcheck" + filepath.Base(t.TempDir())
	require.NotContains(t, name, "/")
	paths := []string{
		Dir + "/shmpc." + name + ".lock",
		Dir + "/sem.shmpc." + name + ".filled",
		Dir + "/shmpc." + name + ".something-new",
	}
	for _, p := range paths {
		require.NoError(t, os.WriteFile(p, nil, 0o600))
		t.Cleanup(func() { _ = os.Remove(p) })
	}
	id, err := unix.SysvShmGet(Key(name), 4096, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil) })

	got, err := Objects(name)
	require.NoError(t, err)
	require.Len(t, got, 4, "%v", got)
	require.Contains(t, got, paths[2], "a file the code does not name is a leftover too")
	require.Contains(t, got[3], "segment key")

	for _, p := range paths {
		require.NoError(t, os.Remove(p))
	}
	_, err = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	require.NoError(t, err)
	got, err = Objects(name)
	require.NoError(t, err)
	require.Empty(t, got)
}
