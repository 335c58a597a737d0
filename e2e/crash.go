package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/shmpc/shmpc/ring"
)

// Stream sizes: a long stream never ends within a trial (the kill always
// lands mid-transfer and the survivor gives up); a bounded one is
// transferred completely after a resume.
const (
	longItems    = 1_000_000
	boundedBytes = 128 << 20
	minBounded   = 48
	maxBounded   = 20000
)

// Bounds of the waits for processes that are expected to finish.
const (
	exitBound   = 30 * time.Second // a survivor, a resumed pair
	finishBound = 90 * time.Second // a whole bounded stream
)

// killPoint is how far into the stream a time-based kill waits: until
// the consumer released K items, K drawn from [0, 4*slots+64) and at most
// an eighth of the stream.
func (tr *Trial) killPoint(st stream) uint64 {
	return min(uint64(tr.intn(4*st.slots+64)), st.items/8)
}

// faultItem draws an item number for a fault hook, before the stream's end.
func (tr *Trial) faultItem(st stream) uint64 {
	return uint64(tr.intn(int(min(st.items-1, uint64(4*st.slots+48))) + 1))
}

// stopAndWait sends SIGSTOP and waits until the process is stopped.
func (tr *Trial) stopAndWait(p *proc) time.Time {
	at := p.signal(syscall.SIGSTOP)
	tr.waitFor(p.role+" to stop", 10*time.Second, p.stopped, p)
	return at
}

// startPair starts the consumer and the producer of the trial's ring in
// the given order ("consumer first", "producer first", or "" to draw one:
// start order does not matter) and returns them with the
// observed ring. A producer started first creates the ring and waits on
// it, full, for its first consumer, so the ring is observed before any
// item moves: bounded streams start that way, or a fast transfer could
// end before the trial saw it.
func (tr *Trial) startPair(order string, copt procOpt, cargs []string, popt procOpt, pargs []string) (c, p *proc, r *ring.Ring) {
	if order == "" {
		order = tr.pick("consumer first", "producer first")
	}
	tr.variant("%s", order)
	if order == "consumer first" {
		c = tr.start("consumer", copt, cargs...)
		p = tr.start("producer", popt, pargs...)
		return c, p, tr.observe(p, c)
	}
	p = tr.start("producer", popt, pargs...)
	r = tr.observe(p)
	c = tr.start("consumer", copt, cargs...)
	return c, p, r
}

// order returns the start order of a pair: drawn for a long stream, the
// producer first for a bounded one (see startPair).
func order(long bool) string {
	if long {
		return ""
	}
	return "producer first"
}

// released waits until the consumer c claimed the ring r and released k
// items (watching c and watch for an early exit).
func (tr *Trial) released(r *ring.Ring, c *proc, k uint64, watch ...*proc) {
	tr.claimed(r, c)
	tr.waitFor(fmt.Sprintf("%d items released", k), exitBound, func() bool { return r.Tail() >= k }, append(watch, c)...)
}

// claimed waits until the consumer c claimed the ring r (its identity is
// in the header): only then has it seen its producer alive, so that the
// producer's death is a death to detect and not an orphaned ring, which a
// newcomer waits -wait for.
func (tr *Trial) claimed(r *ring.Ring, c *proc) {
	tr.waitFor("the consumer to claim the ring", exitBound, func() bool { return int(r.ConsumerID().PID) == c.pid() }, c)
}

// full reports whether every slot of r holds an unreleased item.
func full(r *ring.Ring) func() bool {
	return func() bool { return r.Head()-r.Tail() == uint64(r.Slots()) }
}

// consumerOut draws whether a consumer that starts at item first and
// keeps its order also writes -stdout, checked byte for byte by a sink.
func (tr *Trial) consumerOut(st stream, first uint64, o *procOpt, args *[]string) *patternSink {
	if tr.intn(2) == 0 {
		return nil
	}
	s := newPatternSink(st, first)
	o.stdout = s
	*args = append(*args, "-stdout")
	tr.variant("consumer writes -stdout")
	return s
}

