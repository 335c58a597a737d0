package bridge_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shmpc/shmpc/bridge"
	"github.com/shmpc/shmpc/shm"
)

// binDir holds the shmpc and shmpc-bridge binaries the process tests build
// once (TestMain removes it).
var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

// binaries builds shmpc (the core module's command), shmpc-bridge and natsd
// (internal/cmd/natsd, a NATS server the tests can kill) once and returns the
// paths of the first two; natsdBinary returns the third.
func binaries(t *testing.T) (shmpc, bridge string) {
	t.Helper()
	buildOnce.Do(func() {
		for _, pkg := range []string{"github.com/shmpc/shmpc/cmd/shmpc", "github.com/shmpc/shmpc/bridge/cmd/shmpc-bridge",
			"github.com/shmpc/shmpc/bridge/internal/cmd/natsd"} {
			out, err := exec.Command("go", "build", "-o", binDir, pkg).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "shmpc"), filepath.Join(binDir, "shmpc-bridge")
}

// natsdBinary returns the path of natsd, built by binaries.
func natsdBinary(t *testing.T) string {
	t.Helper()
	binaries(t)
	return filepath.Join(binDir, "natsd")
}

var nonName = regexp.MustCompile(`[^A-Za-z0-9]+`)

// ringName returns a ring NAME unique to t (prefix, pid, random, the tail of
// the test's name) and registers a cleanup that fails t if an object of that
// ring remains, and removes it: only that ring's own objects.
func ringName(t *testing.T, prefix string) string {
	t.Helper()
	var b [3]byte
	_, _ = rand.Read(b[:])
	base := nonName.ReplaceAllString(t.Name(), "-")
	if len(base) > 30 {
		base = base[len(base)-30:]
	}
	name := fmt.Sprintf("%s%d-%s-%s", prefix, os.Getpid(), hex.EncodeToString(b[:]), base)
	if err := shm.ValidName(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { requireNoLeftovers(t, name) })
	return name
}

// requireNoLeftovers fails t if ring name's segment or any /dev/shm file of it
// exists, and removes them.
func requireNoLeftovers(t *testing.T, name string) {
	t.Helper()
	files, _ := filepath.Glob("/dev/shm/*shmpc." + name + ".*")
	key, err := shm.KeyForName(name)
	if err != nil {
		t.Error(err)
		return
	}
	info, serr := shm.Lookup(key)
	if len(files) == 0 && serr != nil {
		return
	}
	t.Errorf("ring %s left objects behind: files %v, segment %v", name, files, serr == nil)
	if serr == nil {
		_ = shm.RemoveID(info.ID)
	}
	for _, f := range files {
		_ = os.Remove(f)
	}
}

// startServer starts an in-process NATS server with JetStream on 127.0.0.1,
// a random port and a store in dir ("" : a new temporary one), stopped at
// cleanup.
func startServer(t *testing.T, dir string, port int) *server.Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if port == 0 {
		port = -1
	}
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats server not ready within 10s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// connect connects to s, closed at cleanup.
func connect(t *testing.T, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// proc is a started process whose stderr is kept.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

// start starts a process, killed and waited for at cleanup.
func start(t *testing.T, name string, path string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
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
	return p
}

// wait waits up to d for p to exit and returns its exit status.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not exit within %v; stderr:\n%s", p.name, d, p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// kill SIGKILLs p and waits for it.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s not dead 10s after SIGKILL", p.name)
	}
}

// running reports whether p has not exited.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// requireExit waits for p and fails t unless it exits with want.
func (p *proc) requireExit(t *testing.T, d time.Duration, want int) {
	t.Helper()
	if got := p.wait(t, d); got != want {
		t.Fatalf("%s exited %d, want %d; stderr:\n%s", p.name, got, want, p.stderr.String())
	}
}

// entry is one line of `shmpc consume -manifest`.
type entry struct {
	Seq uint64 `json:"seq"`
	Len int    `json:"len"`
	CRC uint32 `json:"crc32c"`
}

// readManifest reads a manifest file (missing: empty).
func readManifest(t *testing.T, path string) []entry {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var es []entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			break // a line being written
		}
		es = append(es, e)
	}
	return es
}

// waitManifest waits up to d until the manifest has at least n entries.
func waitManifest(t *testing.T, path string, n int, d time.Duration, alive *proc) {
	t.Helper()
	deadline := time.Now().Add(d)
	for len(readManifest(t, path)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("manifest %s has fewer than %d entries after %v", path, n, d)
		}
		if !alive.running() {
			t.Fatalf("%s exited before the manifest had %d entries: stderr:\n%s", alive.name, n, alive.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkManifest fails t unless the manifest holds every seq of count items of
// size bytes exactly once, each with the payload's CRC32C.
func checkManifest(t *testing.T, path string, count, size int) {
	t.Helper()
	es := readManifest(t, path)
	seen := make(map[uint64]int, count)
	bad := 0
	for _, e := range es {
		seen[e.Seq]++
		if e.Seq >= uint64(count) || e.Len != size || e.CRC != payloadCRC(e.Seq, size) {
			if bad++; bad <= 5 {
				t.Errorf("item %d: len %d crc32c %#08x, want len %d crc32c %#08x", e.Seq, e.Len, e.CRC, size, payloadCRC(e.Seq, size))
			}
		}
	}
	missing, repeated := 0, 0
	for seq := range uint64(count) {
		switch n := seen[seq]; {
		case n == 0:
			missing++
		case n > 1:
			repeated++
		}
	}
	if missing > 0 || repeated > 0 || bad > 0 || len(es) != count {
		t.Fatalf("manifest: %d entries for %d items: %d missing, %d repeated, %d wrong", len(es), count, missing, repeated, bad)
	}
}

// payloadCRC is the CRC32C of item seq of n bytes of the payload of
// `shmpc produce -count` as docs/cli.md defines it ("The payload of -count
// and -bytes"), written here from that text so the check does not share code
// with what it checks.
func payloadCRC(seq uint64, n int) uint32 {
	const g = 0x9E3779B97F4A7C15
	splitmix := func(x uint64) uint64 {
		x += g
		x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
		x = (x ^ (x >> 27)) * 0x94D049BB133111EB
		return x ^ (x >> 31)
	}
	b := make([]byte, (n+7)/8*8)
	for c := 0; c*8192 < len(b); c++ {
		s := splitmix((seq << 32) ^ uint64(c))
		if s == 0 {
			s = g
		}
		for j := 0; j < 1024 && c*8192+j*8 < len(b); j++ {
			s ^= s << 13
			s ^= s >> 7
			s ^= s << 17
			binary.LittleEndian.PutUint64(b[c*8192+j*8:], s)
		}
	}
	return crc32.Checksum(b[:n], crc32.MakeTable(crc32.Castagnoli))
}

// bounded returns a context that ends after d, cancelled at cleanup.
func bounded(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// streamOf returns the JetStream stream of subject (its default name).
func streamOf(ctx context.Context, t *testing.T, nc *nats.Conn, subject string) jetstream.Stream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, bridge.StreamName(subject))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// receive returns what ch gives within d, or fails the test naming what.
func receive[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
		panic("unreachable")
	}
}
