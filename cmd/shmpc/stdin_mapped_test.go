package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// inputFile writes n random bytes to a file of the test's and returns its
// path and contents.
func inputFile(t *testing.T, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	_, _ = rand.Read(data)
	path := filepath.Join(t.TempDir(), "input")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path, data
}

// TestStdinFileFromItsOffset: a regular file on standard input is sent
// from the offset it was left at (mapped, not read: an earlier command of
// a script may have read the start), whole slots but for the last, and
// the offset is left after what was sent.
func TestStdinFileFromItsOffset(t *testing.T) {
	const slot, skip = 64 << 10, 1000
	path, data := inputFile(t, 3<<20+77)
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Seek(skip, io.SeekStart)
	require.NoError(t, err)
	name := ringName(t)
	p := startCustom(t, time.Minute, []string{"produce", "-name", name, "-stdin", "-slots", "8", "-slot-size", "64KiB", "-hugepages", "off", "-json"},
		func(s *started) { s.c.Stdin = f })
	c := start(t, time.Minute, nil, "consume", "-name", name, "-stdout")
	cr := c.wait(t, 30*time.Second)
	require.Equal(t, 0, cr.code, cr.stderr)
	pr := p.wait(t, 30*time.Second)
	require.Equal(t, 0, pr.code, pr.stderr)
	require.Equal(t, sha256.Sum256(data[skip:]), sha256.Sum256([]byte(cr.stdout)), "what the consumer wrote")
	var sum struct{ Items, Bytes uint64 }
	require.NoError(t, json.Unmarshal([]byte(lastLine(pr.stdout)), &sum), pr.stdout)
	want := uint64(len(data) - skip)
	require.Equal(t, want, sum.Bytes)
	require.Equal(t, (want+slot-1)/slot, sum.Items, "whole slots but for the last")
	at, err := f.Seek(0, io.SeekCurrent)
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), at, "the offset after what was sent")
}

// TestStdinFileTruncatedWhileSent: a file on standard input that is cut
// short while the producer has it mapped faults on the pages it lost; the
// producer stops with a one-line error (exit 1), not killed by SIGBUS,
// after the items before the cut were sent whole.
func TestStdinFileTruncatedWhileSent(t *testing.T) {
	const slots, slot = 8, 64 << 10
	path, data := inputFile(t, 3<<20)
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	name := ringName(t)
	p := startCustom(t, time.Minute, []string{"produce", "-name", name, "-stdin", "-slots", fmt.Sprint(slots), "-slot-size", "64KiB", "-hugepages", "off", "-wait", "30s"},
		func(s *started) { s.c.Stdin = f })
	// The producer has the file mapped and the ring full: it waits for a
	// consumer before item 8.
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := lsRingJSON(t, name)
		if m != nil && m["head"] == float64(slots) {
			break
		}
		require.True(t, time.Now().Before(deadline), "the producer did not fill its ring within 20s")
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, os.Truncate(path, slot*slots/2))
	c := start(t, time.Minute, nil, "consume", "-name", name, "-stdout")
	pr := p.wait(t, 30*time.Second)
	require.Equal(t, exitError, pr.code, "producer stderr:\n%s", pr.stderr)
	require.Contains(t, pr.stderr, "shrank")
	require.Equal(t, 1, strings.Count(strings.TrimSpace(lastLine(pr.stderr)), "\n")+1)
	cr := c.wait(t, 30*time.Second)
	require.Equal(t, sha256.Sum256(data[:slots*slot]), sha256.Sum256([]byte(cr.stdout)), "the items sent before the cut, whole (consumer exit %d: %s)", cr.code, cr.stderr)
}
