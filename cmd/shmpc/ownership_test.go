package main

// Issue 12's defects, one deterministic test each: a racing process is
// held between its open of the lock file and its first lock on it (the
// internalhook.LockFileOpened window) while the others run, and hostile
// objects are planted at a ring's names.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/internal/internalhook"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/sem"
	"github.com/shmpc/shmpc/shm"
)

// smallRing are producer options for a small ring on normal pages.
func smallRing() producer.Options {
	return producer.Options{Slots: 2, SlotSize: 4096, HugePages: shm.Off, Lock: shm.Off, Wait: 5 * time.Second}
}

// holdFirstOpen makes the first lock-file open after the call wait, after
// the open and before any lock, until release is called. opened is closed
// when that open happened.
func holdFirstOpen(t *testing.T) (opened <-chan struct{}, release func()) {
	t.Helper()
	var calls atomic.Int32
	op, rel := make(chan struct{}), make(chan struct{})
	internalhook.LockFileOpened = func(string) {
		if calls.Add(1) == 1 {
			close(op)
			select {
			case <-rel:
			case <-time.After(30 * time.Second):
				t.Errorf("the held open was never released")
			}
		}
	}
	var once atomic.Bool
	release = func() {
		if once.CompareAndSwap(false, true) {
			close(rel)
		}
	}
	t.Cleanup(func() {
		release()
		internalhook.LockFileOpened = nil
	})
	return op, release
}

// waitChan waits for ch with a bound.
func waitChan[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: not within 20s", what)
	}
	var zero T
	return zero
}

// objectsOf lists which of ring name's objects exist.
func objectsOf(t *testing.T, name string) []string {
	t.Helper()
	n, err := ringobj.For(name)
	require.NoError(t, err)
	left, err := ringobj.Leftovers(n)
	require.NoError(t, err)
	return left
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	require.NoError(t, unix.Stat(path, &st))
	return st.Ino
}

// TestGCDoesNotRemoveSuccessorRing (issue 12, defect 1): gc opened the lock
// file of ring A; A finished and was removed; a producer created ring B
// under the same NAME. gc must judge B by B's lock file (its producer is
// alive: left alone), not take both roles on A's unlinked file and remove
// B's objects, and it must not report a removal it did not make.
func TestGCDoesNotRemoveSuccessorRing(t *testing.T) {
	name := ringName(t)
	a, err := producer.Open(context.Background(), name, smallRing())
	require.NoError(t, err)

	opened, release := holdFirstOpen(t)
	var out bytes.Buffer
	gcDone := make(chan error, 1)
	go func() { gcDone <- gcRing(name, false, &out) }()
	waitChan(t, opened, "gc opening the lock file")

	require.NoError(t, a.Close()) // A removed: segment, semaphores, lock file
	require.Empty(t, objectsOf(t, name))
	b, err := producer.Open(context.Background(), name, smallRing())
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	before := objectsOf(t, name)
	require.Len(t, before, 6, "B's segment, four semaphores and lock file")

	release()
	require.NoError(t, waitChan(t, gcDone, "gc"))
	t.Logf("gc said: %s", strings.TrimSpace(out.String()))
	require.Equal(t, before, objectsOf(t, name), "gc removed objects of the live ring B")
	require.NotContains(t, out.String(), "removed")
	require.Contains(t, out.String(), "left alone: its producer is alive")
	require.NoError(t, b.Send(context.Background(), []byte("still mine")), "B's ring is intact")
}

// TestNoSecondProducerOnReplacedLockFile (issue 12, defect 2): a producer
// that opened A's lock file just before A was removed must not take the
// producer role on the unlinked file and resume ring B while B's creator
// is alive: it is refused as busy.
func TestNoSecondProducerOnReplacedLockFile(t *testing.T) {
	name := ringName(t)
	a, err := producer.Open(context.Background(), name, smallRing())
	require.NoError(t, err)

	opened, release := holdFirstOpen(t)
	type result struct {
		p   *producer.Producer
		err error
	}
	xDone := make(chan result, 1)
	go func() {
		p, err := producer.Open(context.Background(), name, smallRing())
		xDone <- result{p, err}
	}()
	waitChan(t, opened, "producer X opening the lock file")
	require.NoError(t, a.Close())
	b, err := producer.Open(context.Background(), name, smallRing())
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })

	release()
	x := waitChan(t, xDone, "producer X")
	if x.p != nil {
		x.p.Close()
	}
	require.ErrorIs(t, x.err, producer.ErrBusy, "a second live producer took the ring")
	t.Logf("X: %v", x.err)
	require.Equal(t, uint64(1), b.Ring().ProducerID().Gen, "nobody resumed B's ring")
	require.Len(t, objectsOf(t, name), 6)
}

