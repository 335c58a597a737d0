package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// profileEnv names the environment variable that makes produce and consume
// write a CPU profile (runtime/pprof): PREFIX gives PREFIX.produce.PID.pprof
// and PREFIX.consume.PID.pprof, so that `shmpc run`, whose children inherit
// the environment, profiles both sides of one transfer. Read them with `go
// tool pprof -top shmpc PREFIX.produce.PID.pprof`.
const profileEnv = "SHMPC_CPUPROFILE"

// startProfile starts the CPU profile of command cmd if profileEnv asks for
// it, and returns the function that stops it (a no-op otherwise). A profile
// that cannot be started is reported on stderr and skipped.
func startProfile(cmd string) (stop func()) {
	prefix := os.Getenv(profileEnv)
	if prefix == "" || (cmd != "produce" && cmd != "consume") {
		return func() {}
	}
	path := fmt.Sprintf("%s.%s.%d.pprof", prefix, cmd, os.Getpid())
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "shmpc %s: %s: %v; not profiling\n", cmd, profileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "shmpc %s: %s: %v; not profiling\n", cmd, profileEnv, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
