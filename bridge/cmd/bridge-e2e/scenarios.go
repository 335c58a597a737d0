package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shmpc/shmpc/bridge"
)

// scenario is one row of the table.
type scenario struct {
	name   string
	short  string // in ring NAMEs
	expect string // the expected outcome, as the table says it
	run    func(t *trial)
}

// scenarios returns the bridge family.
func scenarios() []*scenario {
	return []*scenario{
		{"bridge-send-kill", "sk", "send SIGKILLed, restarted: all exit 0, every item once", sendKill},
		{"bridge-recv-kill", "rk", "recv SIGKILLed, restarted (same or new durable): all exit 0, every item once", recvKill},
		{"bridge-nats-kill", "nk", "NATS server (with send or recv) SIGKILLed, restarted on its store: all exit 0, every item once", natsKill},
		{"bridge-remote-consumer-kill", "ck", "remote consume SIGKILLed, another started: all exit 0, repeats <= slots at the seam", consumerKill},
		{"bridge-scribble", "sc", "forged messages on SUBJ: never delivered; recv ignores them (exit 0) or exit 4", scribble},
	}
}

// pipe is a trial's processes: produce -> send -> natsd -> recv -> consume.
type pipe struct {
	n                    *natsd
	prod, send, recv     *proc
	cons                 *proc
	manifest             string
	recvs, sends, conses []*proc // every process of the role, in order
}

// begin starts natsd and the four processes, in a drawn order.
func (t *trial) begin() *pipe {
	p := &pipe{manifest: filepath.Join(t.dir, "manifest.1.jsonl")}
	p.n = t.startNatsd(filepath.Join(t.dir, "store"))
	names := []string{"produce", "send", "recv", "consume"}
	order := t.rng.Perm(4)
	var started []string
	for _, i := range order {
		started = append(started, names[i])
		switch names[i] {
		case "produce":
			p.prod = t.produce()
		case "send":
			p.send = t.send(p.n.url)
			p.sends = append(p.sends, p.send)
		case "recv":
			p.recv = t.recv(p.n.url)
			p.recvs = append(p.recvs, p.recv)
		case "consume":
			p.cons = t.consume(p.manifest)
			p.conses = append(p.conses, p.cons)
		}
	}
	t.drawf("started %s", strings.Join(started, ","))
	return p
}

// end requires every process still to run to exit 0, checks the delivery
// and stops natsd (exit 0 on SIGTERM).
func (t *trial) end(p *pipe, manifests ...string) {
	for _, pr := range []*proc{p.prod, p.send, p.recv, p.cons} {
		t.requireExit(pr, procBound, 0)
	}
	if len(manifests) == 0 {
		manifests = []string{p.manifest}
	}
	t.checkDelivery(manifests, true)
	t.stopNatsd(p.n)
}

// kills draws how many kills a trial makes (1 or 2) and their moments, in
// order, between 5% and 70% of the stream delivered.
func (t *trial) kills() []int {
	k := 1 + t.rng.IntN(2)
	at := make([]int, k)
	lo := 0.05
	for i := range at {
		at[i] = t.moment(lo, lo+0.65/float64(k))
		lo += 0.65 / float64(k)
	}
	return at
}

// pause draws a pause of up to d.
func (t *trial) pause(d time.Duration) time.Duration {
	return time.Duration(t.rng.Int64N(int64(d) + 1))
}

// through notes a kill that came after the stream was delivered.
func (t *trial) through(p *pipe, what string) {
	if n := manifestLines(p.manifest); n >= t.count {
		t.res.Outcome = fmt.Sprintf("the stream was through (%d items) when %s", n, what)
	}
}

func sendKill(t *trial) {
	at := t.kills()
	pauses := make([]time.Duration, len(at))
	for i := range pauses {
		pauses[i] = t.pause(500 * time.Millisecond)
	}
	t.drawf("SIGKILL send at %v items in JetStream, restart after %v", at, pauses)
	p := t.begin()
	for i, n := range at {
		// send runs ahead of the remote side: its moment is the stream's.
		t.waitStream(p, t.messages(n))
		if !t.killRunning(p.send) {
			break
		}
		time.Sleep(pauses[i])
		p.send = t.send(p.n.url)
		p.sends = append(p.sends, p.send)
	}
	t.end(p)
}

