// Command bridge-bench measures the bridge against raw JetStream publishing
// on one NATS server, in one run (issue 17):
//
//	cd bridge && go run ./cmd/bridge-bench [-reps 5] [-sizes 8MiB,64KiB] [-shmpc PATH -bridge PATH]
//
// It starts a NATS server with JetStream in this process (file storage in a
// temporary directory, 127.0.0.1, a random port), builds shmpc and
// shmpc-bridge into a temporary directory unless -shmpc and -bridge name
// them, and for every item size runs -reps rounds of three variants, in
// turn (raw, send, e2e, raw, send, e2e, ...):
//
//   - raw: one Go client, a process of its own (`bridge-bench raw-publish`;
//     in this process with -raw-inprocess), publishes the same bytes to a
//     fresh stream as JetStream messages of the sizes the bridge uses for
//     that item (pieces of the server's max_payload less 4 KiB),
//     asynchronously with the bridge's window (the ring's slot count of
//     items in flight), and waits for every acknowledgement, like
//     `nats bench js pub --pubbatch`. Timed from the first publication to
//     the last acknowledgement.
//   - send: `shmpc produce -count N` into `shmpc-bridge send`, to a fresh
//     stream. Timed from produce's start to send's exit (whole job); send's
//     own time (what it prints) is reported beside it.
//   - e2e: produce, send, `shmpc-bridge recv` into a second ring and
//     `shmpc consume` of that ring. Timed from the first start to consume's
//     exit; consume's own window (-json) is reported beside it.
//
// It prints one table of medians [min-max] in GiB/s of payload and the
// ratios send/raw and e2e/raw (quotients of medians). Every stream is
// deleted after its run; the rings, the binaries it built and the server's
// store are removed at the end, also after an error or SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	sizes        []int64 // item sizes
	totals       []int64 // bytes per run, one per size
	reps         int
	slots        int
	maxPayload   int
	window       int // raw: messages in flight (0: the bridge's)
	rawIDs       bool
	rawInProcess bool
	variants     map[string]bool
	shmpc        string
	bridge       string
	verbose      bool
	minFree      int64
	cpuProfile   string
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run parses args, runs the benchmark and returns the exit status: 0 ok,
// 1 a run failed, 2 usage.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "raw-publish" {
		return rawPublish(args[1:], stdout, stderr)
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "bridge-bench: %v\n", err)
		return 2
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "bridge-bench: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "bridge-bench: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b, err := newBench(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bridge-bench: %v\n", err)
		return 1
	}
	res, err := b.runAll(ctx)
	if cerr := b.close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	printTable(stdout, b, res)
	if err != nil {
		fmt.Fprintf(stderr, "bridge-bench: %v\n", err)
		return 1
	}
	return 0
}

// parseFlags reads the command line.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bridge-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("sizes", "8MiB,64KiB", "item sizes, comma separated")
	totals := fs.String("totals", "2GiB,1GiB", "bytes per run, one per item size (or one for all)")
	reps := fs.Int("reps", 5, "rounds; every round runs each variant once, in turn")
	slots := fs.Int("slots", 8, "slots of the source ring (the bridge's window in items)")
	maxPayload := fs.Int("max-payload", 0, "the server's max_payload in bytes (0: the server's default, 1 MiB)")
	window := fs.Int("window", 0, "raw: messages in flight (0: the bridge's, slots x pieces per item)")
	rawIn := fs.Bool("raw-inprocess", false, "raw: publish from this process (which runs the server) instead of a client process of its own")
	rawIDs := fs.Bool("raw-msgid", false, "raw: give every message a message id, as the bridge does")
	variants := fs.String("variants", "raw,send,e2e", "which variants to run: raw, send, e2e")
	shmpc := fs.String("shmpc", "", "the shmpc binary (default: built from this module's replace of github.com/shmpc/shmpc)")
	bridge := fs.String("bridge", "", "the shmpc-bridge binary (default: built from this module)")
	verbose := fs.Bool("v", false, "report every run on stderr")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (the server and the raw publisher) to `FILE`")
	minFree := fs.String("min-free", "1GiB", "free space to keep in the store's file system beyond the largest run")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("no arguments expected, got %q: see bridge-bench -h", fs.Args())
	}
	o := options{reps: *reps, slots: *slots, maxPayload: *maxPayload, window: *window, rawIDs: *rawIDs, rawInProcess: *rawIn,
		shmpc: *shmpc, bridge: *bridge, cpuProfile: *cpuProfile, verbose: *verbose, variants: map[string]bool{}}
	var err error
	if o.sizes, err = parseSizes(*sizes); err != nil {
		return options{}, fmt.Errorf("-sizes: %w", err)
	}
	if o.totals, err = parseSizes(*totals); err != nil {
		return options{}, fmt.Errorf("-totals: %w", err)
	}
	if len(o.totals) == 1 {
		for len(o.totals) < len(o.sizes) {
			o.totals = append(o.totals, o.totals[0])
		}
	}
	if len(o.totals) != len(o.sizes) {
		return options{}, fmt.Errorf("-totals: give one total per item size (%d) or one for all", len(o.sizes))
	}
	for i, s := range o.sizes {
		if s%4096 != 0 {
			return options{}, fmt.Errorf("-sizes: %d is not a multiple of 4096 (a ring's slot size): give another", s)
		}
		if o.totals[i] < s {
			return options{}, fmt.Errorf("-totals: %d is less than one item of %d: give more", o.totals[i], s)
		}
	}
	if o.minFree, err = parseSize(*minFree); err != nil {
		return options{}, fmt.Errorf("-min-free: %w", err)
	}
	for _, v := range strings.Split(*variants, ",") {
		switch v = strings.TrimSpace(v); v {
		case "raw", "send", "e2e":
			o.variants[v] = true
		default:
			return options{}, fmt.Errorf("-variants: unknown %q: give raw, send or e2e", v)
		}
	}
	if o.reps < 1 || o.slots < 1 || o.window < 0 || o.maxPayload < 0 {
		return options{}, errors.New("-reps and -slots must be at least 1, -window and -max-payload not negative")
	}
	if o.maxPayload != 0 && o.maxPayload <= headroom {
		return options{}, fmt.Errorf("-max-payload %d leaves no room for a piece beside the 4 KiB of headers: give more", o.maxPayload)
	}
	return o, nil
}

// timeout bounds every run; a run that takes longer failed.
func timeout(total int64) time.Duration {
	return 2*time.Minute + time.Duration(total>>20)*100*time.Millisecond // 10 MiB/s at the least
}
