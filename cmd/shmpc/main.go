// Command shmpc moves large blocks of data between two processes through a
// ring of fixed-size slots in System V shared memory.
//
// The producer, consumer and the run/produce/consume/ls/gc subcommands are
// built in a later step; until then every subcommand says so and exits 1.
package main

import (
	"fmt"
	"os"
)

const usage = `usage: shmpc <command> [flags]

commands:
  run       start a producer and a consumer process and move 4 GiB between them
  produce   write items into a ring
  consume   read and verify items from a ring
  ls        list every ring on the machine
  gc        remove rings whose owners are all dead
  bench     the benchmark matrix
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	switch args[0] {
	case "run", "produce", "consume", "ls", "gc", "bench":
		fmt.Fprintf(os.Stderr, "shmpc %s: not built yet (the sem, shm and ring packages come first; see README)\n", args[0])
		return 1
	case "-h", "-help", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "shmpc: unknown command %q\n%s", args[0], usage)
		return 2
	}
}
