package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/shmpc/shmpc/internal/lockfile"
	"github.com/shmpc/shmpc/internal/proc"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

// ringInfo is one row of `shmpc ls` (and one object of `ls -json`).
type ringInfo struct {
	Name          string `json:"name"`
	Key           string `json:"key"`
	ID            int    `json:"shmid"`
	Slots         int    `json:"slots"`
	SlotSize      int    `json:"slot_size"`
	Pages         string `json:"pages"`
	Head          uint64 `json:"head"`
	Tail          uint64 `json:"tail"`
	Ended         bool   `json:"ended"`
	OwnerUID      int    `json:"owner_uid"`
	ProducerPID   uint32 `json:"producer_pid"`
	ProducerAlive bool   `json:"producer_alive"`
	ConsumerPID   uint32 `json:"consumer_pid"`
	ConsumerAlive bool   `json:"consumer_alive"`
	State         string `json:"state"` // "ok", or why the ring could not be read
	lsCounters
}

// lsCounters are a ring's live counters (ring.Counters) in `ls -json`, zero
// for a ring whose header could not be read. They come from shared memory
// that anyone with write access to it can change: a wrong number at worst.
type lsCounters struct {
	ItemsCommitted     uint64 `json:"items_committed"`
	BytesCommitted     uint64 `json:"bytes_committed"`
	ItemsReleased      uint64 `json:"items_released"`
	BytesReleased      uint64 `json:"bytes_released"`
	IntegrityErrors    uint64 `json:"integrity_errors"`
	ProducerSleeps     uint64 `json:"producer_sleeps"`
	ProducerWakes      uint64 `json:"producer_wakes"`
	ProducerPeerLosses uint64 `json:"producer_peer_losses"`
	ConsumerSleeps     uint64 `json:"consumer_sleeps"`
	ConsumerWakes      uint64 `json:"consumer_wakes"`
	ConsumerPeerLosses uint64 `json:"consumer_peer_losses"`
}

