package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/sem"
	"github.com/shmpc/shmpc/shm"
)

// hostileBound bounds how long a side may take to end after the attack
// and the producer's SIGTERM: a garbled ring must give an error, not a
// hang.
const hostileBound = 5 * time.Second

// scribble: another process writes random bytes over the header, the
// slot descriptors or the payloads of a live ring, either while items flow
// ("live") or over items that are published and not yet consumed, before
// the consumer starts ("at-rest", which aims at a published item so the
// damage must be caught); or the producer itself damages an item after
// computing its CRC ("in-producer", the produce-corrupt fault hook). Whatever happens, no damaged item is delivered
// as good, no process crashes or hangs, every error is one line, nothing
// is left behind, and a bystander ring whose NAME the attacker wrote into
// the header is not touched.
func scribble(tr *Trial, area string) {
	st := tr.drawStream(true)
	timings := []string{"live", "at-rest"}
	if area == "payload" {
		timings = append(timings, "in-producer")
	}
	timing := tr.pick(timings...)
	tr.variant("%s", timing)
	m := tr.file("manifest")
	var c *proc
	// -wait 1s: a side the attack leaves waiting for a peer that never
	// comes (a consumer that refused the ring) gives up within the bound.
	cargs := tr.consume(st, m, "-wait", "1s")
	var copt procOpt
	var sink *patternSink
	// The default consumer verifies views into the slots (zero copy);
	// -manifest and -stdout verify private copies. A damaged item must be
	// caught either way: without a manifest the consumer's -json summary
	// counts what it delivered.
	zeroCopy := area == "payload" && timing != "live" && tr.pick("zero-copy", "copy") == "zero-copy"
	// shmpc-c has no -json summary: what a zero-copy shmpc-c consumer
	// delivered is the ring's tail (it releases each item before it
	// acquires the next), so the ring is observed before it starts.
	cConsumer := tr.pair.lang("consumer", "consume") == langC
	observeFirst := zeroCopy && cConsumer && timing == "in-producer"
	if zeroCopy {
		cargs = []string{"consume", "-name", tr.name, "-workers", strconv.Itoa(st.workers), "-wait", "1s", "-json"}
		if cConsumer {
			tr.variant("zero-copy shmpc-c consumer (no -manifest, no -stdout), counted by the ring's tail")
		} else {
			tr.variant("zero-copy consumer (no -manifest, no -stdout), counted by its -json summary")
		}
	} else {
		sink = tr.consumerOut(st, 0, &copt, &cargs)
	}
	var popt procOpt
	var bystander *planted
	damaged := int64(-1) // the published item the attack damaged for sure
	if timing == "in-producer" {
		// The producer itself flips a byte of item n in its slot after it
		// computed the item's CRC (the fault hook): the consumer must stop
		// there.
		n := tr.faultItem(st)
		popt.fault = fmt.Sprintf("produce-corrupt:%d", n)
		damaged = int64(n)
		tr.variant("the producer flips a byte of item %d after its CRC", n)
	}
	if timing != "at-rest" && !observeFirst {
		c = tr.start("consumer", copt, cargs...)
	}
	p := tr.start("producer", popt, tr.produce(st, "-wait", "1s")...)
	var r *ring.Ring
	if timing != "in-producer" || observeFirst {
		r = tr.observe(p)
	}
	if timing != "in-producer" {
		if timing == "live" {
			k := tr.killPoint(st)
			tr.released(r, c, k, p)
		} else {
			tr.waitFor("the ring to fill", exitBound, full(r), p)
		}
		bystander, damaged = tr.attack(area, timing, st, r.Tail())
	}
	if damaged >= 0 {
		tr.logf("the attack damaged published item %d", damaged)
	}
	if timing == "at-rest" || observeFirst {
		c = tr.start("consumer", copt, cargs...)
	}
	if timing == "in-producer" {
		// The consumer stops at the damaged item; the producer then finds
		// its consumer gone.
		c.wait(exitBound)
		p.wait(hostileBound)
	} else {
		tr.sleep(tr.live(50*time.Millisecond, 300*time.Millisecond))
		if p.running() {
			p.signal(syscall.SIGTERM) // end the stream, if the ring still works
		}
		p.wait(hostileBound)
		c.wait(hostileBound)
	}
	pAllowed, cAllowed := []int{0, 1, 3}, []int{0, 1, 3, 4}
	switch {
	case timing == "in-producer":
		pAllowed, cAllowed = []int{3}, []int{4}
	case area == "payload" && damaged >= 0:
		cAllowed = []int{4}
	case area == "payload":
		cAllowed = []int{0, 4}
	case area == "descriptors" && damaged >= 0:
		cAllowed = []int{1, 4}
	case area == "descriptors":
		cAllowed = []int{0, 1, 4}
	}
	tr.expectCode(p, pAllowed)
	tr.expectCode(c, cAllowed)
	got := tr.delivered("consumer", m, st)
	if damaged >= 0 && got[uint64(damaged)] > 0 {
		tr.res.BadDelivered++
		tr.failf("item %d was damaged in its slot and still delivered", damaged)
	}
	if zeroCopy {
		tr.zeroCopyStoppedAt(c, r, damaged, st)
	}
	// shmpc-c delivers in order whatever -workers says.
	if area == "payload" && damaged >= 0 && (st.workers == 1 || c.lang == langC) && !zeroCopy {
		// One worker: the consumer stops at the damaged item, after every
		// item before it was delivered. (A garbled descriptor may stop it
		// sooner: the reader checks descriptors when it acquires, which may
		// be ahead of what was delivered; those items stay unreleased, as
		// at a consumer's death.)
		tr.requireAll("the items before the damaged one", got, 0, uint64(damaged))
	}
	if sink != nil {
		sink.check(tr, false, -1)
	}
	if bystander != nil {
		bystander.check(tr)
	}
	tr.checkLeftovers()
}

