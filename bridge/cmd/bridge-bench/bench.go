package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shmpc/shmpc/bridge"
	"github.com/shmpc/shmpc/shm"
)

// bench is one benchmark run: its server, binaries and the objects it made.
type bench struct {
	o          options
	log        io.Writer
	dir        string // temporary: the server's store and built binaries
	srv        *server.Server
	nc         *nats.Conn
	js         jetstream.JetStream
	url        string
	maxPayload int
	shmpc      string
	bridge     string
	id         string   // this run's prefix of ring and stream names
	rings      []string // every ring NAME given to a process
	streams    []string // streams created and not yet deleted
	procs      []*proc  // the processes of the current run
	seq        int
}

// newBench checks the free space, builds the binaries and starts the server.
// On an error it undoes what it did.
func newBench(ctx context.Context, o options, log io.Writer) (_ *bench, err error) {
	var r [3]byte
	_, _ = rand.Read(r[:])
	b := &bench{o: o, log: log, id: fmt.Sprintf("bb%d-%s", os.Getpid(), hex.EncodeToString(r[:])), shmpc: o.shmpc, bridge: o.bridge}
	b.dir, err = os.MkdirTemp("", "bridge-bench-")
	if err != nil {
		return nil, fmt.Errorf("make a temporary directory: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.close())
		}
	}()
	need := o.minFree
	for _, t := range o.totals {
		need = max(need, t+o.minFree)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(b.dir, &st); err != nil {
		return nil, fmt.Errorf("free space of %s: %w", b.dir, err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return nil, fmt.Errorf("%s has %d MiB free, a run needs %d MiB: free some, set TMPDIR elsewhere or give smaller -totals", b.dir, free>>20, need>>20)
	}
	if err := b.build(ctx); err != nil {
		return nil, err
	}
	sopt := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(b.dir, "js"), NoLog: true, NoSigs: true}
	if o.maxPayload > 0 {
		sopt.MaxPayload = int32(o.maxPayload)
	}
	b.srv, err = server.NewServer(sopt)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	b.srv.Start()
	if !b.srv.ReadyForConnections(10 * time.Second) {
		return nil, errors.New("nats server not ready within 10s")
	}
	b.url = b.srv.ClientURL()
	if b.nc, err = nats.Connect(b.url, nats.Name("bridge-bench")); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", b.url, err)
	}
	b.maxPayload = int(b.nc.MaxPayload())
	if b.js, err = jetstream.New(b.nc); err != nil {
		return nil, err
	}
	return b, nil
}

// build builds shmpc and shmpc-bridge into the temporary directory unless
// the flags name them.
func (b *bench) build(ctx context.Context) error {
	for _, p := range []struct {
		path *string
		pkg  string
		name string
	}{{&b.shmpc, "github.com/shmpc/shmpc/cmd/shmpc", "shmpc"}, {&b.bridge, "github.com/shmpc/shmpc/bridge/cmd/shmpc-bridge", "shmpc-bridge"}} {
		if *p.path != "" {
			continue
		}
		out := filepath.Join(b.dir, p.name)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, p.pkg)
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v: run bridge-bench inside the bridge module, or give -shmpc and -bridge\n%s", p.pkg, err, msg)
		}
		*p.path = out
	}
	return nil
}

// names returns fresh ring, subject and stream names for one run.
func (b *bench) names(variant string) (ring, subject, stream string) {
	b.seq++
	ring = fmt.Sprintf("%s-%d-%s", b.id, b.seq, variant)
	return ring, "bench." + ring, bridge.StreamName("bench." + ring)
}

// createStream creates a fresh stream for subject, as the bridge would
// (file storage, the bridge's duplicate window).
func (b *bench) createStream(ctx context.Context, name, subject string) error {
	b.streams = append(b.streams, name)
	_, err := bridge.EnsureStream(ctx, b.js, name, subject, 0)
	return err
}

// deleteStreams deletes the streams created so far.
func (b *bench) deleteStreams() error {
	var errs []error
	for _, s := range b.streams {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := b.js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("delete stream %s: %w", s, err))
		}
		cancel()
	}
	b.streams = nil
	return errors.Join(errs...)
}