// producerKilled: the producer is SIGKILLed mid-transfer, inside a slot
// write, between items, or blocked on a full ring (with no consumer yet,
// or with a stopped one). Without resume the consumer (-peer-timeout 0, or
// a short one that expires) delivers every published item exactly once,
// removes the ring and exits 3 within the detection bound (or the
// timeout); with resume it waits, a new producer continues at head, and
// the whole stream arrives exactly once. A producer killed after the
// stream was drained but before it removed the ring ("before-cleanup")
// leaves that to the consumer, which exits 0.
func producerKilled(tr *Trial, resume bool) {
	points := []string{"mid-transfer", "in-slot", "after-commit", "full-ring-no-consumer", "full-ring-stopped-consumer"}
	if !resume {
		points = append(points, "before-cleanup")
	}
	point := tr.pick(points...)
	tr.variant("kill point %s", point)
	st := tr.drawStream(!resume && point != "before-cleanup")
	pt := "0s"
	var timeout time.Duration // a positive -peer-timeout that expires
	switch {
	case resume:
		pt = "30s"
	case point != "full-ring-no-consumer" && point != "before-cleanup" && tr.intn(4) == 0:
		timeout = tr.between(100*time.Millisecond, 400*time.Millisecond)
		pt = timeout.String()
		tr.variant("-peer-timeout %v expires", timeout)
	}
	n := tr.faultItem(st)
	var popt procOpt
	switch point {
	case "in-slot":
		popt.fault = fmt.Sprintf("produce-in-slot:%d", n)
	case "after-commit":
		popt.fault = fmt.Sprintf("produce-after:%d", n)
	case "before-cleanup":
		popt.fault = "produce-before-cleanup"
	}
	m := tr.file("manifest")
	var copt procOpt
	cargs := tr.consume(st, m, "-peer-timeout", pt)
	sink := tr.consumerOut(st, 0, &copt, &cargs)
	var c, p *proc
	var r *ring.Ring
	if point != "full-ring-no-consumer" {
		c, p, r = tr.startPair(order(!resume && point != "before-cleanup"), copt, cargs, popt, tr.produce(st))
	} else {
		p = tr.start("producer", popt, tr.produce(st)...)
		r = tr.observe(p)
	}
	ref := time.Time{} // what detection is measured from (zero: the kill)
	switch point {
	case "mid-transfer":
		k := tr.killPoint(st)
		tr.released(r, c, min(k, st.items), p)
		tr.sleep(tr.between(0, 3*time.Millisecond))
	case "before-cleanup":
		p.waitStderr("fault produce-before-cleanup", finishBound)
	case "in-slot", "after-commit":
		p.waitStderr(fmt.Sprintf("fault %s %d", strings.SplitN(popt.fault, ":", 2)[0], n), exitBound)
		if tr.intn(2) == 0 {
			// Let the consumer drain and go to sleep on the empty ring.
			tr.waitFor("the consumer to drain", exitBound, func() bool { return r.Tail() == n }, c)
			tr.sleep(tr.between(0, 20*time.Millisecond))
		}
	case "full-ring-no-consumer":
		tr.waitFor("the ring to fill", exitBound, full(r), p)
	case "full-ring-stopped-consumer":
		k := tr.killPoint(st)
		tr.released(r, c, min(k, st.items), p)
		tr.stopAndWait(c)
		tr.waitFor("the ring to fill", exitBound, full(r), p)
	}
	if c != nil {
		tr.claimed(r, c)
	}
	killed := p.kill()
	head := r.Head()
	tr.logf("producer killed at head %d, tail %d", head, r.Tail())
	if point == "in-slot" && head != n {
		tr.failf("the producer died writing item %d, but head is %d: a half-written item was published", n, head)
	}
	switch point {
	case "full-ring-stopped-consumer":
		ref = c.signal(syscall.SIGCONT)
	case "full-ring-no-consumer":
		cargs = append(cargs, "-wait", "300ms")
		c = tr.start("consumer", copt, cargs...)
	}

	if point == "before-cleanup" {
		// The stream was complete and delivered: the consumer removes the
		// ring the producer left and exits 0.
		c.wait(exitBound)
		tr.expectCode(c, []int{0})
		tr.detected("consumer", c.exitAt.Sub(killed))
		got := tr.delivered("consumer", m, st)
		tr.requireAll("the stream", got, 0, st.items)
		if sink != nil {
			sink.check(tr, true, int(st.items))
		}
		tr.checkLeftovers()
		return
	}
	if !resume {
		c.wait(exitBound)
		line := tr.expectCode(c, []int{3}, "producer of "+tr.name)
		if ref.IsZero() {
			ref = killed
		}
		switch {
		case timeout > 0:
			tr.expired("consumer", c.exitAt.Sub(ref), timeout)
		case point != "full-ring-no-consumer":
			tr.detected("consumer", c.exitAt.Sub(ref))
		}
		got := tr.delivered("consumer", m, st)
		tr.requireAll("the published items", got, 0, head)
		tr.requireBelow("consumer", got, head)
		if d, ok := deliveredCount(line); !ok {
			tr.failf("the consumer's error %q does not say how many items were delivered", line)
		} else if d != head {
			tr.failf("the consumer says %d items delivered; %d were published and delivered", d, head)
		}
		if sink != nil {
			sink.check(tr, true, int(head))
		}
		tr.checkLeftovers()
		return
	}

	p2args := []string{"produce", "-name", tr.name, "-hugepages", tr.pages.flag()}
	if tr.intn(2) == 0 {
		p2args = tr.produce(st) // the same geometry and total, given again
		tr.variant("new producer repeats the flags")
	}
	p2 := tr.start("producer 2", procOpt{}, p2args...)
	if p2.wait(finishBound) != 0 {
		tr.expectCode(p2, []int{0})
	}
	tr.checkStderr(p2)
	if want := fmt.Sprintf("resuming ring %s at item %d", tr.name, head); !strings.Contains(p2.stderr.String(), want) {
		tr.failf("producer 2 did not say %q:\n%s", want, clip(p2.stderr.String(), 1500))
	}
	c.wait(exitBound)
	tr.expectCode(c, []int{0})
	got := tr.delivered("consumer", m, st)
	tr.requireAll("the stream", got, 0, st.items)
	if sink != nil {
		sink.check(tr, true, int(st.items))
	}
	tr.checkLeftovers()
}

