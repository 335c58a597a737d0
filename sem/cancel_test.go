package sem_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmpc/shmpc/sem"
)

// wakeBound is the promise: a blocked Wait returns within this of its
// context ending or of Close.
const wakeBound = 50 * time.Millisecond

// waitAsync starts s.Wait(ctx) in a goroutine and returns a channel with its
// result and the time it returned.
func waitAsync(s *sem.Semaphore, ctx context.Context) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		err := s.Wait(ctx)
		ch <- waitResult{err, time.Now()}
	}()
	return ch
}

type waitResult struct {
	err error
	at  time.Time
}

func recvWithin(t tb, ch <-chan waitResult, d time.Duration, what string) waitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(d):
		t.Fatalf("%s: Wait did not return within %v", what, d)
	}
	return waitResult{}
}

// TestWaitCancelWakesPromptly cancels blocked Waits, some as soon as they
// registered (the race between the canceller's wake and the waiter's entry
// into the kernel), some after they slept. Each must return
// context.Canceled, leaving the value and nwaiters as before. The promise
// is 50 ms; since other packages' tests load the machine at the same time,
// at least 90% of the rounds must meet it and every round must end within
// a second (a lost wake-up would never end).
func TestWaitCancelWakesPromptly(t *testing.T) {
	s, _ := mustCreate(t, 0)
	rounds := 40
	var lats []time.Duration
	for i := range rounds {
		ctx, cancel := context.WithCancel(context.Background())
		ch := waitAsync(s, ctx)
		eventually(t, 5*time.Second, "the waiter to register", func() bool { return mustWaiters(t, s) == 1 })
		if i%2 == 1 {
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		}
		at := time.Now()
		cancel()
		r := recvWithin(t, ch, 5*time.Second, "cancel")
		if !errors.Is(r.err, context.Canceled) {
			t.Fatalf("round %d: Wait = %v, want context.Canceled", i, r.err)
		}
		lat := r.at.Sub(at)
		lats = append(lats, lat)
		if lat > time.Second {
			t.Errorf("round %d: Wait returned %v after cancel", i, lat)
		}
		if n := mustWaiters(t, s); n != 0 {
			t.Fatalf("round %d: nwaiters %d after a cancelled Wait", i, n)
		}
		if v := mustValue(t, s); v != 0 {
			t.Fatalf("round %d: value %d", i, v)
		}
	}
	slices.Sort(lats)
	p90 := lats[len(lats)*9/10]
	t.Logf("cancel-to-return latency over %d rounds: median %v, p90 %v, worst %v", rounds, lats[len(lats)/2], p90, lats[len(lats)-1])
	if p90 > wakeBound {
		t.Errorf("p90 cancel-to-return latency %v exceeds %v", p90, wakeBound)
	}
}

// TestWakeLostBeforeSleep forces the race the design must survive: the
// context ends (or Close runs) after the waiter's last check and before it
// enters the kernel, so the first FUTEX_WAKE finds nobody asleep and is
// lost. The canceller (and Close) repeat the wake until the waiter
// acknowledges, so Wait still returns within the bound instead of sleeping
// for ever.
func TestWakeLostBeforeSleep(t *testing.T) {
	const gap = 5 * time.Millisecond // the waiter dawdles this long in the window
	t.Run("Cancel", func(t *testing.T) {
		s, _ := mustCreate(t, 0)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var once sync.Once
		var at time.Time
		s.SetBeforeSleep(func() {
			once.Do(func() {
				at = time.Now()
				cancel()
				time.Sleep(gap)
			})
		})
		r := recvWithin(t, waitAsync(s, ctx), 5*time.Second, "cancel in the window")
		if !errors.Is(r.err, context.Canceled) {
			t.Fatalf("Wait = %v, want Canceled", r.err)
		}
		// The wake-up lost in the window is repeated within a millisecond
		// or so; a lost wake-up without the repeat never ends.
		lat := r.at.Sub(at)
		t.Logf("Wait returned %v after cancel, having dawdled %v in the window", lat, gap)
		if lat > gap+time.Second {
			t.Fatalf("Wait returned %v after cancel (gap %v)", lat, gap)
		}
		if s.Sleeps() == 0 {
			t.Fatal("the waiter never slept: the window was not exercised")
		}
	})
	t.Run("Close", func(t *testing.T) {
		s, _ := mustCreate(t, 0)
		var once sync.Once
		closed := make(chan error, 1)
		s.SetBeforeSleep(func() {
			once.Do(func() {
				go func() { closed <- s.Close() }()
				// Let Close set the closed bit and send its first wake.
				time.Sleep(gap)
			})
		})
		r := recvWithin(t, waitAsync(s, context.Background()), 5*time.Second, "close in the window")
		if !errors.Is(r.err, sem.ErrClosed) {
			t.Fatalf("Wait = %v, want ErrClosed", r.err)
		}
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not return")
		}
	})
}

