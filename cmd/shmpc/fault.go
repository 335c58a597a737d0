package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// faultEnv names the environment variable of the fault-injection hook used
// by the crash tests and the e2e suite: "POINT" or "POINT:N" makes the
// process stop at that point (print a line "shmpc: fault POINT N" on
// stderr and hang until killed) or misbehave there, so a test can kill it
// at a chosen instruction of the protocol. Points:
//
//	produce-in-slot:N     half of item N written into its slot, not committed
//	produce-after:N       N items committed, before item N is reserved
//	produce-corrupt:N     flip a byte of item N in its slot after its CRC was computed
//	produce-ended         the end of the stream marked, before the drain
//	produce-before-cleanup  the stream drained, before the ring is removed
//	consume-in-handler:N  inside the handler of item N, before its release
//
// Unset, it costs one comparison per item.
const faultEnv = "SHMPC_FAULT"

type fault struct {
	point string
	n     uint64
	on    bool
}

func faultFromEnv() fault {
	v := os.Getenv(faultEnv)
	if v == "" {
		return fault{}
	}
	point, num, _ := strings.Cut(v, ":")
	n, _ := strconv.ParseUint(num, 10, 64)
	return fault{point: point, n: n, on: true}
}

// at reports whether the hook is set for point at item seq.
func (f fault) at(point string, seq uint64) bool {
	return f.on && f.point == point && f.n == seq
}

// hang announces the point on stderr and blocks until the process is
// killed.
func (f fault) hang() {
	fmt.Fprintf(os.Stderr, "shmpc: fault %s %d\n", f.point, f.n)
	for {
		time.Sleep(time.Hour)
	}
}