// consumerKilled: the consumer is SIGKILLed mid-transfer, inside a handler
// (with the producer blocked on the full ring or not), or asleep on an
// empty ring (its producer stopped meanwhile). Without resume the producer
// (-peer-timeout 0, or a short one that expires) removes the ring and
// exits 3 within the detection bound (or the timeout), and the dead
// consumer's manifest holds every item it released. With resume a new
// consumer gets the rest, and only items the first had acquired but not
// released, at most the slot count, arrive twice.
func consumerKilled(tr *Trial, resume bool) {
	var st stream
	pt := "0s"
	var timeout time.Duration // a positive -peer-timeout that expires
	switch {
	case resume:
		st = tr.drawStream(false)
		pt = "30s"
	default:
		st = tr.drawStream(true)
		if tr.intn(4) == 0 {
			timeout = tr.between(100*time.Millisecond, 400*time.Millisecond)
			pt = timeout.String()
			tr.variant("-peer-timeout %v expires", timeout)
		}
	}
	point := tr.pick("mid-transfer", "in-handler", "in-handler-full-ring", "blocked-empty")
	n := tr.faultItem(st)
	if point == "in-handler-full-ring" {
		// The ring fills behind item n only if the stream has n+slots
		// items: the release frontier stays at n.
		if st.items <= uint64(st.slots) {
			point = "in-handler"
		} else if n+uint64(st.slots) > st.items {
			n = uint64(tr.intn(int(st.items)-st.slots)) + 1
		}
	}
	tr.variant("kill point %s", point)
	var copt procOpt
	if strings.HasPrefix(point, "in-handler") {
		copt.fault = fmt.Sprintf("consume-in-handler:%d", n)
	}
	m1, m2 := tr.file("manifest1"), tr.file("manifest2")
	c, p, r := tr.startPair(order(!resume), copt, tr.consume(st, m1), procOpt{}, tr.produce(st, "-peer-timeout", pt))
	var ref time.Time
	switch point {
	case "mid-transfer":
		k := tr.killPoint(st)
		tr.released(r, c, min(k, st.items), p)
		tr.sleep(tr.between(0, 3*time.Millisecond))
	case "in-handler", "in-handler-full-ring":
		c.waitStderr(fmt.Sprintf("fault consume-in-handler %d", n), exitBound)
		if point == "in-handler-full-ring" {
			tr.waitFor("the ring to fill", exitBound, full(r), p)
			tr.sleep(tr.between(0, 20*time.Millisecond))
		}
	case "blocked-empty":
		k := tr.killPoint(st)
		tr.released(r, c, min(k, st.items), p)
		tr.stopAndWait(p)
		tr.waitFor("the consumer to drain and sleep", exitBound, func() bool {
			return r.Tail() == r.Head() && r.ConsumerWaiting().Load() != 0
		}, c)
	}
	tr.claimed(r, c)
	c.kill()
	tail, head := r.Tail(), r.Head()
	tr.logf("consumer killed at tail %d, head %d", tail, head)
	if point == "blocked-empty" {
		ref = p.signal(syscall.SIGCONT)
	}
	if !resume {
		p.wait(exitBound)
		line := tr.expectCode(p, []int{3}, "consumer of "+tr.name+" is gone")
		if ref.IsZero() {
			ref = c.killAt
		}
		if timeout > 0 {
			tr.expired("producer", p.exitAt.Sub(ref), timeout)
		} else {
			tr.detected("producer", p.exitAt.Sub(ref))
		}
		got := tr.delivered("consumer", m1, st)
		tr.requireAll("the released items", got, 0, tail)
		tr.requireBelow("consumer", got, r.Head())
		if d, ok := deliveredCount(line); !ok {
			tr.failf("the producer's error %q does not say how many items were delivered", line)
		} else if d != tail {
			tr.failf("the producer says %d items delivered; the consumer released %d", d, tail)
		}
		tr.checkLeftovers()
		return
	}
	c2 := tr.start("consumer 2", procOpt{}, tr.consume(st, m2)...)
	c2.wait(finishBound)
	tr.expectCode(c2, []int{0})
	p.wait(exitBound)
	tr.expectCode(p, []int{0})
	got1 := tr.delivered("consumer", m1, st)
	got2 := tr.delivered("consumer 2", m2, st)
	tr.requireAll("the released items (consumer 1)", got1, 0, tail)
	tr.requireAll("the rest (consumer 2)", got2, tail, st.items)
	tr.requireWindow(got1, got2, tail, tail+uint64(st.slots), st.slots)
	tr.checkLeftovers()
}