// TestRoleRaceLoserLeavesWinnersLockFile (issue 12, defect 3): of two
// producers starting on a fresh NAME, the one that created the lock file
// but lost the role must not unlink it: the winner's ring stays reachable.
// The same for gc racing a producer's start.
func TestRoleRaceLoserLeavesWinnersLockFile(t *testing.T) {
	for _, loser := range []string{"producer", "gc"} {
		t.Run(loser, func(t *testing.T) {
			name := ringName(t)
			n, _ := ringobj.For(name)
			if loser == "gc" {
				// gc makes the lock file only for a NAME with something
				// to judge: a stray semaphore of ours (which the winner
				// then uses).
				s, err := sem.Create(n.Filled, 0, 0o600)
				require.NoError(t, err)
				require.NoError(t, s.Close())
			}
			opened, release := holdFirstOpen(t)
			loserDone := make(chan error, 1)
			var out bytes.Buffer
			go func() {
				if loser == "gc" {
					loserDone <- gcRing(name, false, &out)
					return
				}
				p, err := producer.Open(context.Background(), name, smallRing())
				if p != nil {
					p.Close()
				}
				loserDone <- err
			}()
			waitChan(t, opened, "the loser creating the lock file")
			ino := inode(t, n.Lock)
			w, err := producer.Open(context.Background(), name, smallRing())
			require.NoError(t, err, "the winner takes the role on the file the loser created")
			t.Cleanup(func() { w.Close() })
			require.Equal(t, ino, inode(t, n.Lock))

			release()
			err = waitChan(t, loserDone, "the loser")
			if loser == "gc" {
				require.NoError(t, err)
				require.Contains(t, out.String(), "left alone")
				t.Logf("gc said: %s", strings.TrimSpace(out.String()))
			} else {
				require.ErrorIs(t, err, producer.ErrBusy)
			}
			_, err = os.Stat(n.Lock)
			require.NoError(t, err, "the loser unlinked the winner's lock file")
			require.Equal(t, ino, inode(t, n.Lock))

			// The winner's ring is reachable: a consumer attaches and gets
			// an item.
			c, err := consumer.Open(context.Background(), name, consumer.Options{Wait: 5 * time.Second, Workers: 1})
			require.NoError(t, err, "the winner's ring is unreachable")
			t.Cleanup(func() { c.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var items atomic.Int32
			ran := make(chan error, 1)
			go func() {
				ran <- c.Run(ctx, func(uint64, []byte) error { items.Add(1); return nil })
			}()
			require.NoError(t, w.Send(ctx, []byte("hello")))
			require.NoError(t, w.End(ctx))
			require.NoError(t, waitChan(t, ran, "the consumer's Run"))
			require.Equal(t, int32(1), items.Load())
		})
	}
}

// plantEnv makes the test binary plant a ring segment and exit:
// "KEY,NAME,KIND" formats a ring NAME at KEY (2 slots of 4096) and then,
// by KIND, damages its header ("foreign magic", "other version",
// "corrupt header"; see TestGCLeavesUnreadableSegments) or, for
// "handover:UID", names UID as its owner in the header and gives the
// segment to UID with mode 0666 (IPC_SET), as its creator may. It prints
// the shmid.
const plantEnv = "SHMPC_TEST_PLANT"

func plant(spec string) int {
	parts := strings.Split(spec, ",")
	key, _ := strconv.Atoi(parts[0])
	owner, handover := os.Geteuid(), false
	if u, ok := strings.CutPrefix(parts[2], "handover:"); ok {
		owner, _ = strconv.Atoi(u)
		handover = true
	}
	fail := func(what string, err error) int {
		fmt.Fprintln(os.Stderr, what+":", err)
		return 1
	}
	size, _ := ring.Size(2, 4096)
	seg, err := shm.Create(key, size, shm.Options{HugePages: shm.Off, Lock: shm.Off})
	if err != nil {
		return fail("create", err)
	}
	b := seg.Bytes()
	if _, err := ring.Format(b, ring.Config{Name: parts[1], Slots: 2, SlotSize: 4096, OwnerUID: uint32(owner)}); err != nil {
		return fail("format", err)
	}
	switch parts[2] {
	case "foreign magic":
		copy(b[0:8], "NOTSHMPC")
	case "other version":
		b[8]++ // the layout version follows the 8-byte magic
	case "corrupt header":
		for i := 16; i < 64; i++ {
			b[i] = 0xff
		}
	}
	id := seg.ID()
	_ = seg.Detach()
	if handover {
		var d unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &d); err != nil {
			return fail("IPC_STAT", err)
		}
		d.Perm.Uid, d.Perm.Gid, d.Perm.Mode = uint32(owner), uint32(owner), 0o666
		if _, err := unix.SysvShmCtl(id, unix.IPC_SET, &d); err != nil {
			return fail("IPC_SET", err)
		}
	}
	fmt.Println(id)
	return 0
}

// nobodyBinary returns a copy of the test binary that uid 65534 may run.
func nobodyBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Chmod(strings.TrimSuffix(dir, "/001"), 0o755)) // t.TempDir's parent is 0700
	bin := dir + "/shmpc"
	b, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, b, 0o755))
	return bin
}

