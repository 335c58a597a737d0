package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runRaw publishes count items of size bytes to a fresh stream as the
// bridge's pieces, without the bridge, and returns GiB/s from the first
// publication to the last acknowledgement. The publisher is a process of
// its own (this program's raw-publish command), a client like the bridge's
// send, unless -raw-inprocess.
func (b *bench) runRaw(ctx context.Context, size, count int64) (float64, error) {
	_, subject, stream := b.names("raw")
	if err := b.createStream(ctx, stream, subject); err != nil {
		return 0, err
	}
	window := b.o.window
	if window == 0 {
		window = b.o.slots * len(pieces(size, b.maxPayload))
	}
	if b.o.rawInProcess {
		d, err := publishRaw(ctx, b.nc, subject, stream, size, count, window, b.o.rawIDs)
		if err != nil {
			return 0, err
		}
		return gibps(size*count, d), nil
	}
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find this program for raw-publish: %w", err)
	}
	args := []string{"raw-publish", "-nats", b.url, "-subject", subject, "-stream", stream,
		"-size", strconv.FormatInt(size, 10), "-count", strconv.FormatInt(count, 10), "-window", strconv.Itoa(window)}
	if b.o.rawIDs {
		args = append(args, "-msgid")
	}
	p, err := b.start(ctx, "raw-publish", self, args...)
	if err != nil {
		return 0, err
	}
	if err := p.wait(); err != nil {
		return 0, err
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(p.out.String()), 64)
	if err != nil || secs <= 0 {
		return 0, fmt.Errorf("raw-publish printed %q, not its seconds", p.out.String())
	}
	return gibps(size*count, time.Duration(secs*float64(time.Second))), nil
}

// publishRaw publishes count items of size bytes to subject as the bridge's
// pieces: plain messages (no headers; message ids when ids), asynchronously,
// at most window in flight. It returns the time from the first publication to
// the last acknowledgement.
func publishRaw(ctx context.Context, nc *nats.Conn, subject, stream string, size, count int64, window int, ids bool) (time.Duration, error) {
	item := make([]byte, size)
	_, _ = rand.Read(item)
	ps := pieces(size, int(nc.MaxPayload()))
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(max(window, 1)))
	if err != nil {
		return 0, err
	}
	q := make([]jetstream.PubAckFuture, 0, window)
	wait := func(f jetstream.PubAckFuture) error {
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return fmt.Errorf("publish: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("wait for an acknowledgement: %w", ctx.Err())
		}
	}
	start := time.Now()
	for seq := range count {
		off := 0
		for i, n := range ps {
			if len(q) >= window {
				if err := wait(q[0]); err != nil {
					return 0, err
				}
				q = q[1:]
			}
			var opts []jetstream.PublishOpt
			if ids {
				opts = append(opts, jetstream.WithMsgID(stream+"."+strconv.FormatInt(seq, 10)+"."+strconv.Itoa(i)))
			}
			f, err := js.PublishAsync(subject, item[off:off+n], opts...)
			if err != nil {
				return 0, fmt.Errorf("publish: %w", err)
			}
			q = append(q, f)
			off += n
		}
	}
	for _, f := range q {
		if err := wait(f); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// rawPublish is the raw-publish command: publishRaw on a connection of its
// own; it prints the seconds on stdout.
func rawPublish(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bridge-bench raw-publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("nats", nats.DefaultURL, "NATS server URL")
	subject := fs.String("subject", "", "subject (required)")
	stream := fs.String("stream", "", "stream the subject is in (for message ids)")
	size := fs.Int64("size", 8<<20, "item size")
	count := fs.Int64("count", 1, "items")
	window := fs.Int("window", 72, "messages in flight")
	ids := fs.Bool("msgid", false, "give every message a message id")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *subject == "" || *size < 1 || *count < 1 || *window < 1 {
		fmt.Fprintln(stderr, "bridge-bench raw-publish: give -subject, and -size, -count and -window of at least 1")
		return 2
	}
	nc, err := nats.Connect(*url, nats.Name("bridge-bench raw-publish"))
	if err != nil {
		fmt.Fprintf(stderr, "bridge-bench raw-publish: connect to %s: %v\n", *url, err)
		return 1
	}
	defer nc.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d, err := publishRaw(ctx, nc, *subject, *stream, *size, *count, *window, *ids)
	if err != nil {
		fmt.Fprintf(stderr, "bridge-bench raw-publish: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%.6f\n", d.Seconds())
	return 0
}
