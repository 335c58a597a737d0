package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"github.com/shmpc/shmpc/consumer"
)

// consumeSummary is the consumer's part of a run summary (-json).
type consumeSummary struct {
	Role            string  `json:"role"`
	Name            string  `json:"name"`
	Items           uint64  `json:"items"`
	Bytes           uint64  `json:"bytes"`
	Seconds         float64 `json:"seconds"`
	GiBPerSec       float64 `json:"gib_per_s"`
	IntegrityErrors uint64  `json:"integrity_errors"`
	Pages           string  `json:"pages"`
	Error           string  `json:"error,omitempty"`
	Exit            int     `json:"exit"`
}

// errOutputClosed stops a -stdout consumer whose reader went away.
var errOutputClosed = errors.New("standard output closed")

func cmdConsume(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("consume", stderr, "-name NAME [flags]")
	var cf consumeFlags
	cf.register(fs, true)
	name := fs.String("name", "", "the ring's NAME")
	toStdout := fs.Bool("stdout", false, "write the items to standard output, in order, as verified private copies")
	verbose := fs.Bool("v", false, "report progress and notes on stderr even when it is not a terminal")
	jsonOut := fs.Bool("json", false, "print the summary as one JSON object on stdout (not with -stdout)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := requireName(*name); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	if *toStdout && *jsonOut {
		return usagef("-json and -stdout both write to standard output: give one")
	}

	var manifest *os.File
	if cf.manifest != "" {
		f, err := os.OpenFile(cf.manifest, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open manifest: %w", err)
		}
		defer f.Close()
		manifest = f
	}
	if *toStdout {
		// A reader that goes away (| head) must end us quietly, not kill
		// us with SIGPIPE: with the signal caught, writes return EPIPE.
		signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "shmpc consume: "+format+"\n", a...) }
	c, err := consumer.Open(ctx, *name, consumer.Options{
		Workers: cf.workers, Ordered: *toStdout, Copy: *toStdout || manifest != nil,
		Wait: cf.wait, PeerTimeout: cf.peerTimeout, StallTimeout: cf.stall, Spin: cf.spin, Logf: logf,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while waiting for the producer
		}
		return err
	}
	defer c.Close()

	var mu sync.Mutex // serialises manifest lines (one write each, O_APPEND)
	var line []byte
	f := faultFromEnv()
	handler := func(seq uint64, data []byte) error {
		if f.at("consume-in-handler", seq) {
			f.hang()
		}
		if manifest != nil {
			mu.Lock()
			line = append(line[:0], `{"seq":`...)
			line = strconv.AppendUint(line, seq, 10)
			line = append(line, `,"len":`...)
			line = strconv.AppendInt(line, int64(len(data)), 10)
			line = append(line, `,"crc32c":`...)
			line = strconv.AppendUint(line, uint64(crc32c(data)), 10)
			line = append(line, "}\n"...)
			_, err := manifest.Write(line)
			mu.Unlock()
			if err != nil {
				return fmt.Errorf("write manifest: %w", err)
			}
		}
		if *toStdout {
			if _, err := stdout.Write(data); err != nil {
				if errors.Is(err, syscall.EPIPE) {
					return errOutputClosed
				}
				return fmt.Errorf("write standard output: %w", err)
			}
		}
		return nil
	}
	var prog *progress
	if *verbose || isTerminal(stderr) {
		prog = startProgress(stderr, "consume", c.Ring(), *verbose)
	}
	var runErr error
	if *toStdout {
		runErr = pullLoop(ctx, c, handler)
	} else {
		runErr = c.Run(ctx, handler)
	}
	prog.stop()
	if ctx.Err() != nil && errors.Is(runErr, ctx.Err()) {
		runErr = nil // SIGINT/SIGTERM: a graceful stop, exit 0
	}
	if errors.Is(runErr, errOutputClosed) {
		runErr = nil // the reader has what it wanted
	}
	st := c.Stats()
	sum := consumeSummary{
		Role: "consumer", Name: *name, Items: st.Items, Bytes: st.Bytes, Seconds: st.Seconds,
		GiBPerSec: gibPerSec(st.Bytes, st.Seconds), IntegrityErrors: st.IntegrityErrors, Pages: c.Pages(),
	}
	closeErr := c.Close()
	if runErr == nil {
		runErr = closeErr
	}
	if runErr != nil {
		sum.Error = runErr.Error()
		sum.Exit = exitCode(runErr)
	}
	if *jsonOut {
		b, _ := json.Marshal(sum)
		fmt.Fprintf(stdout, "%s\n", b)
	}
	if runErr == nil || *verbose {
		fmt.Fprintf(stderr, "shmpc consume: %d items, %s in %.3f s (%s), %d integrity errors, pages %s\n",
			sum.Items, formatBytes(sum.Bytes), sum.Seconds, formatRate(sum.Bytes, sum.Seconds), sum.IntegrityErrors, sum.Pages)
	}
	return runErr
}

// pullLoop is -stdout's reading loop, on the consumer's pull API: the items
// in sequence order (verified, the ones behind by the other workers), each
// handled (written, and listed in the manifest) and then released. It
// returns nil at the end of the stream, which Next has then reported
// drained.
func pullLoop(ctx context.Context, c *consumer.Consumer, h consumer.Handler) error {
	for {
		it, err := c.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := h(it.Seq, it.Data); err != nil {
			return fmt.Errorf("handler for item %d: %w", it.Seq, err)
		}
		if err := it.Release(); err != nil {
			return err
		}
	}
}
