package shm

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"pgregory.net/rapid"
)

// TestMain dispatches helper processes (see helper_test.go), then runs the
// tests under goleak and, after them, fails the run if any segment this test
// binary created is still on the machine (and removes it).
func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		os.Exit(runHelper(name))
	}
	goleak.VerifyTestMain(leakCheckedM{m})
}

// leakCheckedM adds the segment leak check to m.Run, so goleak's
// VerifyTestMain sees a failure as a non-zero exit code.
type leakCheckedM struct{ m *testing.M }

func (l leakCheckedM) Run() int {
	code := l.m.Run()
	leaked, err := leakedSegments()
	if err != nil {
		fmt.Fprintf(os.Stderr, "shm: segment leak check: %v\n", err)
		return max(code, 1)
	}
	if len(leaked) > 0 {
		for _, in := range leaked {
			fmt.Fprintf(os.Stderr, "shm: leaked segment: key %s id %d size %d attached %d creator pid %d\n",
				fmtKey(in.Key), in.ID, in.Size, in.Attached, in.CreatorPID)
			_ = RemoveID(in.ID)
		}
		fmt.Fprintf(os.Stderr, "FAIL: %d segment(s) created by this test binary were left behind\n", len(leaked))
		return max(code, 1)
	}
	return code
}

// registry records every key and id this test binary used, and the pids of
// the processes (itself and its helpers) that created segments, so that leak
// checks look at our own segments only: other packages run at the same time.
var registry = struct {
	sync.Mutex
	keys map[int]bool
	ids  map[int]bool
	pids map[int]bool
}{keys: map[int]bool{}, ids: map[int]bool{}, pids: map[int]bool{os.Getpid(): true}}

// leakedSegments returns our segments that still exist: those with one of
// our keys, and those marked for removal (key 0) with one of our ids whose
// creator is one of our processes.
func leakedSegments() ([]Info, error) {
	all, err := List()
	if err != nil {
		return nil, err
	}
	registry.Lock()
	defer registry.Unlock()
	var out []Info
	for _, in := range all {
		if registry.keys[in.Key] || registry.ids[in.ID] && registry.pids[in.CreatorPID] {
			out = append(out, in)
		}
	}
	return out, nil
}

// ourSegments returns the segments that have one of keys (rapid.TB so that
// both *testing.T and *rapid.T can call it).
func ourSegments(t rapid.TB, keys ...int) []Info {
	t.Helper()
	all, err := List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := map[int]bool{}
	for _, k := range keys {
		want[k] = true
	}
	var out []Info
	for _, in := range all {
		if want[in.Key] {
			out = append(out, in)
		}
	}
	return out
}

func registerID(id int) {
	registry.Lock()
	registry.ids[id] = true
	registry.Unlock()
}

func registerPID(pid int) {
	registry.Lock()
	registry.pids[pid] = true
	registry.Unlock()
}

// newKey returns a key no segment has, unique to this process (see
// allocKey). Its cleanup removes a segment left with the key if one of our
// processes made it.
func newKey(t testing.TB) int {
	t.Helper()
	key, err := allocKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeOurKey(t, key) })
	return key
}

// allocKey returns a key no segment has, unique to this process (pid in the
// high bits, a random suffix below), registered for the leak check.
func allocKey() (int, error) {
	for range 100 {
		key := int(0x40000000 | uint32(os.Getpid()&0x3fff)<<16 | rand.Uint32N(1<<16))
		registry.Lock()
		taken := registry.keys[key]
		if !taken {
			registry.keys[key] = true
		}
		registry.Unlock()
		if taken {
			continue
		}
		if _, err := Lookup(key); !errors.Is(err, fs.ErrNotExist) {
			continue // someone else's segment (or an error): leave it alone
		}
		return key, nil
	}
	return 0, errors.New("allocKey: no free key found in 100 tries")
}

// removeOurKey removes a segment with key if one of our processes created it.
func removeOurKey(t testing.TB, key int) {
	t.Helper()
	if err := removeKeyIfOurs(key); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

func removeKeyIfOurs(key int) error {
	in, err := Lookup(key)
	if err != nil {
		return nil
	}
	registry.Lock()
	ours := registry.pids[in.CreatorPID]
	registry.Unlock()
	if ours {
		return RemoveID(in.ID)
	}
	return nil
}

// mustCreate creates a segment and registers its detach and removal as
// cleanup, both tolerant of having been done by the test already.
func mustCreate(t testing.TB, key, size int, opt Options) *Segment {
	t.Helper()
	s := createRetry(t, key, size, opt)
	t.Cleanup(func() { cleanupSegment(t, s) })
	return s
}

// createRetry creates a segment and registers its id for the leak check.
// Packages test in parallel and any HugePages: Auto create takes free huge
// pages, including those a test reserved; so when On finds the pool short
// (ENOMEM), it reserves more (root) and retries, a bounded number of times.
func createRetry(t testing.TB, key, size int, opt Options) *Segment {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := Create(key, size, opt)
		if err == nil {
			registerID(s.ID())
			return s
		}
		if attempt == 5 || opt.HugePages != On || !errors.Is(err, syscall.ENOMEM) || os.Geteuid() != 0 {
			t.Fatalf("Create(%s, %d, %+v) attempt %d: %v", fmtKey(key), size, opt, attempt, err)
		}
		t.Logf("huge pages taken by another process (%v); reserving more", err)
		reserveHuge(t, (size+HugePageSize-1)/HugePageSize)
	}
}

func cleanupSegment(t testing.TB, s *Segment) {
	t.Helper()
	if err := s.Detach(); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	if err := s.Remove(); err != nil && !errors.Is(err, ErrRemoved) && !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cleanup: %v", err)
	}
}

// needRoot skips the test when the process is not root, naming what is
// missing.
func needRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("skipping: %s needs root (euid %d)", what, os.Geteuid())
	}
}

// reserveHuge adds n pages to the 2 MiB pool for the test (root only) and
// gives them back in t.Cleanup, also when the test fails. It skips, naming
// what is missing, when that is impossible.
func reserveHuge(t testing.TB, n int) {
	t.Helper()
	needRoot(t, "reserving huge pages (vm.nr_hugepages)")
	if _, err := ReadHugePool(); err != nil {
		t.Skipf("skipping: no 2 MiB huge pages on this kernel: %v", err)
	}
	r, err := ReserveHugePages(n, 30*time.Second)
	if err != nil {
		t.Skipf("skipping: cannot reserve %d huge pages: %v", n, err)
	}
	t.Cleanup(func() {
		if err := r.Release(30 * time.Second); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// smapsOf returns the smaps entry of s's mapping.
func smapsOf(t testing.TB, s *Segment) smapsEntry {
	t.Helper()
	b := s.Bytes()
	if b == nil {
		t.Fatal("smapsOf: segment detached")
	}
	e, err := readSmaps(addrOf(b))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustContain(t testing.TB, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q does not contain %q", s, sub)
		}
	}
}
