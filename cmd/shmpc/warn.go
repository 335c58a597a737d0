package main

import (
	"fmt"
	"io"

	"github.com/shmpc/shmpc/shm"
)

// warnRmidForced prints one line when kernel.shm_rmid_forced is 1: the
// kernel then destroys a ring's segment as soon as no process has it
// attached, so a ring whose producer and consumer both died cannot be
// resumed (README, "Operating notes").
func warnRmidForced(w io.Writer, cmd string) {
	if on, err := shm.RmidForced(); err == nil && on {
		fmt.Fprintf(w, "shmpc %s: warning: kernel.shm_rmid_forced=1 destroys a ring's segment when no process has it attached, so a ring cannot be resumed after both sides died; run: sysctl -w kernel.shm_rmid_forced=0\n", cmd)
	}
}