// segmentDigest identifies a segment's contents.
func segmentDigest(t *testing.T, id int) [32]byte {
	t.Helper()
	seg, err := shm.AttachID(id, true, shm.Options{Lock: shm.Off})
	require.NoError(t, err)
	defer seg.Detach()
	return sha256.Sum256(seg.Bytes())
}

// TestHandedOverSegmentRefused (issue 12, defect 4): uid 65534 creates a
// segment at the ring's key holding a valid header that names root, then
// hands it to root with mode 0666. Root's producer, consumer and gc must
// refuse it (owner uid 0 but creator uid 65534), naming the uids, and
// neither write nor remove it.
func TestHandedOverSegmentRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a process of uid 65534 hands a segment over to root")
	}
	name := ringName(t)
	n, _ := ringobj.For(name)
	c := exec.Command(nobodyBinary(t))
	c.Env = append(os.Environ(), plantEnv+"="+fmt.Sprintf("%d,%s,handover:0", n.Key, name))
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := c.Output()
	require.NoError(t, err, "plant as uid 65534: %s", out)
	id, err := strconv.Atoi(strings.TrimSpace(string(out)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = shm.RemoveID(id) })
	info, err := shm.Lookup(n.Key)
	require.NoError(t, err)
	require.Equal(t, 0, info.UID)
	require.Equal(t, 65534, info.CUID)
	digest := segmentDigest(t, id)

	_, err = producer.Open(context.Background(), name, producer.Options{HugePages: shm.Off, Lock: shm.Off, Perm: 0o666})
	require.ErrorIs(t, err, producer.ErrForeign, "root's producer adopted a segment created by uid 65534")
	require.Contains(t, err.Error(), "created by uid 65534")
	t.Logf("producer: %v", err)

	// A consumer finds a lock file of root's next to it.
	require.NoError(t, os.WriteFile(n.Lock, nil, 0o600))
	t.Cleanup(func() { _ = os.Remove(n.Lock) })
	_, err = consumer.Open(context.Background(), name, consumer.Options{Wait: 500 * time.Millisecond})
	require.ErrorIs(t, err, consumer.ErrForeign, "root's consumer attached a segment created by uid 65534")
	t.Logf("consumer: %v", err)

	var gcOut bytes.Buffer
	require.NoError(t, gcRing(name, false, &gcOut))
	t.Logf("gc: %s", strings.TrimSpace(gcOut.String()))
	require.Contains(t, gcOut.String(), "created by uid 65534")
	require.Equal(t, 1, strings.Count(gcOut.String(), "left alone"), "one line for the segment")

	now, err := shm.Lookup(n.Key)
	require.NoError(t, err, "the handed-over segment was removed")
	require.Equal(t, id, now.ID)
	require.Equal(t, digest, segmentDigest(t, id), "the handed-over segment was written")
	require.NoError(t, shm.RemoveID(id))
	_ = os.Remove(n.Lock)
}