// zeroCopyStoppedAt checks a zero-copy consumer that must have stopped at
// the damaged item: exit 4 naming it, and its -json summary counting what
// it delivered. With one worker items are handled and released in order:
// exactly the items before the damaged one. With several, the handler runs
// for items in any order, so items after the damaged one may have been
// delivered before it failed, but at most slots-1 of them (no more are
// acquired at once, and the damaged one is never released); those in
// flight when it failed stay unreleased (a successor gets them), as at a
// consumer's death. A shmpc-c consumer (no -json) delivers and releases
// one item at a time, in order: what it delivered is the tail of the
// observed ring r, and its error line names the item.
func (tr *Trial) zeroCopyStoppedAt(c *proc, r *ring.Ring, damaged int64, st stream) {
	var sum struct {
		Items uint64 `json:"items"`
		Exit  int    `json:"exit"`
		Error string `json:"error"`
	}
	workers := st.workers
	if c.lang == langC {
		sum.Items, sum.Error, workers = r.Tail(), lastLine(c.stderr.String()), 1
	} else {
		out := strings.TrimSpace(c.stdout.String())
		if err := json.Unmarshal([]byte(lastLine(out)), &sum); err != nil {
			tr.failf("the zero-copy consumer's -json summary %q: %v", clip(out, 300), err)
			return
		}
	}
	tr.res.Items += int(sum.Items)
	if !strings.Contains(sum.Error, fmt.Sprintf("item %d ", damaged)) {
		tr.failf("the zero-copy consumer stopped with %q, not at the damaged item %d", sum.Error, damaged)
	}
	most := uint64(damaged)
	if workers > 1 {
		most += uint64(st.slots - 1)
	}
	switch {
	case sum.Items > most:
		tr.res.BadDelivered += int(sum.Items - most)
		tr.failf("the zero-copy consumer (%d workers, %d slots) delivered %d items, more than the %d it can have with item %d damaged",
			workers, st.slots, sum.Items, most, damaged)
	case sum.Items < uint64(damaged) && workers == 1:
		tr.res.Lost += int(uint64(damaged) - sum.Items)
		tr.failf("the zero-copy consumer delivered %d items, short of the %d before the damaged one", sum.Items, damaged)
	}
	tr.logf("the zero-copy consumer delivered %d items and stopped at %d", sum.Items, damaged)
}

