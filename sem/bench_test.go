package sem_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/shmpc/shmpc/sem"
)

// serveHelper is the Go side of the Go-Go ping-pong: "serve A B N" waits on
// A and posts B, N times, then prints "ok".
func serveHelper(args []string) int {
	a, err := sem.Open(args[0])
	if err != nil {
		fmt.Printf("err %v\n", err)
		return 1
	}
	defer a.Close()
	b, err := sem.Open(args[1])
	if err != nil {
		fmt.Printf("err %v\n", err)
		return 1
	}
	defer b.Close()
	n, _ := strconv.Atoi(args[2])
	ctx := context.Background()
	for range n {
		if err := a.Wait(ctx); err != nil {
			fmt.Printf("err %v\n", err)
			return 1
		}
		if err := b.Post(); err != nil {
			fmt.Printf("err %v\n", err)
			return 1
		}
	}
	fmt.Println("ok")
	return 0
}

// BenchmarkPostTryWait is the uncontended fast path: one Post and one
// TryWait per op, no waiter, so no system call and no allocation.
func BenchmarkPostTryWait(b *testing.B) {
	s, _ := mustCreate(b, 0)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Post(); err != nil {
			b.Fatal(err)
		}
		if ok, err := s.TryWait(); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkWaitFast is a Post and a Wait that finds the token.
func BenchmarkWaitFast(b *testing.B) {
	s, _ := mustCreate(b, 0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s.Post()
		if err := s.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// pingPongWarmup round trips run before timing starts.
const pingPongWarmup = 1000

// pingPongNames creates the two semaphores of a ping-pong.
func pingPongNames(b *testing.B) (ping, pong *sem.Semaphore, pingName, pongName string) {
	ping, pingName = mustCreate(b, 0)
	pong, pongName = mustCreate(b, 0)
	return ping, pong, pingName, pongName
}

// goPingPong measures n round trips between this process (post ping, wait
// pong) and a Go helper process (wait ping, post pong), after a warm-up,
// and returns nanoseconds per round trip.
func goPingPong(b *testing.B, n int) float64 {
	b.StopTimer() // the benchmark's clock runs only while round trips do
	defer b.StopTimer()
	ping, pong, pingName, pongName := pingPongNames(b)
	p := startHelper(b, "serve", pingName, pongName, strconv.Itoa(pingPongWarmup+n))
	// Should the helper die, closing pong ends the Wait below (with
	// ErrClosed) instead of leaving it blocked for ever; a context with a
	// deadline would bound it too, but would change the path measured.
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-p.done:
			select {
			case <-finished:
			case <-time.After(time.Second):
				pong.Close()
			}
		case <-finished:
		}
	}()
	ctx := context.Background()
	var start time.Time
	for i := range pingPongWarmup + n {
		if i == pingPongWarmup {
			b.StartTimer()
			start = time.Now()
		}
		if err := ping.Post(); err != nil {
			b.Fatal(err)
		}
		if err := pong.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	p.expectLine(b, 10*time.Second, "ok")
	if err := p.wait(b, 10*time.Second); err != nil {
		b.Fatal(err)
	}
	return float64(el.Nanoseconds()) / float64(n)
}

// cPingPong runs the same ping-pong between two C processes using glibc
// (testdata/pingpong.c) and returns the nanoseconds per round trip that the
// driving process measured.
func cPingPong(b *testing.B, bin string, n int) float64 {
	b.StopTimer()
	defer b.StopTimer()
	_, _, pingName, pongName := pingPongNames(b)
	server := startProc(b, exec.Command(bin, "serve", pingName, pongName, strconv.Itoa(pingPongWarmup+n)))
	b.StartTimer() // includes the driver's start-up: only the framework's estimate sees it
	bound := 10*time.Second + time.Duration(pingPongWarmup+n)*100*time.Microsecond
	f := runCWithin(b, bound, bin, "drive", pingName, pongName, strconv.Itoa(pingPongWarmup), strconv.Itoa(n))
	b.StopTimer()
	server.expectLine(b, 10*time.Second, "ok")
	if err := server.wait(b, 10*time.Second); err != nil {
		b.Fatal(err)
	}
	ns, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		b.Fatalf("pingpong drive: %v", f)
	}
	return ns
}

// BenchmarkPingPong is a cross-process round trip over two semaphores:
// Go-Go is this process and a Go helper process; C-C is two C processes
// using glibc. Both report the time per round trip measured by the driving
// loop after a warm-up, as ns/op (replacing the framework's figure, which
// would include process start-up) and as ns/roundtrip.
func BenchmarkPingPong(b *testing.B) {
	b.Run("Go-Go", func(b *testing.B) {
		ns := goPingPong(b, b.N)
		b.ReportMetric(ns, "ns/op")
		b.ReportMetric(ns, "ns/roundtrip")
	})
	b.Run("C-C", func(b *testing.B) {
		bin := buildC(b, b.TempDir(), "pingpong")
		ns := cPingPong(b, bin, b.N)
		b.ReportMetric(ns, "ns/op")
		b.ReportMetric(ns, "ns/roundtrip")
	})
}

// pingPongRounds is how many Go-Go and C-C rounds BenchmarkPingPongRatio
// alternates.
const pingPongRounds = 7

// BenchmarkPingPongRatio measures Go-Go and C-C round trips in alternating
// rounds within one run, so the machine's noise hits both alike, and
// reports the median of each and the ratio of the medians, go/c (target:
// at most 1.2). b.N round trips are split over the rounds (at least 5000
// per round); ns/op is the Go-Go median.
func BenchmarkPingPongRatio(b *testing.B) {
	bin := buildC(b, b.TempDir(), "pingpong")
	n := max(b.N/(2*pingPongRounds), 5000)
	var goNs, cNs []float64
	for range pingPongRounds {
		goNs = append(goNs, goPingPong(b, n))
		cNs = append(cNs, cPingPong(b, bin, n))
	}
	gm, cm := median(goNs), median(cNs)
	b.Logf("%d round trips per round; Go-Go ns/roundtrip: %.0f", n, goNs)
	b.Logf("%d round trips per round; C-C   ns/roundtrip: %.0f", n, cNs)
	b.ReportMetric(gm, "ns/op")
	b.ReportMetric(gm, "go-ns/roundtrip")
	b.ReportMetric(cm, "c-ns/roundtrip")
	b.ReportMetric(gm/cm, "go/c")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
