package proc

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSelfIsAlive(t *testing.T) {
	id := Self()
	require.Equal(t, os.Getpid(), id.PID)
	require.NotZero(t, id.Start)
	require.True(t, Alive(id))
	require.False(t, Alive(ID{PID: id.PID, Start: id.Start + 1}), "a different start time is another process")
	require.False(t, Alive(ID{}))
}

func TestDeadChildIsNotAlive(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	st, err := StartTime(cmd.Process.Pid)
	require.NoError(t, err)
	id := ID{PID: cmd.Process.Pid, Start: st}
	require.True(t, Alive(id))
	require.NoError(t, cmd.Process.Kill())
	// Until it is reaped the child is a zombie, which is not alive either.
	deadline := time.Now().Add(5 * time.Second)
	for Alive(id) {
		require.True(t, time.Now().Before(deadline), "killed child still alive after 5s")
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Wait()
	require.False(t, Alive(id))
	_, err = StartTime(cmd.Process.Pid)
	require.ErrorIs(t, err, ErrNoProcess)
}