// attack writes over the ring's area (header, descriptors or payload)
// through a writable attachment of its segment. At rest it aims at one of
// the published items (tail is the oldest) and returns it as damaged; live
// it hits whatever is there (damaged -1). An attack on the header's NAME
// plants a bystander ring whose NAME it writes there.
func (tr *Trial) attack(area, timing string, st stream, tail uint64) (bystander *planted, damaged int64) {
	damaged = -1
	mem := tr.attachRW()
	descOff, dataOff, stride := geometryOf(mem)
	switch area {
	case "header":
		switch tr.pick("random", "field", "field", "name") {
		case "random":
			off := tr.intn(headerSize)
			n := 1 + tr.intn(min(32, headerSize-off))
			tr.variant("random bytes at header offset %d..%d", off, off+n)
			tr.scrawl(mem[off : off+n])
		case "field":
			f := headerFields[tr.intn(len(headerFields))]
			tr.variant("%s", f.name)
			tr.setField(mem[f.offset : f.offset+f.size])
		case "name":
			bystander = tr.plantBystander()
			tr.variant("header.name set to bystander ring %s", bystander.name)
			b := mem[128 : 128+64]
			clear(b)
			copy(b, bystander.name)
			binary.NativeEndian.PutUint64(mem[96:], uint64(len(bystander.name)))
		}
	case "descriptors":
		j := tr.intn(st.slots)
		if timing == "at-rest" {
			damaged = int64(tail) + int64(j)
			j = int(uint64(damaged) % uint64(st.slots))
		}
		d := mem[descOff+j*descriptorSize : descOff+(j+1)*descriptorSize]
		if tr.intn(4) == 0 {
			off := tr.intn(24)
			n := 1 + tr.intn(24-off)
			tr.variant("random bytes over descriptor %d bytes %d..%d", j, off, off+n)
			tr.scrawl(d[off : off+n])
		} else {
			f := descriptorFields[tr.intn(len(descriptorFields))]
			tr.variant("descriptor %d %s", j, f.name)
			tr.setField(d[f.offset : f.offset+f.size])
		}
	case "payload":
		j := tr.intn(st.slots)
		n := st.slotSize
		if timing == "at-rest" {
			damaged = int64(tail) + int64(tr.intn(st.slots))
			j = int(uint64(damaged) % uint64(st.slots))
			n = st.lenOf(uint64(damaged))
		}
		off := tr.intn(n)
		k := 1 + tr.intn(min(64, n-off))
		tr.variant("random bytes over slot %d bytes %d..%d", j, off, off+k)
		tr.scrawl(mem[dataOff+j*stride+off : dataOff+j*stride+off+k])
	}
	return bystander, damaged
}

// scrawl writes random bytes over b, changing at least one of them.
func (tr *Trial) scrawl(b []byte) {
	old := append([]byte(nil), b...)
	for {
		for i := range b {
			b[i] = byte(tr.rng.Uint32())
		}
		if !bytes.Equal(b, old) {
			return
		}
	}
}

// setField writes a value that a careless reader would trust into a
// field: zero, all ones, the old value plus or minus a little, or random
// bytes; it always changes the field.
func (tr *Trial) setField(b []byte) {
	if len(b) != 8 && len(b) != 4 {
		tr.scrawl(b)
		return
	}
	get := func() uint64 {
		if len(b) == 8 {
			return binary.NativeEndian.Uint64(b)
		}
		return uint64(binary.NativeEndian.Uint32(b))
	}
	put := func(v uint64) {
		if len(b) == 8 {
			binary.NativeEndian.PutUint64(b, v)
		} else {
			binary.NativeEndian.PutUint32(b, uint32(v))
		}
	}
	old := get()
	for i := 0; i < 16; i++ {
		switch tr.intn(6) {
		case 0:
			put(0)
		case 1:
			put(^uint64(0))
		case 2:
			put(old + 1 + uint64(tr.intn(64)))
		case 3:
			put(old - 1 - uint64(tr.intn(64)))
		case 4:
			put(old ^ 1<<uint(tr.intn(len(b)*8)))
		default:
			put(tr.rng.Uint64())
		}
		if get() != old {
			return
		}
	}
	tr.scrawl(b)
}

// planted is a set of objects the trial created for an attacker or a
// bystander, with what each looked like, so the trial can tell whether a
// shmpc process removed or changed them.
type planted struct {
	name  string
	files map[string]fileMark
	segID int // -1: none
	seg   segMark
}

type fileMark struct {
	ino, uid uint64
	mode     uint32
	sum      [32]byte
}

type segMark struct {
	uid  int
	mode os.FileMode
	sum  [32]byte
}

func markFile(path string) (fileMark, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fileMark{}, err
	}
	m := fileMark{ino: st.Ino, uid: uint64(st.Uid), mode: st.Mode}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		b, err := os.ReadFile(path)
		if err != nil {
			return fileMark{}, err
		}
		m.sum = sha256.Sum256(b)
	}
	return m, nil
}

func markSeg(id int) (segMark, error) {
	info, err := shm.StatID(id)
	if err != nil {
		return segMark{}, err
	}
	seg, err := shm.AttachID(id, true, shm.Options{Lock: shm.Off})
	if err != nil {
		return segMark{}, err
	}
	defer seg.Detach()
	return segMark{uid: info.UID, mode: info.Mode, sum: sha256.Sum256(seg.Bytes())}, nil
}

