// Command natsd runs an embedded NATS server with JetStream as a process of
// its own, for the bridge's process tests and its fault-injection runner
// (cmd/bridge-e2e), which kill it:
//
//	natsd -store DIR [-host 127.0.0.1] [-port 0] [-max-payload 1048576]
//
// Once the server accepts connections it prints one line on standard output,
// "natsd: ready nats://HOST:PORT", with the port it listens on (-port 0: one
// the kernel chose). SIGTERM or SIGINT shuts it down cleanly (exit 0);
// SIGKILL is a crash. Started again with the same -port and -store it
// recovers its streams, their messages and consumers from the store.
// Exit status: 0 ok, 1 error, 2 usage.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run runs the server until a signal stops it and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("natsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("host", "127.0.0.1", "the address to listen on")
	port := fs.Int("port", 0, "the port to listen on (0: one the kernel chooses)")
	store := fs.String("store", "", "the JetStream store directory (required; kept across restarts)")
	maxPayload := fs.Int("max-payload", 1<<20, "the server's max_payload in bytes")
	ready := fs.Duration("ready", 30*time.Second, "how long to wait for the server to accept connections")
	logs := fs.Bool("log", false, "print the server's log on standard error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *store == "" || fs.NArg() > 0 || *port < 0 || *port > 65535 || *maxPayload < 1 {
		fmt.Fprintln(stderr, "natsd: usage: natsd -store DIR [-host H] [-port 0..65535] [-max-payload N] [-ready D] [-log]")
		return 2
	}
	opts := &server.Options{
		Host: *host, Port: *port, JetStream: true, StoreDir: *store,
		MaxPayload: int32(*maxPayload), NoSigs: true, NoLog: !*logs,
	}
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	s, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintf(stderr, "natsd: %v\n", err)
		return 1
	}
	if *logs {
		s.ConfigureLogger()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go s.Start()
	if !s.ReadyForConnections(*ready) {
		s.Shutdown()
		fmt.Fprintf(stderr, "natsd: the server did not accept connections within %v (port %d taken?): give another -port or a longer -ready\n", *ready, *port)
		return 1
	}
	if !s.JetStreamEnabled() {
		s.Shutdown()
		fmt.Fprintf(stderr, "natsd: JetStream did not start on store %s: check the directory\n", *store)
		return 1
	}
	fmt.Fprintf(stdout, "natsd: ready %s\n", s.ClientURL())
	<-sig
	s.Shutdown()
	s.WaitForShutdown()
	return 0
}
