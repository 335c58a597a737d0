package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// proc is a started process; its output is kept.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    bytes.Buffer
	errOut bytes.Buffer
	done   chan struct{}
	end    time.Time // when Wait returned
	cpu    time.Duration
	err    error
}

// start starts path with args; the process is killed when ctx ends. Its CPU
// time counts to the run's clients (b.procs).
func (b *bench) start(ctx context.Context, name, path string, args ...string) (*proc, error) {
	p := &proc{name: name, cmd: exec.CommandContext(ctx, path, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errOut
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	b.procs = append(b.procs, p)
	go func() {
		p.err = p.cmd.Wait()
		p.end = time.Now()
		if st := p.cmd.ProcessState; st != nil {
			p.cpu = st.UserTime() + st.SystemTime()
		}
		close(p.done)
	}()
	return p, nil
}

// wait waits for p (it is killed when the run's context ends) and returns
// an error naming it and its stderr unless it exited with status 0.
func (p *proc) wait() error {
	<-p.done
	if p.err != nil {
		return fmt.Errorf("%s: %v: %s", p.name, p.err, strings.TrimSpace(p.errOut.String()))
	}
	return nil
}

// waitAll waits for every process and joins their errors. When one fails
// the others are killed: they would only wait for their lost peer.
func waitAll(ps ...*proc) error {
	var errs []error
	pending := map[*proc]bool{}
	for _, p := range ps {
		if p != nil {
			pending[p] = true
		}
	}
	killed := false
	for len(pending) > 0 {
		for p := range pending {
			select {
			case <-p.done:
			default:
				continue
			}
			delete(pending, p)
			if err := p.wait(); err != nil {
				errs = append(errs, err)
				if !killed {
					killed = true
					for q := range pending {
						_ = q.cmd.Process.Kill()
					}
				}
			}
		}
		if len(pending) > 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// killAll kills the processes started and waits for them.
func killAll(ps ...*proc) {
	for _, p := range ps {
		if p != nil {
			_ = p.cmd.Process.Kill()
		}
	}
	_ = waitAll(ps...)
}

// sendLine is the summary shmpc-bridge send prints on stderr.
var sendLine = regexp.MustCompile(`shmpc-bridge send: \S+: (\d+) items, (\d+) bytes, .* in ([0-9.]+)s`)

// parseSend returns the bytes and seconds of send's summary.
func parseSend(stderr string) (bytes int64, seconds float64, err error) {
	m := sendLine.FindStringSubmatch(stderr)
	if m == nil {
		return 0, 0, fmt.Errorf("no summary in send's output: %q", stderr)
	}
	bytes, _ = strconv.ParseInt(m[2], 10, 64)
	seconds, _ = strconv.ParseFloat(m[3], 64)
	return bytes, seconds, nil
}

// consumeSummary is the part of `shmpc consume -json` the bench reads.
type consumeSummary struct {
	Items     int64   `json:"items"`
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
	GiBPerSec float64 `json:"gib_per_s"`
}

// produceArgs are the arguments of the source producer.
func (b *bench) produceArgs(ring string, size, count int64) []string {
	return []string{"produce", "-name", ring, "-slots", strconv.Itoa(b.o.slots), "-slot-size", strconv.FormatInt(size, 10),
		"-count", strconv.FormatInt(count, 10), "-hugepages", "off", "-json"}
}

// sendArgs are the arguments of shmpc-bridge send.
func (b *bench) sendArgs(ring, subject, stream string) []string {
	return []string{"send", "-name", ring, "-nats", b.url, "-subject", subject, "-stream", stream, "-wait", "60s"}
}

// runSend runs produce into send and returns GiB/s from produce's start to
// send's exit, and over send's own time.
func (b *bench) runSend(ctx context.Context, size, count int64) (whole, own float64, err error) {
	ring, subject, stream := b.names("send")
	if err := b.createStream(ctx, stream, subject); err != nil {
		return 0, 0, err
	}
	b.rings = append(b.rings, ring)
	t0 := time.Now()
	prod, err := b.start(ctx, "produce", b.shmpc, b.produceArgs(ring, size, count)...)
	if err != nil {
		return 0, 0, err
	}
	send, err := b.start(ctx, "send", b.bridge, b.sendArgs(ring, subject, stream)...)
	if err != nil {
		killAll(prod)
		return 0, 0, err
	}
	if err := waitAll(send, prod); err != nil {
		return 0, 0, err
	}
	n, secs, err := parseSend(send.errOut.String())
	if err != nil {
		return 0, 0, err
	}
	if n != size*count {
		return 0, 0, fmt.Errorf("send published %d bytes, want %d", n, size*count)
	}
	return gibps(n, send.end.Sub(t0)), gibps(n, time.Duration(secs*float64(time.Second))), nil
}

// runE2E runs produce, send, recv and consume and returns GiB/s from the
// first start to consume's exit, and over consume's own window.
func (b *bench) runE2E(ctx context.Context, size, count int64) (whole, own float64, err error) {
	ring, subject, stream := b.names("e2e")
	dst := ring + "-dst"
	if err := b.createStream(ctx, stream, subject); err != nil {
		return 0, 0, err
	}
	b.rings = append(b.rings, ring, dst)
	var ps []*proc
	t0 := time.Now()
	for _, s := range []struct {
		name, path string
		args       []string
	}{
		{"consume", b.shmpc, []string{"consume", "-name", dst, "-json", "-wait", "60s"}},
		{"recv", b.bridge, []string{"recv", "-name", dst, "-nats", b.url, "-subject", subject, "-stream", stream, "-wait", "60s"}},
		{"produce", b.shmpc, b.produceArgs(ring, size, count)},
		{"send", b.bridge, b.sendArgs(ring, subject, stream)},
	} {
		p, err := b.start(ctx, s.name, s.path, s.args...)
		if err != nil {
			killAll(ps...)
			return 0, 0, err
		}
		ps = append(ps, p)
	}
	if err := waitAll(ps...); err != nil {
		return 0, 0, err
	}
	cons := ps[0]
	var sum consumeSummary
	if err := json.Unmarshal(bytes.TrimSpace(cons.out.Bytes()), &sum); err != nil {
		return 0, 0, fmt.Errorf("consume -json: %v: %q", err, cons.out.String())
	}
	if sum.Bytes != size*count || sum.Items != count {
		return 0, 0, fmt.Errorf("consume got %d items, %d bytes, want %d, %d", sum.Items, sum.Bytes, count, size*count)
	}
	return gibps(sum.Bytes, cons.end.Sub(t0)), sum.GiBPerSec, nil
}