// bothKilled: producer and consumer are both SIGKILLed (mid-transfer,
// inside a slot write or a handler, or the producer while it creates the
// ring). The objects stay and ls shows both owners dead; then either `gc
// -name` (a dry run first, which removes nothing) removes every object,
// or a new producer resumes the ring and a new consumer completes the
// stream, at least once within the window (or, with -fresh, discards it
// and sends a new stream, delivered exactly once).
func bothKilled(tr *Trial, resume bool) {
	var st stream
	if resume {
		st = tr.drawStream(false)
	} else {
		st = tr.drawStream(true)
	}
	ppoints := []string{"mid-transfer", "in-slot"}
	if !resume {
		ppoints = append(ppoints, "creating")
	}
	ppoint := tr.pick(ppoints...)
	cpoint := tr.pick("mid-transfer", "in-handler")
	first := tr.pick("producer", "consumer")
	n, cn := tr.faultItem(st), tr.faultItem(st)
	if ppoint == "in-slot" && cpoint == "in-handler" {
		// The consumer must reach its fault before the producer stops, and
		// the producer reach its fault while the consumer holds item cn
		// unreleased: cn < n < cn + slots.
		switch {
		case n == 0 || st.slots == 1: // no such cn
			cpoint = "mid-transfer"
		default:
			cn = n - 1 - uint64(tr.intn(int(min(n, uint64(st.slots-1)))))
		}
	}
	tr.variant("producer %s, consumer %s, %s killed first", ppoint, cpoint, first)
	var popt, copt procOpt
	if ppoint == "in-slot" {
		popt.fault = fmt.Sprintf("produce-in-slot:%d", n)
	}
	if cpoint == "in-handler" {
		copt.fault = fmt.Sprintf("consume-in-handler:%d", cn)
	}
	m1, m2 := tr.file("manifest1"), tr.file("manifest2")
	cargs, pargs := tr.consume(st, m1, "-peer-timeout", "30s"), tr.produce(st, "-peer-timeout", "30s")
	var c, p *proc
	var r *ring.Ring
	if ppoint == "creating" {
		c = tr.start("consumer", copt, cargs...)
		p = tr.start("producer", popt, pargs...)
		tr.sleep(tr.between(0, 15*time.Millisecond))
	} else {
		c, p, r = tr.startPair(order(!resume), copt, cargs, popt, pargs)
		switch ppoint {
		case "mid-transfer":
			k := tr.killPoint(st)
			if cpoint == "in-handler" {
				k = min(k, cn) // the consumer stops releasing at item cn
			}
			tr.released(r, c, min(k, st.items), p)
		case "in-slot":
			p.waitStderr(fmt.Sprintf("fault produce-in-slot %d", n), exitBound)
		}
		if cpoint == "in-handler" {
			c.waitStderr(fmt.Sprintf("fault consume-in-handler %d", cn), exitBound)
		}
	}
	kill := func(q *proc) {
		if q.running() {
			q.kill()
		} else {
			tr.failf("%s exited (status %d) before it was killed; stderr:\n%s", q.role, q.code(), clip(q.stderr.String(), 1500))
		}
	}
	if first == "producer" {
		kill(p)
		tr.sleep(tr.between(0, 5*time.Millisecond))
		kill(c)
	} else {
		kill(c)
		tr.sleep(tr.between(0, 5*time.Millisecond))
		kill(p)
	}
	var tail, head uint64
	if r != nil {
		tail, head = r.Tail(), r.Head()
		tr.logf("both killed at tail %d, head %d", tail, head)
		e, ok := tr.ls()
		switch {
		case !ok:
			tr.failf("ls -json does not list ring %s", tr.name)
		case e.ProducerAlive || e.ConsumerAlive:
			tr.failf("ls -json shows owners alive after both died: %+v", e)
		case e.Head != head || e.Tail != tail:
			tr.failf("ls -json shows head %d tail %d, the ring has %d %d", e.Head, e.Tail, head, tail)
		case e.Pages != string(tr.pages):
			tr.failf("ls -json shows pages %q, want %q", e.Pages, tr.pages)
		}
	}
	got1 := tr.delivered("consumer", m1, st)
	tr.requireAll("the released items", got1, 0, tail)
	if r != nil {
		tr.requireBelow("consumer", got1, head)
	}

	if !resume {
		before := tr.leftovers()
		out := tr.gc(true)
		if after := tr.leftovers(); strings.Join(after, ",") != strings.Join(before, ",") {
			tr.failf("gc -dry-run changed the ring's objects: %v before, %v after", before, after)
		}
		if len(before) > 0 && !strings.Contains(out, tr.name+": would remove") {
			tr.failf("gc -dry-run does not say it would remove %s: %q", tr.name, out)
		}
		out = tr.gc(false)
		if len(before) > 0 && !strings.Contains(out, tr.name+": removed") {
			tr.failf("gc does not say it removed %s: %q", tr.name, out)
		}
		tr.checkLeftovers()
		return
	}
	if tr.intn(3) == 0 {
		// -fresh discards the dead ring: a new stream, delivered exactly
		// once to a new consumer.
		st2 := st
		st2.items = 1 + uint64(tr.intn(int(st.items)))
		st2.total, st2.bytes = st2.items*uint64(st.slotSize), false
		tr.variant("new producer -fresh, %d items", st2.items)
		// The producer first: -fresh refuses a ring with a live consumer.
		p2 := tr.start("producer 2", procOpt{}, tr.produce(st2, "-fresh")...)
		p2.waitStderr("discarded the existing ring", exitBound)
		c2 := tr.start("consumer 2", procOpt{}, tr.consume(st2, m2, "-peer-timeout", "30s")...)
		p2.wait(finishBound)
		tr.expectCode(p2, []int{0})
		if want := "discarded the existing ring " + tr.name; !strings.Contains(p2.stderr.String(), want) {
			tr.failf("producer 2 did not say %q:\n%s", want, clip(p2.stderr.String(), 1500))
		}
		c2.wait(exitBound)
		tr.expectCode(c2, []int{0})
		got2 := tr.delivered("consumer 2", m2, st2)
		tr.requireAll("the new stream", got2, 0, st2.items)
		tr.checkLeftovers()
		return
	}
	c2 := tr.start("consumer 2", procOpt{}, tr.consume(st, m2, "-peer-timeout", "30s")...)
	p2 := tr.start("producer 2", procOpt{}, "produce", "-name", tr.name, "-hugepages", tr.pages.flag())
	p2.wait(finishBound)
	if p2.code() == 2 && strings.Contains(p2.stderr.String(), "has none") { // 2: usage
		// The producer was killed after it ended the stream (in End,
		// waiting for the drain): consumer 2 can finish such a stream
		// alone, and then removes the ring, its producer being dead. A
		// producer 2 that looks after that finds no ring to resume and
		// says so (exit 2, nothing created). Consumer 2 must then have
		// ended 0 with every item: the checks below.
		tr.logf("the stream had ended at the kill: consumer 2 finished it alone; producer 2 found no ring")
	} else {
		tr.expectCode(p2, []int{0})
		if want := fmt.Sprintf("resuming ring %s at item %d", tr.name, head); !strings.Contains(p2.stderr.String(), want) {
			tr.failf("producer 2 did not say %q:\n%s", want, clip(p2.stderr.String(), 1500))
		}
	}
	c2.wait(exitBound)
	tr.expectCode(c2, []int{0})
	got2 := tr.delivered("consumer 2", m2, st)
	tr.requireAll("the rest (consumer 2)", got2, tail, st.items)
	tr.requireWindow(got1, got2, tail, tail+uint64(st.slots), st.slots)
	tr.checkLeftovers()
}

