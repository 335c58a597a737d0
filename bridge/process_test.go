package bridge_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// pipeline is one run of produce -> send -> recv -> consume -manifest.
type pipeline struct {
	shmpc, bridge string
	url, subject  string
	src, dst      string
	manifest      string
	count, size   int
}

func newPipeline(t *testing.T, url string, count, size int) *pipeline {
	t.Helper()
	shmpc, bridge := binaries(t)
	src, dst := ringName(t, "brs"), ringName(t, "brd")
	return &pipeline{
		shmpc: shmpc, bridge: bridge, url: url, subject: "shmpc.test." + src,
		src: src, dst: dst, manifest: filepath.Join(t.TempDir(), "manifest.jsonl"),
		count: count, size: size,
	}
}

// The waits of the processes (first peer, peer after a death) are long enough
// for a kill and a restart on a loaded machine.
const peerWait = "60s"

func (p *pipeline) produce(t *testing.T) *proc {
	return start(t, "produce", p.shmpc, "produce", "-name", p.src, "-count", strconv.Itoa(p.count),
		"-slot-size", strconv.Itoa(p.size), "-slots", "8", "-wait", peerWait, "-peer-timeout", peerWait, "-hugepages", "off", "-mlock", "off")
}

func (p *pipeline) send(t *testing.T) *proc {
	return start(t, "bridge send", p.bridge, "send", "-name", p.src, "-nats", p.url, "-subject", p.subject,
		"-wait", peerWait, "-peer-timeout", peerWait)
}

func (p *pipeline) recv(t *testing.T) *proc {
	return start(t, "bridge recv", p.bridge, "recv", "-name", p.dst, "-nats", p.url, "-subject", p.subject,
		"-wait", peerWait, "-peer-timeout", peerWait)
}

func (p *pipeline) consume(t *testing.T) *proc {
	return start(t, "consume", p.shmpc, "consume", "-name", p.dst, "-manifest", p.manifest,
		"-wait", peerWait, "-peer-timeout", peerWait)
}

// finish waits for every process to exit 0 and checks the manifest.
func (p *pipeline) finish(t *testing.T, procs ...*proc) {
	t.Helper()
	for _, pr := range procs {
		pr.requireExit(t, 90*time.Second, 0)
	}
	checkManifest(t, p.manifest, p.count, p.size)
}

// TestBridgeProcesses carries streams through real processes: shmpc produce
// -> shmpc-bridge send -> JetStream -> shmpc-bridge recv -> shmpc consume
// -manifest, and checks that every item arrived once with the payload's CRC:
// 1 GiB of 8 MiB items (9 messages each) and 100 000 items of 4 KiB (-short:
// 64 MiB and 10 000).
func TestBridgeProcesses(t *testing.T) {
	s := startServer(t, "", 0)
	cases := []struct{ count, size int }{{128, 8 << 20}, {100000, 4 << 10}}
	if testing.Short() {
		cases = []struct{ count, size int }{{8, 8 << 20}, {10000, 4 << 10}}
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%dx%d", tc.count, tc.size), func(t *testing.T) {
			start := time.Now()
			defer func() {
				t.Logf("%d items of %d bytes end to end in %.1fs", tc.count, tc.size, time.Since(start).Seconds())
			}()
			p := newPipeline(t, s.ClientURL(), tc.count, tc.size)
			procs := []*proc{p.recv(t), p.consume(t), p.produce(t), p.send(t)}
			p.finish(t, procs...)
		})
	}
}

// TestBridgeSendKilled SIGKILLs shmpc-bridge send mid-stream and starts
// another: the remote consumer gets every item once (the new send
// republishes what the dead one had not released; JetStream and recv drop
// the copies).
func TestBridgeSendKilled(t *testing.T) {
	s := startServer(t, "", 0)
	p := newPipeline(t, s.ClientURL(), 20000, 4<<10)
	prod, recv, cons := p.produce(t), p.recv(t), p.consume(t)
	send := p.send(t)
	waitManifest(t, p.manifest, 3000, 60*time.Second, send)
	send.kill(t)
	if n := len(readManifest(t, p.manifest)); n >= p.count {
		t.Fatalf("the stream was through (%d items) before the kill: make it longer", n)
	}
	send2 := p.send(t)
	p.finish(t, prod, send2, recv, cons)
	t.Logf("second send: %s", send2.stderr.String())
}

// TestBridgeRecvKilled SIGKILLs shmpc-bridge recv mid-stream and starts
// another: it resumes the remote ring at its next item and the remote
// consumer gets every item once. With the same durable consumer the new recv
// starts at the first message not acknowledged; with a new one it reads the
// stream from its start and must drop every piece of the items its ring
// already holds.
func TestBridgeRecvKilled(t *testing.T) {
	s := startServer(t, "", 0)
	for _, durable := range []string{"", "fresh"} {
		t.Run("durable="+durable, func(t *testing.T) {
			p := newPipeline(t, s.ClientURL(), 20000, 4<<10)
			prod, send, cons := p.produce(t), p.send(t), p.consume(t)
			recv := p.recv(t)
			waitManifest(t, p.manifest, 3000, 60*time.Second, recv)
			recv.kill(t)
			if n := len(readManifest(t, p.manifest)); n >= p.count {
				t.Fatalf("the stream was through (%d items) before the kill: make it longer", n)
			}
			var recv2 *proc
			if durable == "" {
				recv2 = p.recv(t)
			} else {
				recv2 = start(t, "bridge recv", p.bridge, "recv", "-name", p.dst, "-nats", p.url, "-subject", p.subject,
					"-durable", durable, "-wait", peerWait, "-peer-timeout", peerWait)
			}
			p.finish(t, prod, send, recv2, cons)
			t.Logf("second recv: %s", recv2.stderr.String())
		})
	}
}