// remember records the current state of every planted object, and marks
// them as planted for the leftover check.
func (tr *Trial) remember(pl *planted) {
	for path := range pl.files {
		m, err := markFile(path)
		if err != nil {
			tr.fatalf("stat planted %s: %v", path, err)
		}
		pl.files[path] = m
		tr.planted[path] = true
	}
	if pl.segID >= 0 {
		m, err := markSeg(pl.segID)
		if err != nil {
			tr.fatalf("stat planted segment %d: %v", pl.segID, err)
		}
		pl.seg = m
		if n, err := ringobj.For(pl.name); err == nil {
			tr.planted[fmt.Sprintf("segment key %#x", n.Key)] = true
		}
	}
}

// check verifies that every planted object is still there, unchanged;
// each one removed or changed counts as leaked (an object the attacker
// made a shmpc process delete or alter).
func (pl *planted) check(tr *Trial) {
	for path, want := range pl.files {
		got, err := markFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			tr.res.Leaked++
			tr.failf("%s, which no shmpc process owned, was removed", path)
		case err != nil:
			tr.failf("stat %s: %v", path, err)
		case got != want:
			tr.res.Leaked++
			tr.failf("%s, which no shmpc process owned, was changed", path)
		}
	}
	if pl.segID >= 0 {
		got, err := markSeg(pl.segID)
		switch {
		case err != nil:
			tr.res.Leaked++
			tr.failf("segment %d of %s, which no shmpc process owned, is gone: %v", pl.segID, pl.name, err)
		case got != pl.seg:
			tr.res.Leaked++
			tr.failf("segment %d of %s, which no shmpc process owned, was changed", pl.segID, pl.name)
		}
	}
}

// forget removes the planted objects from the leftover check (after gc
// was asked to remove them).
func (tr *Trial) forget(pl *planted) {
	for path := range pl.files {
		delete(tr.planted, path)
	}
	if n, err := ringobj.For(pl.name); err == nil {
		delete(tr.planted, fmt.Sprintf("segment key %#x", n.Key))
	}
}

// plantBystander creates the objects of another ring, which the trial
// owns: a formatted segment, the four semaphores and the lock file.
func (tr *Trial) plantBystander() *planted {
	name := ringName("bystander")
	n, _ := ringobj.For(name)
	pl := &planted{name: name, files: map[string]fileMark{}, segID: -1}
	tr.cleanups = append(tr.cleanups, func() { tr.removePlanted(pl, n) })
	size, _ := ring.Size(2, 4096)
	seg, err := shm.Create(n.Key, size, shm.Options{HugePages: shm.Off, Lock: shm.Off})
	if err != nil {
		tr.fatalf("create bystander segment: %v", err)
	}
	pl.segID = seg.ID()
	if _, err := ring.Format(seg.Bytes(), ring.Config{Name: name, Slots: 2, SlotSize: 4096, OwnerUID: uint32(os.Geteuid())}); err != nil {
		tr.fatalf("format bystander ring: %v", err)
	}
	_ = seg.Detach()
	for _, s := range n.SemNames() {
		x, err := sem.Create(s, 0, 0o600)
		if err != nil {
			tr.fatalf("create bystander semaphore: %v", err)
		}
		x.Close()
		p, _ := sem.Path(s)
		pl.files[p] = fileMark{}
	}
	if err := os.WriteFile(n.Lock, nil, 0o600); err != nil {
		tr.fatalf("create bystander lock file: %v", err)
	}
	pl.files[n.Lock] = fileMark{}
	tr.remember(pl)
	return pl
}

// removePlanted removes what plantBystander or a squatter created (only
// that: the segment by the id it was created with).
func (tr *Trial) removePlanted(pl *planted, n ringobj.Names) {
	if pl.segID >= 0 {
		if info, err := shm.StatID(pl.segID); err == nil && (info.Key == n.Key || info.Key == 0) {
			_ = shm.RemoveID(pl.segID)
		}
	}
	for path := range pl.files {
		_ = os.Remove(path)
	}
}

// chownSeg gives segment id to uid (IPC_SET), with mode.
func chownSeg(id, uid int, mode uint32) error {
	var d unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &d); err != nil {
		return os.NewSyscallError("shmctl IPC_STAT", err)
	}
	d.Perm.Uid, d.Perm.Gid, d.Perm.Mode = uint32(uid), uint32(uid), mode
	if _, err := unix.SysvShmCtl(id, unix.IPC_SET, &d); err != nil {
		return os.NewSyscallError("shmctl IPC_SET", err)
	}
	return nil
}