// summary decodes the last JSON line of a process's standard output.
func (tr *Trial) summary(p *proc) map[string]any {
	lines := strings.Split(strings.TrimSpace(p.stdout.String()), "\n")
	var v map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
		tr.fatalf("%s's -json summary %q: %v", p.role, lines[len(lines)-1], err)
	}
	return v
}

// summaryItems returns how many items p sent or delivered, by its summary:
// the -json line of the Go command, the stderr line of shmpc-c (which has
// no -json).
func (tr *Trial) summaryItems(p *proc) uint64 {
	if p.lang == langC {
		n, ok := cSummaryItems(p.stderr.String())
		if !ok {
			tr.fatalf("%s (shmpc-c) printed no summary line: %q", p.role, clip(p.stderr.String(), 1500))
		}
		return n
	}
	v := tr.summary(p)
	f, ok := v["items"].(float64)
	if !ok {
		tr.fatalf("%s's -json summary has no items: %v", p.role, v)
	}
	return uint64(f)
}

// sigtermProducer: SIGTERM (or SIGINT) to the producer ends the stream at
// its head; the consumer drains it; both exit 0 and every published item
// arrives exactly once.
func sigtermProducer(tr *Trial) {
	st := tr.drawStream(true)
	sig := syscall.SIGTERM
	if tr.intn(2) == 0 {
		sig = syscall.SIGINT
	}
	tr.variant("%v", sig)
	m := tr.file("manifest")
	var copt procOpt
	cargs := tr.consume(st, m)
	sink := tr.consumerOut(st, 0, &copt, &cargs)
	c, p, r := tr.startPair("", copt, cargs, procOpt{}, tr.produce(st, "-json"))
	k := tr.killPoint(st)
	tr.released(r, c, k, p)
	tr.sleep(tr.between(0, 3*time.Millisecond))
	p.signal(sig)
	items := tr.gracefulEnd(p, c, m, st, sink)
	if items != r.Head() {
		tr.failf("the producer says it sent %d items; head is %d", items, r.Head())
	}
}

