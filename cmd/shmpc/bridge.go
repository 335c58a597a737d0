package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// bridgeProgram is the command of the bridge module (a module of its own,
// so that the core carries no NATS dependency).
const bridgeProgram = "shmpc-bridge"

// cmdBridge runs `shmpc bridge ARGS`: it replaces this process with
// shmpc-bridge ARGS (found next to this executable, then on PATH), so its
// exit status and signals are the bridge's own.
func cmdBridge(args []string) error {
	path, err := findBridge()
	if err != nil {
		return err
	}
	argv := append([]string{bridgeProgram}, args...)
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("run %s: %w", path, err)
	}
	return nil // not reached
}

// findBridge looks for shmpc-bridge next to the running executable, then
// on PATH.
func findBridge() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), bridgeProgram)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(bridgeProgram)
	if err == nil {
		return p, nil
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s is not installed, next to shmpc or on PATH: build it with `go build -o %s ./bridge/cmd/%s` in the repository (the bridge is a module of its own)",
			bridgeProgram, bridgeProgram, bridgeProgram)
	}
	return "", err
}