// killRunning SIGKILLs p unless it already exited, which must then have
// been with status 0 (it finished its stream before the moment drawn).
func (t *trial) killRunning(p *proc) bool {
	if p.running() {
		t.kill(p)
		return true
	}
	t.requireExit(p, time.Second, 0)
	t.res.Outcome = p.name + " had finished its stream (exit 0) at the moment drawn for its kill"
	t.logf("%s", t.res.Outcome)
	return false
}

// waitStream waits (bounded) until the JetStream stream holds n messages,
// or send exited.
func (t *trial) waitStream(p *pipe, n int) {
	nc, js := t.connect(p.n.url, "observer", nats.MaxReconnects(-1))
	defer nc.Close()
	deadline := time.Now().Add(60 * time.Second)
	for p.send.running() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := js.Stream(ctx, bridge.StreamName(t.subject))
		var msgs uint64
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = st.Info(ctx); err == nil {
				msgs = info.State.Msgs
			}
		}
		cancel()
		if msgs >= uint64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.fatalf("the stream holds %d of the %d messages waited for after 60s (last error: %v)", msgs, n, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func recvKill(t *trial) {
	at := t.kills()
	fresh := make([]bool, len(at))
	for i := range fresh {
		fresh[i] = t.rng.IntN(3) == 0
	}
	t.drawf("SIGKILL recv at %v items delivered, restart with a new durable %v", at, fresh)
	p := t.begin()
	for i, n := range at {
		t.waitManifest(p.manifest, n, p.recv, p.cons)
		t.kill(p.recv)
		t.through(p, "recv was killed")
		var extra []string
		if fresh[i] {
			extra = []string{"-durable", fmt.Sprintf("fresh-%d", i)}
		}
		p.recv = t.recv(p.n.url, extra...)
		p.recvs = append(p.recvs, p.recv)
	}
	t.end(p)
	t.res.Outcome = "recv: " + lastLine(p.recv.stderr.String())
}

func natsKill(t *trial) {
	at := t.kills()
	pauses := make([]time.Duration, len(at))
	for i := range pauses {
		pauses[i] = t.pause(1500 * time.Millisecond)
	}
	also := []string{"", "", "send", "recv"}[t.rng.IntN(4)]
	t.drawf("SIGKILL natsd at %v items delivered, restart on its port and store after %v", at, pauses)
	if also != "" {
		t.drawf("SIGKILL %s with it each time, restarted after it", also)
	}
	p := t.begin()
	for i, n := range at {
		t.waitManifest(p.manifest, n, p.recv, p.cons, p.n.p)
		t.kill(p.n.p)
		restart := false
		switch also {
		case "send":
			restart = t.killRunning(p.send)
		case "recv":
			restart = t.killRunning(p.recv)
		}
		t.through(p, "natsd was killed")
		time.Sleep(pauses[i])
		t.launch(p.n)
		switch {
		case restart && also == "send":
			p.send = t.send(p.n.url)
		case restart && also == "recv":
			p.recv = t.recv(p.n.url)
		}
	}
	t.end(p)
	t.res.Outcome = "send: " + lastLine(p.send.stderr.String())
}

func consumerKill(t *trial) {
	at := t.moment(0.05, 0.7)
	pause := t.pause(500 * time.Millisecond)
	t.drawf("SIGKILL the remote consume at %d items delivered, another after %v", at, pause)
	p := t.begin()
	t.waitManifest(p.manifest, at, p.cons, p.recv)
	t.kill(p.cons)
	t.through(p, "the remote consume was killed")
	time.Sleep(pause)
	second := filepath.Join(t.dir, "manifest.2.jsonl")
	p.cons = t.consume(second)
	t.end(p, p.manifest, second)
}

// lastLine returns the last line of s.
func lastLine(s string) string { return tail(s, 1) }

// connect connects the trial's client who (observer, forger) to url, with
// JetStream; a failure fails the trial.
func (t *trial) connect(url, who string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	nc, err := nats.Connect(url, append([]nats.Option{nats.Name("bridge-e2e " + who)}, opts...)...)
	if err != nil {
		t.fatalf("%s: connect: %v", who, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		t.fatalf("%s: %v", who, err)
	}
	return nc, js
}
