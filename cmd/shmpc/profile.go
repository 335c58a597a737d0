package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
)

// profileEnv names the environment variable that makes produce and consume
// (and the peers of bench) write a CPU profile (runtime/pprof): PREFIX gives
// PREFIX.produce.PID.pprof and PREFIX.consume.PID.pprof, so that `shmpc run`,
// whose children inherit the environment, profiles both sides of one
// transfer; a `bench peer ROLE` process writes PREFIX.peer-ROLE.PID.pprof.
// Read them with `go tool pprof -top shmpc PREFIX.produce.PID.pprof`.
const profileEnv = "SHMPC_CPUPROFILE"

// profileName is the name the profile of the command line args goes by:
// the command, or peer-ROLE for `bench peer ROLE`.
func profileName(args []string) string {
	if len(args) > 2 && args[0] == "bench" && args[1] == "peer" {
		return "peer-" + args[2]
	}
	return args[0]
}

// startProfile starts the CPU profile of command cmd if profileEnv asks for
// it, and returns the function that stops it (a no-op otherwise). A profile
// that cannot be started is reported on stderr and skipped.
func startProfile(cmd string) (stop func()) {
	prefix := os.Getenv(profileEnv)
	if prefix == "" || (cmd != "produce" && cmd != "consume" && !strings.HasPrefix(cmd, "peer-")) {
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
