// Command shmpc moves large blocks of data between two processes through a
// ring of fixed-size slots in System V shared memory, woken by POSIX named
// semaphores.
//
//	shmpc run      start a consumer and a producer process and move 4 GiB between them
//	shmpc produce  write items into the ring NAME
//	shmpc consume  read, verify and process items from the ring NAME
//	shmpc ls       list every ring on the machine, with live counters (-watch D: rates, redrawn)
//	shmpc gc       remove rings whose owners are all dead
//	shmpc bridge   send|recv a ring's stream through NATS JetStream (runs shmpc-bridge)
//
// Exit status: 0 ok; 1 error; 2 usage; 3 peer lost; 4 integrity error.
// When several apply the higher number wins.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
)

// Exit statuses (docs/cli.md, "Exit status"; a contract scripts rely on).
const (
	exitOK        = 0
	exitError     = 1
	exitUsage     = 2
	exitPeerLost  = 3
	exitIntegrity = 4
)

const usage = `usage: shmpc <command> [flags]

commands:
  run       start a consumer and a producer process and move 4 GiB between them
  produce   write items into the ring NAME
  consume   read, verify and process items from the ring NAME
  ls        list every ring on the machine, with live counters (-watch D: rates, redrawn)
  gc        remove rings whose owners are all dead
  bench     the benchmark matrix
  bridge    send|recv: a ring's stream across hosts through NATS JetStream (runs shmpc-bridge)
  version   module version, VCS revision, Go version, CRC32C and payload kernels

Run 'shmpc <command> -h' for a command's flags.
Exit status: 0 ok, 1 error, 2 usage, 3 peer lost, 4 integrity error.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a command-line mistake: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	defer startProfile(profileName(args))()
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = cmdRun(rest, stdout, stderr)
	case "produce":
		err = cmdProduce(rest, stderr)
	case "consume":
		err = cmdConsume(rest, stdout, stderr)
	case "ls":
		err = cmdLs(rest, stdout, stderr)
	case "gc":
		err = cmdGC(rest, stdout, stderr)
	case "bench":
		err = cmdBench(rest, stdout, stderr)
	case "version":
		err = cmdVersion(rest, stdout, stderr)
	case "bridge":
		err = cmdBridge(rest)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "shmpc: unknown command %q\n%s", cmd, usage)
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	var ce *codeError
	if errors.As(err, &ce) && ce.err == nil {
		return ce.code // the message was printed already
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	// One line, whatever the error is made of (errors.Join uses newlines).
	msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
	fmt.Fprintf(stderr, "shmpc %s: %s\n", args[0], msg)
	return exitCode(err)
}

// codeError carries an exit status chosen by a command (err nil: nothing
// more to print).
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *codeError) Unwrap() error { return e.err }

// exitCode maps an error to the documented exit status.
func exitCode(err error) int {
	var ue *usageError
	var ce *codeError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, ring.ErrIntegrity):
		return exitIntegrity
	case errors.Is(err, ringobj.ErrPeerLost):
		return exitPeerLost
	case errors.As(err, &ue):
		return exitUsage
	}
	return exitError
}
