package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shmpc/shmpc/internal/internalhook"
	"github.com/shmpc/shmpc/internal/payload"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/shm"
)

// produceSummary is the producer's part of a run summary (-json).
type produceSummary struct {
	Role    string  `json:"role"`
	Name    string  `json:"name"`
	Items   uint64  `json:"items"`
	Bytes   uint64  `json:"bytes"`
	Seconds float64 `json:"seconds"`
	Pages   string  `json:"pages"`
	Resumed bool    `json:"resumed"`
	First   uint64  `json:"first_seq"`
	Error   string  `json:"error,omitempty"`
	Exit    int     `json:"exit"`
}

func cmdProduce(args []string, stderr io.Writer) error {
	fs := newFlagSet("produce", stderr, "-name NAME {-count N | -bytes SIZE | -stdin} [flags]\n"+
		"       shmpc produce -name NAME [flags]    resume the ring NAME where its stream stopped")
	var pf produceFlags
	pf.register(fs)
	name := fs.String("name", "", "the ring's NAME (1 to 64 of [A-Za-z0-9_.-], not starting with '.')")
	stdin := fs.Bool("stdin", false, "send standard input: each item is what it had ready, up to the slot size (whole slots from a file, what a pipe holds from a pipe)")
	verbose := fs.Bool("v", false, "report progress and notes on stderr even when it is not a terminal")
	jsonOut := fs.Bool("json", false, "print the summary as one JSON object on stdout")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := requireName(*name); err != nil {
		return err
	}
	if err := pf.check(*stdin); err != nil {
		return err
	}
	slotSize := pf.slotSize.n
	var items, total uint64 // 0 items with total 0 and !stdin: an empty stream
	switch {
	case *stdin:
	case pf.count.set:
		items, total = uint64(pf.count.n), uint64(pf.count.n)*uint64(slotSize)
	case pf.bytes.set:
		total = uint64(pf.bytes.n)
		items = (total + uint64(slotSize) - 1) / uint64(slotSize)
	default:
		// No data source: produce only resumes a ring, whose header says
		// what is left to send.
		if !ringExists(*name) {
			return errNoSource(*name, pf.fresh)
		}
	}
	explicitTotal := pf.count.set || pf.bytes.set
	resumeOnly := !explicitTotal && !*stdin

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	warnRmidForced(stderr, "produce")
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "shmpc produce: "+format+"\n", a...) }
	opt := producer.Options{
		Slots: pf.slots, SlotSize: int(slotSize),
		HugePages: pf.hugepages.p, Lock: pf.mlock.p, Advise: pf.madvise, Pretouch: pf.pretouch,
		Perm: os.FileMode(pf.perm.m), StreamItems: items, StreamBytes: total,
		CheckStream: explicitTotal, Fresh: pf.fresh, NoResume: *stdin, Wait: pf.wait, PeerTimeout: pf.peerTimeout, StallTimeout: pf.stall, Spin: pf.spin, Logf: logf,
	}
	if !flagSet(fs, "slots") {
		opt.Slots = 0 // left out: the ring's when resuming, else the default
	}
	if !pf.slotSize.set {
		opt.SlotSize = 0
	}
	switch f := faultFromEnv(); {
	case f.at("produce-before-cleanup", 0):
		internalhook.ProducerDrained = func(string) { f.hang() }
	case f.at("produce-ended", 0):
		internalhook.ProducerEnded = func(string) { f.hang() }
	}
	p, err := producer.Open(ctx, *name, opt)
	if err != nil {
		if errors.Is(err, producer.ErrGeometry) || errors.Is(err, producer.ErrExists) {
			return &usageError{msg: err.Error()}
		}
		return err
	}
	defer p.Close()
	if resumeOnly && !p.Resumed() {
		// The ring went away after the look above, or -fresh discarded
		// it: a new stream with nothing to send.
		if err := p.Close(); err != nil {
			return err
		}
		return errNoSource(*name, pf.fresh)
	}
	r := p.Ring()
	if p.Resumed() {
		items, total, slotSize = r.StreamItems(), r.StreamBytes(), int64(r.SlotSize())
	}
	if p.Huge() {
		logf("ring %s uses huge pages", *name)
	}

	sum := produceSummary{Role: "producer", Name: *name, Pages: p.Pages(), Resumed: p.Resumed(), First: p.Next()}
	start := time.Now()
	var prog *progress
	if *verbose || isTerminal(stderr) {
		prog = startProgress(stderr, "produce", r, *verbose)
	}
	var runErr error
	if *stdin {
		// An idle pipe must not keep SIGINT/SIGTERM waiting in read(2).
		// A regular file is mapped, not read: one copy instead of two.
		handled, err := produceMapped(ctx, p, os.Stdin, &sum)
		if runErr = err; !handled {
			in, restore, err := interruptibleStdin(ctx, os.Stdin)
			if runErr = err; err == nil {
				runErr = produceStdin(ctx, p, in, &sum)
			}
			restore()
		}
	} else {
		runErr = producePattern(ctx, p, items, total, uint64(slotSize), &sum)
	}
	if ctx.Err() != nil && errors.Is(runErr, ctx.Err()) {
		runErr = nil // SIGINT/SIGTERM: end the stream where it stands
	}
	// The progress reader looks at the ring, which End removes.
	prog.stop()
	if runErr == nil {
		// Ending waits for the consumer to drain; a signal must not cut
		// that short, so it runs without ctx.
		runErr = p.End(context.Background())
	}
	sum.Seconds = time.Since(start).Seconds()
	closeErr := p.Close()
	if runErr == nil {
		runErr = closeErr
	}
	if runErr != nil {
		sum.Error = runErr.Error()
		sum.Exit = exitCode(runErr)
	}
	if *jsonOut {
		b, _ := json.Marshal(sum)
		fmt.Fprintf(os.Stdout, "%s\n", b)
	}
	if runErr == nil || *verbose {
		fmt.Fprintf(stderr, "shmpc produce: %d items, %s in %.3f s (%s), pages %s\n",
			sum.Items, formatBytes(sum.Bytes), sum.Seconds, formatRate(sum.Bytes, sum.Seconds), sum.Pages)
	}
	return runErr
}

