package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/shmpc/shmpc/consumer"
)

// producerProcess starts a producer in another process (this test binary,
// see TestMain): count items of 4 KiB into ring name of 2 slots (so it
// waits for its consumer after two items), crashing after die items when
// die > 0. Its exit is waited for by the returned function,
// bounded.
func producerProcess(name string, count, die int) (wait func() error, err error) {
	spec := fmt.Sprintf("%s 2 4096 %d", name, count)
	if die > 0 {
		spec += fmt.Sprintf(" die=%d", die)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), producerEnv+"="+spec, "GORACE=atexit_sleep_ms=0")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			return errors.New("producer process still running after a minute")
		}
	}, nil
}

// The producer is another process that crashes after 3 items (it is killed
// with SIGKILL, as by the OOM killer). The consumer delivers the 3 items it
// published, then reports the loss: errors.Is matches ErrPeerLost and
// errors.As finds how much was delivered and lost. The ring's objects are
// removed by the survivor.
func Example_producerCrash() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := fmt.Sprintf("example-crash-%d", os.Getpid())
	wait, err := producerProcess(name, 10, 3)
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := consumer.Open(ctx, name, consumer.Options{Wait: 30 * time.Second, Ordered: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	err = c.Run(ctx, func(seq uint64, data []byte) error {
		fmt.Printf("item %d: %d bytes\n", seq, len(data))
		return nil
	})
	_ = wait()
	var lost *consumer.PeerLostError
	if errors.As(err, &lost) {
		fmt.Println("peer lost:", errors.Is(err, consumer.ErrPeerLost))
		fmt.Println("delivered:", lost.Delivered, "lost:", lost.Lost)
	}
	// Output:
	// item 0: 4096 bytes
	// item 1: 4096 bytes
	// item 2: 4096 bytes
	// peer lost: true
	// delivered: 3 lost: 7
}

// Restart and resume: the first producer process crashes after 4 of 10
// items; a consumer with a PeerTimeout keeps the ring for a successor, and
// a second producer process resumes the stream at item 4 (producer.Open
// finds the ring with its producer dead and continues it). Every item is
// delivered once, in order.
func Example_resume() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := fmt.Sprintf("example-resume-%d", os.Getpid())
	first, err := producerProcess(name, 10, 4)
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := consumer.Open(ctx, name, consumer.Options{Wait: 30 * time.Second, PeerTimeout: 30 * time.Second, Ordered: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	restarted := make(chan func() error, 1)
	go func() {
		_ = first() // the crash
		second, err := producerProcess(name, 10, 0)
		if err != nil {
			fmt.Println(err)
			second = func() error { return err }
		}
		restarted <- second
	}()
	var seqs []uint64
	err = c.Run(ctx, func(seq uint64, data []byte) error {
		seqs = append(seqs, seq)
		return nil
	})
	fmt.Println("run:", err)
	fmt.Println("items:", seqs)
	fmt.Println("second producer:", (<-restarted)())
	// Output:
	// run: <nil>
	// items: [0 1 2 3 4 5 6 7 8 9]
	// second producer: <nil>
}

// A consumer that stops on SIGINT or SIGTERM: Run ends gracefully (the
// items in flight are finished and released) and returns the context's
// error, wrapped; a command maps that to a clean exit. Here the process
// sends itself SIGTERM once two items were handled.
func Example_signals() {
	name := fmt.Sprintf("example-signals-%d", os.Getpid())
	wait, err := producerProcess(name, 1000000, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := consumer.Open(ctx, name, consumer.Options{Wait: 30 * time.Second, Ordered: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	err = c.Run(ctx, func(seq uint64, data []byte) error {
		if seq == 1 {
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		}
		return nil
	})
	fmt.Println("stopped by the signal:", errors.Is(err, context.Canceled))
	_ = c.Close()
	// The producer finds its consumer gone: exit status 3 (peer lost).
	var ee *exec.ExitError
	if errors.As(wait(), &ee) {
		fmt.Println("producer exit status:", ee.ExitCode())
	}
	// Output:
	// stopped by the signal: true
	// producer exit status: 3
}