// TestWaitDeadline shows a deadline ends a blocked Wait on time: never
// before the deadline, and within 50 ms after it (the kernel ends the sleep
// at the deadline). A late return is retried twice, since other packages'
// tests load the machine at the same time; an early one fails at once.
func TestWaitDeadline(t *testing.T) {
	s, _ := mustCreate(t, 0)
	for _, d := range []time.Duration{time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond} {
		var late []time.Duration
		for range 3 {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), d)
			err := s.Wait(ctx)
			el := time.Since(start)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("deadline %v: Wait = %v, want DeadlineExceeded", d, err)
			}
			if el < d {
				t.Fatalf("deadline %v: Wait returned early, after %v", d, el)
			}
			if n := mustWaiters(t, s); n != 0 {
				t.Fatalf("nwaiters %d after a timed-out Wait", n)
			}
			if el <= d+wakeBound {
				late = nil
				break
			}
			late = append(late, el)
		}
		if late != nil {
			t.Errorf("deadline %v: Wait returned after %v in every attempt (bound %v after the deadline)", d, late, wakeBound)
		}
	}
}

// TestWaitIdleDoesNotPoll blocks Waits for one second with contexts that
// can end but do not (WithCancel, a far deadline) and with Background, and
// counts how often each entered the kernel to sleep: a polling loop would
// show tens or hundreds; the bound is 3 (a few spurious wake-ups).
func TestWaitIdleDoesNotPoll(t *testing.T) {
	cases := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"WithCancel", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }},
		{"FarDeadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Hour)
		}},
		{"Background", func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }},
	}
	type running struct {
		s      *sem.Semaphore
		ch     <-chan waitResult
		cancel context.CancelFunc
	}
	var rs []running
	for _, c := range cases {
		s, _ := mustCreate(t, 0)
		ctx, cancel := c.ctx()
		t.Cleanup(cancel)
		rs = append(rs, running{s, waitAsync(s, ctx), cancel})
	}
	for _, r := range rs {
		eventually(t, 5*time.Second, "the waiter to sleep", func() bool { return r.s.Sleeps() >= 1 })
	}
	before := make([]uint64, len(rs))
	for i, r := range rs {
		before[i] = r.s.Sleeps()
	}
	time.Sleep(time.Second)
	for i, r := range rs {
		n := r.s.Sleeps() - before[i]
		t.Logf("%s: %d wake-ups in 1 s of idle waiting", cases[i].name, n)
		if n > 3 {
			t.Errorf("%s: Wait woke %d times in 1 s while idle; it must not poll", cases[i].name, n)
		}
	}
	// End them: Post for the first two, Close for the Background one.
	for i, r := range rs {
		if i < 2 {
			if err := r.s.Post(); err != nil {
				t.Fatal(err)
			}
			if res := recvWithin(t, r.ch, 5*time.Second, "post"); res.err != nil {
				t.Fatalf("%s: Wait after Post = %v", cases[i].name, res.err)
			}
			continue
		}
		if err := r.s.Close(); err != nil {
			t.Fatal(err)
		}
		if res := recvWithin(t, r.ch, 5*time.Second, "close"); !errors.Is(res.err, sem.ErrClosed) {
			t.Fatalf("%s: Wait after Close = %v, want ErrClosed", cases[i].name, res.err)
		}
	}
}