func cmdLs(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ls", stderr, "[-json] [-watch D]")
	jsonOut := fs.Bool("json", false, "one JSON object per ring, one per line (with -watch: per ring per interval)")
	watch := fs.Duration("watch", 0, "redraw every `D` (e.g. 1s) with rates, until SIGINT or SIGTERM; 0: list once")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *watch != 0 {
		if *watch < minWatch {
			return usagef("-watch %v: want a duration of at least %v, e.g. 1s", *watch, minWatch)
		}
		return watchRings(stdout, *watch, *jsonOut)
	}
	rings, err := listRings()
	if err != nil {
		return err
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		for _, r := range rings {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKEY\tSLOTS\tSLOT SIZE\tPAGES\tHEAD\tTAIL\tUID\tPRODUCER\tCONSUMER\tSTATE")
	for _, r := range rings {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", r.Name, r.Key, r.Slots,
			formatSize(int64(r.SlotSize)), r.Pages, r.Head, r.Tail, r.OwnerUID,
			owner(r.ProducerPID, r.ProducerAlive), owner(r.ConsumerPID, r.ConsumerAlive), r.State)
	}
	return tw.Flush()
}

func owner(pid uint32, alive bool) string {
	switch {
	case alive && pid != 0:
		return fmt.Sprintf("%d alive", pid)
	case alive:
		return "alive"
	case pid != 0:
		return fmt.Sprintf("%d dead", pid)
	}
	return "-"
}

// ringNames returns the NAMEs that have a lock file or a semaphore file
// in /dev/shm.
func ringNames() map[string]bool {
	names := map[string]bool{}
	for _, pat := range []string{"/dev/shm/shmpc.*.lock", "/dev/shm/sem.shmpc.*.*"} {
		m, _ := filepath.Glob(pat)
		for _, p := range m {
			base := filepath.Base(p)
			base = strings.TrimPrefix(base, "sem.")
			base = strings.TrimPrefix(base, "shmpc.")
			i := strings.LastIndexByte(base, '.')
			if i <= 0 {
				continue
			}
			n := base[:i]
			if shm.ValidName(n) == nil {
				names[n] = true
			}
		}
	}
	return names
}

// listRings finds every ring on the machine: every segment holding a valid
// ring header, and every segment whose key is that of a NAME found in
// /dev/shm (rings of other users that cannot be attached, interrupted
// creations).
func listRings() ([]ringInfo, error) {
	segs, err := shm.List()
	if err != nil {
		return nil, err
	}
	byKey := map[int]string{}
	for n := range ringNames() {
		if k, err := shm.KeyForName(n); err == nil {
			byKey[k] = n
		}
	}
	var out []ringInfo
	seen := map[string]bool{}
	for _, s := range segs {
		if s.Key == 0 {
			continue // marked for removal
		}
		ri := ringInfo{Key: fmt.Sprintf("%#x", s.Key), ID: s.ID, OwnerUID: s.UID}
		name, known := byKey[s.Key]
		seg, err := shm.AttachID(s.ID, true, shm.Options{Lock: shm.Off})
		if err != nil {
			if !known {
				continue
			}
			ri.Name, ri.State = name, "cannot attach: "+shortErr(err)
			out = append(out, ri)
			seen[name] = true
			continue
		}
		var r *ring.Ring
		if guardFault(func() {
			if r, err = ring.Open(seg.Bytes()); err == nil {
				fillRing(&ri, r, seg.Huge())
			}
		}) {
			err = errors.New("reading it faulted (a huge-page segment without reserved pages?)")
		}
		seg.Detach()
		if err != nil {
			if !known {
				continue // not a ring
			}
			ri.Name, ri.State = name, "no valid header: "+shortErr(err)
			out = append(out, ri)
			seen[name] = true
			continue
		}
		if s.UID != s.CUID {
			ri.State = fmt.Sprintf("not a ring of anyone's: owned by uid %d but created by uid %d", s.UID, s.CUID)
		}
		seen[ri.Name] = true
		out = append(out, ri)
	}
	// Objects without a segment: leftovers of a ring (gc removes them).
	for n := range ringNames() {
		if seen[n] {
			continue
		}
		k, _ := shm.KeyForName(n)
		ri := ringInfo{Name: n, Key: fmt.Sprintf("%#x", k), ID: -1, OwnerUID: -1, State: "no segment"}
		ri.ProducerAlive, ri.ConsumerAlive = rolesHeld(n)
		out = append(out, ri)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func fillRing(ri *ringInfo, r *ring.Ring, huge bool) {
	ri.Name = r.Name()
	ri.Slots, ri.SlotSize = r.Slots(), r.SlotSize()
	ri.Pages = "normal"
	if huge || r.Flags()&ring.FlagHuge != 0 {
		ri.Pages = "huge"
	}
	ri.Head, ri.Tail = r.Head(), r.Tail()
	c := r.Counters()
	ri.lsCounters = lsCounters{
		ItemsCommitted: c.ItemsCommitted, BytesCommitted: c.BytesCommitted,
		ItemsReleased: c.ItemsReleased, BytesReleased: c.BytesReleased, IntegrityErrors: c.IntegrityErrors,
		ProducerSleeps: c.ProducerSleeps, ProducerWakes: c.ProducerWakes, ProducerPeerLosses: c.ProducerPeerLosses,
		ConsumerSleeps: c.ConsumerSleeps, ConsumerWakes: c.ConsumerWakes, ConsumerPeerLosses: c.ConsumerPeerLosses,
	}
	_, ri.Ended = r.End()
	ri.OwnerUID = int(r.OwnerUID())
	pid, cid := r.ProducerID(), r.ConsumerID()
	ri.ProducerPID, ri.ConsumerPID = pid.PID, cid.PID
	ri.ProducerAlive, ri.ConsumerAlive = rolesHeld(ri.Name)
	if !ri.ProducerAlive && pid.PID != 0 && proc.Alive(proc.ID{PID: int(pid.PID), Start: pid.Start}) {
		// The lock file could not be read (another user's ring): fall
		// back to pid and start time.
		ri.ProducerAlive = !lockReadable(ri.Name)
	}
	if !ri.ConsumerAlive && cid.PID != 0 && proc.Alive(proc.ID{PID: int(cid.PID), Start: cid.Start}) {
		ri.ConsumerAlive = !lockReadable(ri.Name)
	}
	ri.State = "ok"
}

// rolesHeld tells whether live processes hold ring name's roles, from its
// lock file (false when there is none or it cannot be opened).
func rolesHeld(name string) (producer, consumer bool) {
	n, err := ringobj.For(name)
	if err != nil {
		return false, false
	}
	l, err := lockfile.Open(n.Lock, false, 0, -1)
	if err != nil {
		return false, false
	}
	defer l.Close()
	producer, _ = l.Held(lockfile.Producer)
	consumer, _ = l.Held(lockfile.Consumer)
	return producer, consumer
}

func lockReadable(name string) bool {
	n, err := ringobj.For(name)
	if err != nil {
		return false
	}
	l, err := lockfile.Open(n.Lock, false, 0, -1)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func shortErr(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
