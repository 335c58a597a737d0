// Package proc identifies processes in a way pid reuse cannot fake: a pid
// together with the process's start time (field 22 of /proc/PID/stat, in
// clock ticks since boot). It is used for messages and `shmpc ls`; the
// authority on whether a ring's owner is alive is the role lock
// (internal/lockfile), which the kernel drops at death.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// ID is a process identity: pid plus start time. The zero ID means "none".
type ID struct {
	PID   int
	Start uint64
}

func (id ID) String() string {
	if id.PID == 0 {
		return "none"
	}
	return strconv.Itoa(id.PID)
}

var (
	selfOnce sync.Once
	self     ID
)

// Self returns the calling process's identity.
func Self() ID {
	selfOnce.Do(func() {
		pid := os.Getpid()
		st, _ := StartTime(pid)
		self = ID{PID: pid, Start: st}
	})
	return self
}

// ErrNoProcess matches the error of StartTime and State for a pid that does
// not exist.
var ErrNoProcess = errors.New("no such process")

// stat returns the state letter and start time of pid from /proc/PID/stat.
func stat(pid int) (state byte, start uint64, err error) {
	if pid <= 0 {
		return 0, 0, fmt.Errorf("stat process %d: %w", pid, ErrNoProcess)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, 0, fmt.Errorf("stat process %d: %w", pid, ErrNoProcess)
		}
		return 0, 0, fmt.Errorf("stat process %d: %w", pid, err)
	}
	// comm (field 2) may contain spaces and parentheses: fields after it
	// start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("stat process %d: malformed /proc/%d/stat", pid, pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("stat process %d: malformed /proc/%d/stat", pid, pid)
	}
	start, err = strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("stat process %d: start time: %w", pid, err)
	}
	return f[0][0], start, nil
}

// StartTime returns the start time of pid in clock ticks since boot.
func StartTime(pid int) (uint64, error) {
	_, st, err := stat(pid)
	return st, err
}

// Alive reports whether the process id names still runs: the pid exists,
// is not a zombie, and started at id.Start (so a reused pid is not taken
// for the original). A pid from another pid namespace cannot be judged
// this way; callers use the role lock for that.
func Alive(id ID) bool {
	if id.PID <= 0 {
		return false
	}
	state, st, err := stat(id.PID)
	if err != nil {
		return false
	}
	return st == id.Start && state != 'Z' && state != 'X'
}