// removeRings removes whatever is left of the rings given to processes
// (a run that failed): their segments and /dev/shm files, only theirs. It
// returns the names of those it found.
func (b *bench) removeRings() (left []string, err error) {
	var errs []error
	for _, name := range b.rings {
		files, _ := filepath.Glob("/dev/shm/*shmpc." + name + ".*")
		key, kerr := shm.KeyForName(name)
		if kerr != nil {
			errs = append(errs, kerr)
			continue
		}
		info, lerr := shm.Lookup(key)
		if lerr == nil {
			if rerr := shm.RemoveID(info.ID); rerr != nil {
				errs = append(errs, rerr)
			}
		}
		for _, f := range files {
			if rerr := os.Remove(f); rerr != nil {
				errs = append(errs, rerr)
			}
		}
		if lerr == nil || len(files) > 0 {
			left = append(left, name)
		}
	}
	b.rings = nil
	return left, errors.Join(errs...)
}

// close removes everything the bench made: streams, rings, server, files.
func (b *bench) close() error {
	var errs []error
	if b.js != nil {
		errs = append(errs, b.deleteStreams())
	}
	if _, err := b.removeRings(); err != nil {
		errs = append(errs, err)
	}
	if b.nc != nil {
		b.nc.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	if b.dir != "" {
		errs = append(errs, os.RemoveAll(b.dir))
	}
	return errors.Join(errs...)
}

// runAll runs the rounds, variants in turn, and returns each size's figures.
func (b *bench) runAll(ctx context.Context) ([]result, error) {
	var res []result
	for i, size := range b.o.sizes {
		total := b.o.totals[i]
		count := total / size
		r := result{size: size, total: count * size, serverCPU: map[string][]float64{}, clientCPU: map[string][]float64{}}
		for rep := range b.o.reps {
			for _, v := range []string{"raw", "send", "e2e"} {
				if !b.o.variants[v] {
					continue
				}
				fig, own, cpu, err := b.runOne(ctx, v, size, count)
				if err != nil {
					return append(res, r), fmt.Errorf("%s, %s items, round %d: %w", v, fmtSize(size), rep+1, err)
				}
				gib := float64(size*count) / (1 << 30)
				r.serverCPU[v] = append(r.serverCPU[v], cpu.server.Seconds()/gib)
				r.clientCPU[v] = append(r.clientCPU[v], cpu.clients.Seconds()/gib)
				switch v {
				case "raw":
					r.raw = append(r.raw, fig)
				case "send":
					r.send, r.sendOwn = append(r.send, fig), append(r.sendOwn, own)
				case "e2e":
					r.e2e, r.e2eOwn = append(r.e2e, fig), append(r.e2eOwn, own)
				}
				if b.o.verbose {
					fmt.Fprintf(b.log, "bridge-bench: %s items, round %d, %s: %.2f GiB/s (own %.2f); CPU s/GiB: server %.2f, clients %.2f\n",
						fmtSize(size), rep+1, v, fig, own, cpu.server.Seconds()/gib, cpu.clients.Seconds()/gib)
				}
			}
		}
		res = append(res, r)
	}
	return res, nil
}

// cpuTimes is the CPU time of one run: this process (the server, and the
// raw publisher with -raw-inprocess) and the processes it started.
type cpuTimes struct{ server, clients time.Duration }

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runOne runs one variant once, then deletes its stream and removes what is
// left of its rings (a leftover after a run that succeeded is an error).
func (b *bench) runOne(ctx context.Context, v string, size, count int64) (fig, own float64, cpu cpuTimes, err error) {
	rctx, cancel := context.WithTimeout(ctx, timeout(size*count))
	defer cancel()
	b.procs = nil
	cpu0 := selfCPU()
	switch v {
	case "raw":
		fig, err = b.runRaw(rctx, size, count)
	case "send":
		fig, own, err = b.runSend(rctx, size, count)
	case "e2e":
		fig, own, err = b.runE2E(rctx, size, count)
	}
	cpu.server = selfCPU() - cpu0
	for _, p := range b.procs {
		cpu.clients += p.cpu
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	derr := b.deleteStreams()
	left, rerr := b.removeRings()
	if err == nil && len(left) > 0 {
		err = fmt.Errorf("rings left behind after the run (removed): %v", left)
	}
	return fig, own, cpu, errors.Join(err, derr, rerr)
}

// gibps is bytes per second in GiB/s.
func gibps(bytes int64, d time.Duration) float64 {
	return float64(bytes) / d.Seconds() / (1 << 30)
}