// TestCloseUnblocksWaits blocks several Waits (with and without a context
// that can end) on one handle and a Wait on a second handle, closes the
// first: its Waits return ErrClosed within 50 ms, having removed their
// registrations; the second handle's Wait is unaffected and still gets the
// next post.
func TestCloseUnblocksWaits(t *testing.T) {
	s, name := mustCreate(t, 0)
	other, err := sem.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var chs []<-chan waitResult
	for i := range 4 {
		c := context.Background()
		if i%2 == 1 {
			c = ctx
		}
		chs = append(chs, waitAsync(s, c))
	}
	otherCh := waitAsync(other, context.Background())
	eventually(t, 5*time.Second, "5 waiters", func() bool { return mustWaiters(t, other) == 5 })
	time.Sleep(5 * time.Millisecond) // let them reach the kernel
	at := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, ch := range chs {
		r := recvWithin(t, ch, 5*time.Second, "close")
		if !errors.Is(r.err, sem.ErrClosed) {
			t.Fatalf("waiter %d: %v, want ErrClosed", i, r.err)
		}
		lat := r.at.Sub(at)
		t.Logf("waiter %d returned %v after Close began", i, lat)
		if lat > time.Second {
			t.Errorf("waiter %d returned %v after Close", i, lat)
		}
	}
	if n := mustWaiters(t, other); n != 1 {
		t.Fatalf("nwaiters %d after Close, want 1 (the other handle's waiter)", n)
	}
	select {
	case r := <-otherCh:
		t.Fatalf("the other handle's Wait returned %v on Close", r.err)
	default:
	}
	if err := other.Post(); err != nil {
		t.Fatal(err)
	}
	if r := recvWithin(t, otherCh, 5*time.Second, "post"); r.err != nil {
		t.Fatalf("other handle's Wait: %v", r.err)
	}
	if n, v := mustWaiters(t, other), mustValue(t, other); n != 0 || v != 0 {
		t.Fatalf("after all: nwaiters %d value %d, want 0 0", n, v)
	}
}

// TestCloseRacesUse hammers one handle with Post, TryWait, Wait and Value
// from many goroutines while it is closed at a random moment. Every call
// must either succeed or fail with ErrClosed (never fault), and the tokens
// must balance afterwards as seen through a second handle: successful posts
// minus successful takes equals the value, and nwaiters is back to zero.
func TestCloseRacesUse(t *testing.T) {
	rounds := 30
	if raceEnabled {
		rounds = 10
	}
	for range rounds {
		s, name := mustCreate(t, 0)
		other, err := sem.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		var posted, taken atomic.Int64
		var wg sync.WaitGroup
		var bad atomic.Value
		check := func(err error) bool {
			if err != nil && !errors.Is(err, sem.ErrClosed) && !errors.Is(err, context.DeadlineExceeded) {
				bad.Store(err)
			}
			return err == nil
		}
		for g := range 6 {
			wg.Go(func() {
				for {
					switch g % 3 {
					case 0:
						err := s.Post()
						if check(err) {
							posted.Add(1)
						}
						if err != nil {
							return
						}
					case 1:
						ok, err := s.TryWait()
						if check(err) && ok {
							taken.Add(1)
						}
						if _, err2 := s.Value(); err != nil || err2 != nil {
							check(err2)
							return
						}
					case 2:
						ctx := context.Background()
						var cancel context.CancelFunc = func() {}
						if g == 5 {
							ctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(3))*time.Millisecond)
						}
						err := s.Wait(ctx)
						cancel()
						if check(err) {
							taken.Add(1)
						}
						if errors.Is(err, sem.ErrClosed) {
							return
						}
					}
				}
			})
		}
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("goroutines still running 10 s after Close")
		}
		if err, _ := bad.Load().(error); err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		if v, want := mustValue(t, other), posted.Load()-taken.Load(); int64(v) != want {
			t.Fatalf("value %d, want posts %d - takes %d = %d", v, posted.Load(), taken.Load(), want)
		}
		if n := mustWaiters(t, other); n != 0 {
			t.Fatalf("nwaiters %d after Close", n)
		}
		other.Close()
	}
}

