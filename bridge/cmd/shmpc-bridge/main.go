// Command shmpc-bridge carries a shmpc ring's stream across hosts through NATS
// JetStream (package github.com/shmpc/shmpc/bridge):
//
//	shmpc-bridge send -name RING -nats URL -subject SUBJ [-stream S]
//	shmpc-bridge recv -name RING -nats URL -subject SUBJ [-stream S] [-durable D]
//
// send is the consumer of the local ring RING and publishes its items; recv
// produces them into the local ring RING on another host, and ends it when the
// source's stream ended. Exit status: 0 ok; 1 error; 2 usage; 3 peer lost;
// 4 integrity error (the core shmpc command's).
//
// SIGINT or SIGTERM stops send gracefully (the items published are released,
// the rest go to the ring's next consumer) with status 0. recv keeps the
// default action of those signals: it dies, and leaves its ring to the next
// recv, which resumes it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shmpc/shmpc/bridge"
	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/producer"
)

// Exit statuses, as the core shmpc command's.
const (
	exitOK        = 0
	exitError     = 1
	exitUsage     = 2
	exitPeerLost  = 3
	exitIntegrity = 4
)

const usage = `usage:
  shmpc-bridge send -name RING -nats URL -subject SUBJ [-stream S] [flags]
  shmpc-bridge recv -name RING -nats URL -subject SUBJ [-stream S] [-durable D] [flags]
shmpc-bridge COMMAND -h lists the flags.
Exit status: 0 ok, 1 error, 2 usage, 3 peer lost, 4 integrity error.
`

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

// profileEnv, as for the core shmpc command, makes send and recv write a Go
// CPU profile to PREFIX.bridge-send.PID.pprof or PREFIX.bridge-recv.PID.pprof.
const profileEnv = "SHMPC_CPUPROFILE"