// sigtermConsumer: SIGTERM (or SIGINT) to the consumer: it finishes and
// releases its items in flight and exits 0 having delivered exactly the
// released items. The producer then either gives up (-peer-timeout 0:
// exit 3, ring removed) or waits for a new consumer, which gets the rest
// without any repeat.
func sigtermConsumer(tr *Trial) {
	resume := tr.intn(2) == 0
	var st stream
	pt := "0s"
	if resume {
		st = tr.drawStream(false)
		pt = "30s"
	} else {
		st = tr.drawStream(true)
	}
	sig := syscall.SIGTERM
	if tr.intn(2) == 0 {
		sig = syscall.SIGINT
	}
	tr.variant("%v, new consumer %v", sig, resume)
	m1, m2 := tr.file("manifest1"), tr.file("manifest2")
	c, p, r := tr.startPair(order(!resume), procOpt{}, tr.consume(st, m1, "-json"), procOpt{}, tr.produce(st, "-peer-timeout", pt))
	k := tr.killPoint(st)
	tr.released(r, c, min(k, st.items-1), p)
	tr.sleep(tr.between(0, 3*time.Millisecond))
	c.signal(sig)
	c.wait(exitBound)
	tr.expectCode(c, []int{0})
	tail := r.Tail()
	items := tr.summaryItems(c)
	got1 := tr.delivered("consumer", m1, st)
	if items != tail || uint64(len(got1)) != tail {
		tr.failf("the stopped consumer delivered %d items and says %d; tail is %d", len(got1), items, tail)
	}
	tr.requireAll("the released items", got1, 0, tail)
	tr.requireBelow("consumer", got1, tail)
	if resume && tail == st.items {
		// The whole stream went through before the signal landed: nothing
		// is left for a second consumer.
		tr.variant("the stream ended before the signal")
		p.wait(exitBound)
		tr.expectCode(p, []int{0})
		tr.checkLeftovers()
		return
	}
	if !resume {
		p.wait(exitBound)
		tr.expectCode(p, []int{3}, "consumer of "+tr.name+" is gone")
		tr.checkLeftovers()
		return
	}
	c2 := tr.start("consumer 2", procOpt{}, tr.consume(st, m2)...)
	c2.wait(finishBound)
	tr.expectCode(c2, []int{0})
	p.wait(exitBound)
	tr.expectCode(p, []int{0})
	got2 := tr.delivered("consumer 2", m2, st)
	tr.requireAll("the rest", got2, tail, st.items)
	tr.requireWindow(got1, got2, tail, tail, st.slots) // a graceful stop repeats nothing
	tr.checkLeftovers()
}