// TestFastPathAllocs shows Post, TryWait and a Wait that finds a token
// allocate nothing, with a context that can end as well as Background.
func TestFastPathAllocs(t *testing.T) {
	s, _ := mustCreate(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx.Done() // a cancelCtx makes its channel on first use: not Wait's cost
	allocs := testing.AllocsPerRun(1000, func() {
		s.Post()
		s.TryWait()
		s.Post()
		s.Wait(context.Background())
		s.Post()
		s.Wait(ctx)
	})
	if allocs != 0 {
		t.Fatalf("fast paths allocate %v times per run, want 0", allocs)
	}
}

// TestWaitTimeout: WaitTimeout sleeps until a Post from another goroutine
// (also one racing the waiter's entry into the kernel), until Close
// (ErrClosed), or until its timeout; it never polls while it sleeps, leaves
// nwaiters as before on every way out, and allocates nothing, asleep or
// not.
func TestWaitTimeout(t *testing.T) {
	s, _ := mustCreate(t, 0)
	// Posts, some at once (racing the sleep), some after the waiter slept.
	for i := range 40 {
		res := make(chan bool, 1)
		go func() {
			ok, err := s.WaitTimeout(10 * time.Second)
			if err != nil {
				t.Error(err)
			}
			res <- ok
		}()
		if i%2 == 1 {
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		}
		if err := s.Post(); err != nil {
			t.Fatal(err)
		}
		select {
		case ok := <-res:
			if !ok {
				t.Fatalf("round %d: WaitTimeout reported a timeout after a post", i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: a post did not wake WaitTimeout within 5s", i)
		}
	}
	// A timeout on an idle semaphore: one sleep, no polling.
	before := s.Sleeps()
	start := time.Now()
	ok, err := s.WaitTimeout(200 * time.Millisecond)
	if err != nil || ok {
		t.Fatalf("WaitTimeout on zero = %v, %v; want false, nil", ok, err)
	}
	if el := time.Since(start); el < 200*time.Millisecond || el > 2*time.Second {
		t.Fatalf("WaitTimeout(200ms) returned after %v", el)
	}
	if n := s.Sleeps() - before; n > 2 {
		t.Fatalf("WaitTimeout(200ms) slept %d times: it polls", n)
	}
	if n, err := s.Waiters(); err != nil || n != 0 {
		t.Fatalf("Waiters after the waits = %d, %v; want 0", n, err)
	}
	// Allocations: a token found, and a sleep that times out.
	allocs := testing.AllocsPerRun(20, func() {
		s.Post()
		s.WaitTimeout(time.Second)
		s.WaitTimeout(100 * time.Microsecond)
	})
	if allocs != 0 {
		t.Fatalf("WaitTimeout allocates %v times per run, want 0", allocs)
	}
	// Close wakes a sleeper, which returns ErrClosed.
	h, _ := mustCreate(t, 0)
	res := make(chan error, 1)
	go func() {
		_, err := h.WaitTimeout(time.Minute)
		res <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for h.Sleeps() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		if !errors.Is(err, sem.ErrClosed) {
			t.Fatalf("WaitTimeout woken by Close: %v, want ErrClosed", err)
		}
	case <-time.After(wakeBound * 20):
		t.Fatal("Close did not wake WaitTimeout")
	}
}
