package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/internal/ringobj"
)

// TestLsOtherUsersRing: a ring another user cannot attach (0600, owned by
// root) still shows in that user's `ls -json` with its name, key and
// owner uid.
func TestLsOtherUsersRing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run ls as another user (nobody)")
	}
	name := ringName(t)
	p := start(t, time.Minute, nil, "produce", "-name", name, "-slots", "2", "-slot-size", "4096", "-count", "10", "-hugepages", "off")
	n, _ := ringobj.For(name)
	waitFull(t, n, 2)

	// A copy of the test binary that nobody may execute.
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755)) // t.TempDir's parent is 0700
	bin := filepath.Join(dir, "shmpc")
	b, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, b, 0o755))

	c := exec.Command(bin, "ls", "-json")
	c.Env = append(os.Environ(), asMainEnv+"=1")
	c.Dir = dir
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := c.Output()
	require.NoError(t, err, "ls as nobody: %s", out)
	var found *ringInfo
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var ri ringInfo
		if json.Unmarshal([]byte(line), &ri) == nil && ri.Name == name {
			found = &ri
		}
	}
	require.NotNil(t, found, "ring %s not listed for nobody:\n%s", name, out)
	require.Equal(t, 0, found.OwnerUID)
	require.NotEmpty(t, found.Key)
	require.Contains(t, found.State, "cannot attach")

	require.NoError(t, p.c.Process.Signal(syscall.SIGTERM))
	cons := start(t, time.Minute, nil, "consume", "-name", name)
	require.Equal(t, 0, p.wait(t, time.Minute).code)
	require.Equal(t, 0, cons.wait(t, time.Minute).code)
}
