package modtest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bridgeTimeout bounds the bridge module's whole test run (about 30 s on two
// cores, a few minutes under -race).
const bridgeTimeout = 15 * time.Minute

// TestBridgeModule runs the bridge module's tests (`go test -count=1 ./...`
// in bridge/, with -race, -short and -v when this test has them, and -short
// with -race) and fails with their output when they fail.
func TestBridgeModule(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "bridge"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("the bridge module is missing: %v", err)
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to run the bridge module's tests with")
	}
	args := []string{"test", "-count=1"}
	if raceEnabled {
		// The in-process NATS server of the bridge's tests runs under the
		// race detector too: its full sizes (1 GiB, 100 000 items) took
		// five minutes on two cores, so a race run takes the short ones.
		args = append(args, "-race")
	}
	if testing.Short() || raceEnabled {
		args = append(args, "-short")
	}
	if testing.Verbose() {
		args = append(args, "-v")
	}
	args = append(args, "./...")
	ctx, cancel := context.WithTimeout(context.Background(), bridgeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("go %s in bridge/ did not finish in %v (stopped); its output:\n%s", strings.Join(args, " "), bridgeTimeout, out.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("go %s in bridge/: %v", strings.Join(args, " "), err)
	}
	if err != nil {
		t.Fatalf("go %s in bridge/ failed (%v); its output:\n%s", strings.Join(args, " "), err, out.String())
	}
	t.Logf("go %s in bridge/ passed in %.1fs:\n%s", strings.Join(args, " "), time.Since(start).Seconds(), strings.TrimSpace(out.String()))
}