// sigstopPeer: one side is frozen with SIGSTOP for longer than the
// survivor's -peer-timeout: alive but stalled is not dead, so the survivor
// keeps waiting and ls shows the stopped side alive. After SIGCONT the
// transfer goes on; SIGTERM to the producer then ends the stream and every
// published item arrives exactly once.
func sigstopPeer(tr *Trial) {
	st := tr.drawStream(true)
	side := tr.pick("producer", "consumer")
	hold := tr.between(600*time.Millisecond, time.Second)
	tr.variant("%s stopped for %v, survivor -peer-timeout 200ms", side, hold)
	m := tr.file("manifest")
	cargs := tr.consume(st, m)
	pargs := tr.produce(st, "-json")
	if side == "producer" {
		cargs = append(cargs, "-peer-timeout", "200ms")
	} else {
		pargs = append(pargs, "-peer-timeout", "200ms")
	}
	var copt procOpt
	sink := tr.consumerOut(st, 0, &copt, &cargs)
	c, p, r := tr.startPair("", copt, cargs, procOpt{}, pargs)
	k := tr.killPoint(st)
	tr.released(r, c, k, p)
	victim, survivor := p, c
	if side == "consumer" {
		victim, survivor = c, p
	}
	tr.stopAndWait(victim)
	tr.sleep(hold)
	if !survivor.running() {
		tr.failf("the %s took its stopped peer for dead: exited %d; stderr:\n%s", survivor.role, survivor.code(), clip(survivor.stderr.String(), 1500))
	}
	if e, ok := tr.ls(); !ok {
		tr.failf("ls -json does not list ring %s", tr.name)
	} else if (side == "producer" && !e.ProducerAlive) || (side == "consumer" && !e.ConsumerAlive) {
		tr.failf("ls -json shows the stopped %s dead: %+v", side, e)
	}
	victim.signal(syscall.SIGCONT)
	at := r.Tail()
	tr.waitFor("the transfer to go on", exitBound, func() bool { return r.Tail() > at }, p, c)
	tr.sleep(tr.between(0, 20*time.Millisecond))
	p.signal(syscall.SIGTERM)
	tr.gracefulEnd(p, c, m, st, sink)
}