// errNoSource is the usage error of a produce that has nothing to send:
// no data source given and no ring NAME to resume (or -fresh).
func errNoSource(name string, fresh bool) error {
	if fresh {
		return usagef("nothing to send: -fresh starts a new stream, give -count N, -bytes SIZE or -stdin")
	}
	return usagef("nothing to send: give -count N, -bytes SIZE or -stdin (without one, produce resumes an existing ring, and %s has none)", name)
}

// ringExists reports whether a segment has ring name's key (a ring to
// resume, or something Open will judge and refuse). A failed look counts
// as yes: Open then gives the real error.
func ringExists(name string) bool {
	n, err := ringobj.For(name)
	if err != nil {
		return true
	}
	_, err = shm.Lookup(n.Key)
	return !errors.Is(err, fs.ErrNotExist)
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}

// producePattern sends items [p.Next(), items) of the benchmark payload (internal/payload):
// full slots, and a shorter last one when total is not a multiple; nothing
// when the ring's stream has ended.
func producePattern(ctx context.Context, p *producer.Producer, items, total, slotSize uint64, sum *produceSummary) error {
	if p.Ended() {
		// A resumed ring whose stream ended (at -count, or earlier by a
		// signal) before its producer died: nothing more can be sent; End
		// waits for the drain of what is there.
		return nil
	}
	f := faultFromEnv()
	for seq := p.Next(); seq < items; seq++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if f.at("produce-after", seq) {
			f.hang()
		}
		n := slotSize
		if seq == items-1 && total%slotSize != 0 {
			n = total % slotSize
		}
		s, err := p.Reserve(ctx)
		if err != nil {
			return err
		}
		if f.at("produce-in-slot", seq) {
			payload.Fill(s.Buf[:n/2], seq)
			f.hang()
		}
		crc := payload.Fill(s.Buf[:n], seq) // checksums the generated data, not the slot
		if f.at("produce-corrupt", seq) {
			s.Buf[n/2] ^= 0x40
		}
		if err := p.CommitCRC(int(n), crc); err != nil {
			return err
		}
		sum.Items++
		sum.Bytes += n
	}
	return nil
}

// produceStdin sends r through a producer.Writer's ReadFrom: each item is
// what r had ready, up to the slot size (a regular file fills whole slots,
// a pipe gives what it holds), read into a cached buffer and copied on into
// the slot with its checksum in one pass. The stream is not ended here:
// the caller ends it (End), also after a signal.
func produceStdin(ctx context.Context, p *producer.Producer, r io.Reader, sum *produceSummary) error {
	before := p.Next()
	n, err := p.Writer(ctx).ReadFrom(readErrors{r})
	sum.Items += p.Next() - before
	sum.Bytes += uint64(n)
	return err
}

// readErrors names standard input in its read errors (io.EOF stays bare).
type readErrors struct{ r io.Reader }

func (e readErrors) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("read standard input: %w", err)
	}
	return n, err
}
