package bridge_test

import (
	"bufio"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shmpc/shmpc/bridge"
)

// natsd is a NATS server with JetStream running as a process of its own
// (internal/cmd/natsd), so a test can SIGKILL it and start it again on the
// same port and store.
type natsd struct {
	bin, store string
	port       int
	url        string
	p          *proc
}

// startNatsd starts natsd with its store in store ("": a new temporary
// directory) on a port drawn below the kernel's ephemeral range (32768 on),
// so that no client's connection takes it while the server is down, and
// waits for its ready line. It is killed at cleanup if still running.
func startNatsd(t *testing.T, store string) *natsd {
	t.Helper()
	if store == "" {
		store = t.TempDir()
	}
	n := &natsd{bin: natsdBinary(t), store: store}
	var errs []string
	for range 8 {
		n.port = 20000 + mrand.IntN(12000)
		err := n.launch(t)
		if err == nil {
			return n
		}
		errs = append(errs, err.Error())
	}
	t.Fatalf("natsd did not start on 8 ports: %s", strings.Join(errs, "; "))
	return nil
}

// launch starts the server process on n.port and n.store and waits up to 30s
// for it to accept connections.
func (n *natsd) launch(t *testing.T) error {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := &proc{name: "natsd", done: make(chan struct{})}
	p.cmd = exec.Command(n.bin, "-store", n.store, "-port", strconv.Itoa(n.port))
	p.cmd.Stdout = w
	p.cmd.Stderr = &p.stderr
	err = p.cmd.Start()
	w.Close()
	if err != nil {
		t.Fatalf("start natsd: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	ready := make(chan string, 1)
	go func() {
		defer close(ready)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), "natsd: ready "); ok {
				ready <- url
				return
			}
		}
	}()
	select {
	case url, ok := <-ready:
		if !ok {
			code := p.wait(t, 10*time.Second)
			return fmt.Errorf("natsd on port %d exited %d before it was ready: %s", n.port, code, strings.TrimSpace(p.stderr.String()))
		}
		if url != fmt.Sprintf("nats://127.0.0.1:%d", n.port) {
			t.Fatalf("natsd ready line %q: want nats://127.0.0.1:%d", url, n.port)
		}
		n.url, n.p = url, p
	case <-time.After(30 * time.Second):
		t.Fatalf("natsd not ready within 30s")
	}
	return nil
}

// crash SIGKILLs the server.
func (n *natsd) crash(t *testing.T) { t.Helper(); n.p.kill(t) }

// restart starts the server again on the same port and store (a port just
// freed binds again at once: the server's listener sets SO_REUSEADDR).
func (n *natsd) restart(t *testing.T) {
	t.Helper()
	if n.p.running() {
		t.Fatal("natsd restarted while running")
	}
	if err := n.launch(t); err != nil {
		t.Fatal(err)
	}
}

// stop shuts the server down with SIGTERM and requires exit 0.
func (n *natsd) stop(t *testing.T) {
	t.Helper()
	_ = n.p.cmd.Process.Signal(syscall.SIGTERM)
	n.p.requireExit(t, 30*time.Second, 0)
}

// TestNatsdRestartKeepsStream: natsd killed with SIGKILL and started again on
// the same port and store still has the stream, its messages, and their
// message ids (a republished message is dropped as a duplicate), which is
// what a bridge surviving a server crash relies on.
func TestNatsdRestartKeepsStream(t *testing.T) {
	n := startNatsd(t, "")
	subject := "shmpc.natsd." + strconv.Itoa(os.Getpid())
	publish := func(nc *nats.Conn, id string) *jetstream.PubAck {
		t.Helper()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx := bounded(t, 30*time.Second)
		if _, err := bridge.EnsureStream(ctx, js, "", subject, 0); err != nil {
			t.Fatal(err)
		}
		ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: []byte(id)}, jetstream.WithMsgID(id))
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	nc := natsConnect(t, n.url)
	for i := range 10 {
		if ack := publish(nc, fmt.Sprint("m", i)); ack.Duplicate || ack.Sequence != uint64(i+1) {
			t.Fatalf("publish %d: ack %+v", i, ack)
		}
	}
	nc.Close()
	n.crash(t)
	n.restart(t)
	nc = natsConnect(t, n.url)
	if ack := publish(nc, "m3"); !ack.Duplicate || ack.Sequence != 4 {
		t.Fatalf("m3 published again after the restart: ack %+v, want a duplicate of message 4", ack)
	}
	if ack := publish(nc, "m10"); ack.Duplicate || ack.Sequence != 11 {
		t.Fatalf("m10 after the restart: ack %+v, want message 11", ack)
	}
	nc.Close()
	n.stop(t)
}

// natsConnect connects to url, closed at cleanup.
func natsConnect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.Timeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestBridgeNATSServerKilled SIGKILLs the NATS server (natsd, a process of
// its own) mid-stream, while produce -> send -> JetStream -> recv -> consume
// -manifest runs, and starts it again on the same port and store; with it,
// in the variants, one side of the bridge is killed too and started again
// after the server. Every process exits 0 and the remote consumer gets every
// item exactly once with the payload's CRC32C: JetStream drops the pieces a
// send republishes by message id, and recv drops what its ring already
// committed.
func TestBridgeNATSServerKilled(t *testing.T) {
	for _, also := range []string{"", "send", "recv"} {
		t.Run("also="+also, func(t *testing.T) { natsKilled(t, 20000, 4<<10, 3000, also) })
	}
}

// TestBridgeNATSServerKilledLargeItems is TestBridgeNATSServerKilled with
// items of more than max_payload (two messages each), of which a few MiB are
// in flight to recv when the server dies: the messages the dead server had
// written to recv's connection and recv never read count as delivered in the
// durable consumer's state the restarted server recovers, and would come
// again only after the consumer's ack wait (DefaultAckWait, 5 minutes); recv
// must notice and start its consumer again (it stalled here in about one
// subtest in six before it did).
func TestBridgeNATSServerKilledLargeItems(t *testing.T) {
	for i := range 3 {
		t.Run(fmt.Sprint(i), func(t *testing.T) { natsKilled(t, 80, 1<<20+64<<10, 10, "") })
	}
}

// natsKilled runs count items of size through natsd, SIGKILLs natsd (and
// the bridge side also, if not "") once at items delivered, starts it again
// on the same port and store, and checks that every item arrived once.
func natsKilled(t *testing.T, count, size, at int, also string) {
	n := startNatsd(t, "")
	p := newPipeline(t, n.url, count, size)
	prod, recv, cons := p.produce(t), p.recv(t), p.consume(t)
	send := p.send(t)
	waitManifest(t, p.manifest, at, 60*time.Second, send)
	n.crash(t)
	switch also {
	case "send":
		send.kill(t)
	case "recv":
		recv.kill(t)
	}
	if got := len(readManifest(t, p.manifest)); got >= p.count*9/10 {
		t.Fatalf("the stream was nearly through (%d of %d items) when the server died: make it longer", got, p.count)
	}
	time.Sleep(300 * time.Millisecond) // the bridges see the server gone
	n.restart(t)
	switch also {
	case "send":
		send = p.send(t)
	case "recv":
		recv = p.recv(t)
	}
	p.finish(t, prod, send, recv, cons)
	n.stop(t)
	t.Logf("send: %s", send.stderr.String())
	t.Logf("recv: %s", recv.stderr.String())
}