// startProfile starts the CPU profile of cmd if profileEnv asks for it and
// returns the function that stops it (a no-op otherwise).
func startProfile(cmd string, stderr io.Writer) (stop func()) {
	prefix := os.Getenv(profileEnv)
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.bridge-%s.%d.pprof", prefix, cmd, os.Getpid()))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "shmpc-bridge %s: %s: %v; not profiling\n", cmd, profileEnv, err)
		if f != nil {
			f.Close()
		}
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// run runs one command and returns its exit status.
func run(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "send", "recv":
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "shmpc-bridge: unknown command %q\n%s", args[0], usage)
		return exitUsage
	}
	cmd := args[0]
	fs := flag.NewFlagSet("shmpc-bridge "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the local ring's NAME (required)")
	url := fs.String("nats", nats.DefaultURL, "NATS server URL(s), comma-separated")
	subject := fs.String("subject", "", "the JetStream subject (required)")
	stream := fs.String("stream", "", "the JetStream stream (default: SHMPC_ and the subject)")
	dup := fs.Duration("dup-window", bridge.DefaultDuplicates, "the stream's duplicate window: the longest a restart may take")
	wait := fs.Duration("wait", consumer.DefaultWait, "how long to wait for the ring's peer to appear")
	peer := fs.Duration("peer-timeout", 0, "how long to wait for a new ring peer after one died")
	durable := fs.String("durable", "", "recv: the durable consumer's name (default: shmpc-bridge-NAME)")
	slots := fs.Int("slots", 0, "recv: the local ring's slot count (default: the source's)")
	slotSize := fs.Int("slot-size", 0, "recv: the local ring's slot size in bytes (default: the source's)")
	workers := fs.Int("workers", 1, "send: goroutines verifying items, and the most CPUs the command runs Go code on at once (GOMAXPROCS, unless that is set)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *name == "" || *subject == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shmpc-bridge %s: -name and -subject are required, and no arguments: see shmpc-bridge %s -h\n", cmd, cmd)
		return exitUsage
	}
	if (*slots == 0) != (*slotSize == 0) {
		fmt.Fprintf(stderr, "shmpc-bridge %s: give both -slots and -slot-size, or neither\n", cmd)
		return exitUsage
	}

	if *workers < 1 {
		fmt.Fprintf(stderr, "shmpc-bridge %s: -workers must be at least 1\n", cmd)
		return exitUsage
	}
	// The bridge mostly waits for the network and its ring peer: more
	// Ps than verifying workers only add wake-ups of idle ones (at 64 KiB
	// items, 0.3 s of CPU per GiB sent, on one core the NATS server needs).
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(*workers)
	}
	defer startProfile(cmd, stderr)()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if cmd == "send" {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(sig)
		go func() {
			select {
			case <-sig:
				stop()
			case <-ctx.Done():
			}
		}()
	}
	// nats.go's own notes (an unprefixed "... on connection [N]" line for
	// every asynchronous error) become one-line notes in the command's form.
	note := func(format string, args ...any) {
		fmt.Fprintf(stderr, "shmpc-bridge %s: note: %s\n", cmd, fmt.Sprintf(format, args...))
	}
	nc, err := nats.Connect(*url, nats.Name("shmpc-bridge "+cmd+" "+*name), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { note("NATS: %v", err) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				note("lost the NATS server (%v): reconnecting", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { note("reconnected to %s", c.ConnectedUrlRedacted()) }))
	if err != nil {
		fmt.Fprintf(stderr, "shmpc-bridge %s: connect to %s: %v: start a NATS server with JetStream (nats-server -js) or give -nats\n", cmd, *url, err)
		return exitError
	}
	defer nc.Close()

	start := time.Now()
	if cmd == "send" {
		s, err := bridge.NewSender(ctx, nc, *name, bridge.SenderOptions{
			Subject: *subject, Stream: *stream, Duplicates: *dup,
			Consumer: consumer.Options{Wait: *wait, PeerTimeout: *peer, Workers: *workers},
		})
		if err != nil {
			return fail(ctx, stderr, cmd, err)
		}
		err = s.Run(ctx)
		err = errors.Join(err, s.Close())
		st := s.Stats()
		fmt.Fprintf(stderr, "shmpc-bridge send: %s: %d items, %d bytes, %d messages (%d duplicates dropped, %d retries) in %.3fs\n",
			s.StreamID(), st.Items, st.Bytes, st.Pieces, st.Duplicates, st.Retries, time.Since(start).Seconds())
		return fail(ctx, stderr, cmd, err)
	}
	r, err := bridge.NewReceiver(ctx, nc, *name, bridge.ReceiverOptions{
		Subject: *subject, Stream: *stream, Durable: *durable, Duplicates: *dup,
		Producer: producer.Options{Slots: *slots, SlotSize: *slotSize, Wait: *wait, PeerTimeout: *peer},
	})
	if err != nil {
		return fail(ctx, stderr, cmd, err)
	}
	err = r.Run(ctx)
	if err == nil {
		err = r.Close()
	}
	// After an error the ring stays for the next recv, as after a crash.
	st := r.Stats()
	fmt.Fprintf(stderr, "shmpc-bridge recv: %d items, %d bytes committed (%d messages dropped as delivered, %d ignored, %d consumer restarts) in %.3fs\n",
		st.Items, st.Bytes, st.Dropped, st.Ignored, st.Restarts, time.Since(start).Seconds())
	return fail(ctx, stderr, cmd, err)
}

// fail prints err (if any) and returns its exit status.
func fail(ctx context.Context, stderr io.Writer, cmd string, err error) int {
	switch {
	case err == nil:
		return exitOK
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitOK // stopped by a signal
	}
	fmt.Fprintf(stderr, "shmpc-bridge %s: %v\n", cmd, err)
	switch {
	case errors.Is(err, bridge.ErrIntegrity):
		return exitIntegrity
	case errors.Is(err, consumer.ErrPeerLost), errors.Is(err, producer.ErrPeerLost):
		return exitPeerLost
	}
	return exitError
}