// TestGCLeavesUnreadableSegments (issue 12, defect 6): a segment of our
// uid at a ring's key that is not an interrupted creation (foreign magic,
// another layout version, a corrupt header) is reported in one line and
// left alone; only a header whose magic was never written, with its
// creator dead, is removed.
func TestGCLeavesUnreadableSegments(t *testing.T) {
	for _, kind := range []string{"foreign magic", "other version", "corrupt header"} {
		t.Run(strings.ReplaceAll(kind, " ", "-"), func(t *testing.T) {
			name := ringName(t)
			n, _ := ringobj.For(name)
			// Planted by a process that exits: its creator is dead, as
			// for an interrupted creation.
			c := exec.Command(os.Args[0])
			c.Env = append(os.Environ(), plantEnv+"="+fmt.Sprintf("%d,%s,%s", n.Key, name, kind))
			out, err := c.CombinedOutput()
			require.NoError(t, err, "plant: %s", out)
			id, err := strconv.Atoi(strings.TrimSpace(string(out)))
			require.NoError(t, err, "plant: %s", out)
			t.Cleanup(func() { _ = shm.RemoveID(id) })
			seg, err := shm.AttachID(id, true, shm.Options{Lock: shm.Off})
			require.NoError(t, err)
			_, openErr := ring.Open(seg.Bytes())
			require.Error(t, openErr, "the damage must make the header unreadable")
			require.NotErrorIs(t, openErr, ring.ErrNotFormatted)
			require.NoError(t, seg.Detach())

			var gcOut bytes.Buffer
			require.NoError(t, gcRing(name, false, &gcOut))
			t.Logf("gc: %s", strings.TrimSpace(gcOut.String()))
			_, err = shm.Lookup(n.Key)
			require.NoError(t, err, "gc removed a segment that is not an interrupted creation (%v)", openErr)
			require.Equal(t, 1, strings.Count(gcOut.String(), "left alone"))
			require.NotContains(t, gcOut.String(), "removed")
			require.NoError(t, shm.RemoveID(id))
		})
	}
}

// TestConsumerValidatesBeforePretouch (issue 12, defect 8): a consumer
// that finds a segment it refuses must not have faulted it in first.
func TestConsumerValidatesBeforePretouch(t *testing.T) {
	name := ringName(t)
	n, _ := ringobj.For(name)
	const size = 64 << 20
	seg, err := shm.Create(n.Key, size, shm.Options{HugePages: shm.Off, Lock: shm.Off})
	require.NoError(t, err)
	id := seg.ID()
	t.Cleanup(func() { _ = shm.RemoveID(id) })
	copy(seg.Bytes(), "NOTSHMPC") // one page touched
	require.NoError(t, seg.Detach())
	require.NoError(t, os.WriteFile(n.Lock, nil, 0o600))
	t.Cleanup(func() { _ = os.Remove(n.Lock) })

	_, err = consumer.Open(context.Background(), name, consumer.Options{Wait: 500 * time.Millisecond})
	require.ErrorIs(t, err, consumer.ErrForeign)
	var resident int64 = -1
	segs, err := shm.List()
	require.NoError(t, err)
	for _, s := range segs {
		if s.ID == id {
			resident = s.Resident
		}
	}
	t.Logf("resident after the refusal: %d bytes of %d", resident, size)
	require.GreaterOrEqual(t, resident, int64(0), "segment %d not listed", id)
	require.Less(t, resident, int64(1<<20), "the consumer faulted the refused segment in")
	require.NoError(t, shm.RemoveID(id))
	require.NoError(t, os.Remove(n.Lock))
}