// gracefulEnd checks the end of a stream that the producer ended on a
// signal: both exit 0, the consumer's manifest m (and -stdout sink, if
// any) holds every item the producer says it sent exactly once, and
// nothing of the ring is left. It returns the producer's item count.
func (tr *Trial) gracefulEnd(p, c *proc, m string, st stream, sink *patternSink) uint64 {
	p.wait(exitBound)
	tr.expectCode(p, []int{0})
	c.wait(exitBound)
	tr.expectCode(c, []int{0})
	items := tr.summaryItems(p)
	got := tr.delivered("consumer", m, st)
	tr.requireAll("the published items", got, 0, items)
	tr.requireBelow("consumer", got, items)
	if sink != nil {
		sink.check(tr, true, int(items))
	}
	tr.checkLeftovers()
	return items
}

// stallTimeout: with -stall-timeout D a side whose live peer made no
// progress for D (it is stopped) treats it as lost: it exits 3 saying so,
// about D after the stop. The stopped peer is then either continued (it
// finds its peer gone and ends, removing the ring) or killed (then gc
// removes the ring); nothing is left either way.
func stallTimeout(tr *Trial) {
	st := tr.drawStream(true)
	judge := tr.pick("consumer", "producer")
	then := tr.pick("continued", "killed")
	stall := tr.between(300*time.Millisecond, 600*time.Millisecond)
	tr.variant("the %s judges with -stall-timeout %v; the stopped peer is then %s", judge, stall, then)
	m := tr.file("manifest")
	cargs := tr.consume(st, m)
	pargs := tr.produce(st)
	sd := stall.String()
	if judge == "consumer" {
		cargs = append(cargs, "-stall-timeout", sd)
	} else {
		pargs = append(pargs, "-stall-timeout", sd)
	}
	c, p, r := tr.startPair("", procOpt{}, cargs, procOpt{}, pargs)
	k := tr.killPoint(st)
	tr.released(r, c, k, p)
	victim, survivor := p, c
	want := "producer of " + tr.name + " published nothing for " + sd
	if judge == "producer" {
		victim, survivor = c, p
		want = "consumer of " + tr.name + " made no progress for " + sd
	}
	stopped := tr.stopAndWait(victim)
	survivor.wait(exitBound)
	tr.expectCode(survivor, []int{3}, want)
	if d := survivor.exitAt.Sub(stopped); d > stall+tr.cfg.detectBound()+100*time.Millisecond {
		tr.failf("the %s gave up %v after the stop, -stall-timeout %v", survivor.role, d, stall)
	} else {
		tr.logf("the %s gave up %v after the stop", survivor.role, d)
	}
	tail, head := r.Tail(), r.Head()
	if then == "killed" {
		victim.kill()
		tr.gc(false)
	} else {
		at := victim.signal(syscall.SIGCONT)
		victim.wait(exitBound)
		tr.expectCode(victim, []int{0, 3})
		tr.logf("the continued %s exited %d after %v", victim.role, victim.code(), victim.exitAt.Sub(at))
	}
	got := tr.delivered("consumer", m, st)
	tr.requireAll("the released items", got, 0, tail)
	tr.requireBelow("consumer", got, max(head, r.Head()))
	tr.checkLeftovers()
}
