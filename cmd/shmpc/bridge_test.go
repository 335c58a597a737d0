package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBridgeRunsShmpcBridge: `shmpc bridge ARGS` becomes shmpc-bridge ARGS
// (found on PATH here), with its exit status and output; without it, one
// line that says how to build it, exit 1.
func TestBridgeRunsShmpcBridge(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "shmpc-bridge")
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\necho \"bridge got: $*\"\nexit 3\n"), 0o755))
	c := startCustom(t, time.Minute, []string{"bridge", "send", "-name", "x", "-subject", "s"}, func(s *started) {
		s.c.Env = append(s.c.Env, "PATH="+dir)
	})
	r := c.wait(t, 30*time.Second)
	require.Equal(t, 3, r.code, r.stderr)
	require.Equal(t, "bridge got: send -name x -subject s", strings.TrimSpace(r.stdout))

	empty := t.TempDir()
	c = startCustom(t, time.Minute, []string{"bridge", "recv"}, func(s *started) {
		s.c.Env = append(s.c.Env, "PATH="+empty)
	})
	r = c.wait(t, 30*time.Second)
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "go build -o shmpc-bridge ./bridge/cmd/shmpc-bridge")
	require.Equal(t, 1, strings.Count(strings.TrimSpace(r.stderr), "\n")+1, "one line: %q", r.stderr)
}
