package main

import (
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/internal/ringobj"
)

// TestLs: a live ring shows in `ls` and `ls -json` with its geometry,
// indices and live owners; after it ends it is gone.
func TestLs(t *testing.T) {
	name := ringName(t)
	p := start(t, time.Minute, nil, "produce", "-name", name, "-slots", "3", "-slot-size", "8KiB", "-count", "10", "-hugepages", "off")
	n, _ := ringobj.For(name)
	waitFull(t, n, 3)

	r := shmpc(t, 30*time.Second, nil, "ls", "-json")
	require.Equal(t, 0, r.code, r.stderr)
	var found map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if m["name"] == name {
			found = m
		}
	}
	require.NotNil(t, found, "ring %s not listed:\n%s", name, r.stdout)
	for _, k := range []string{"name", "key", "slots", "slot_size", "pages", "head", "tail", "owner_uid",
		"producer_pid", "producer_alive", "consumer_pid", "consumer_alive"} {
		require.Contains(t, found, k)
	}
	require.EqualValues(t, 3, found["slots"])
	require.EqualValues(t, 8192, found["slot_size"])
	require.EqualValues(t, 3, found["head"])
	require.EqualValues(t, 0, found["tail"])
	require.EqualValues(t, os.Geteuid(), found["owner_uid"])
	require.EqualValues(t, p.c.Process.Pid, found["producer_pid"])
	require.Equal(t, true, found["producer_alive"])
	require.Equal(t, false, found["consumer_alive"])
	require.Equal(t, "normal", found["pages"])

	r = shmpc(t, 30*time.Second, nil, "ls")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, name)
	require.Contains(t, r.stdout, "alive")

	require.NoError(t, p.c.Process.Signal(syscall.SIGTERM))
	c := start(t, time.Minute, nil, "consume", "-name", name)
	require.Equal(t, 0, p.wait(t, time.Minute).code)
	require.Equal(t, 0, c.wait(t, time.Minute).code)
	r = shmpc(t, 30*time.Second, nil, "ls", "-json")
	require.NotContains(t, r.stdout, name)
}
