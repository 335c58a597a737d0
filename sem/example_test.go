package sem_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/shmpc/shmpc/sem"
)

// A producer and a consumer, which could be different processes (C or Go),
// share a named semaphore: one posts, the other waits with a deadline.
func Example() {
	name := fmt.Sprintf("/shmpc-example.%d", os.Getpid())
	producer, err := sem.Create(name, 0, 0o600)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sem.Unlink(name) // the name goes; open handles keep working
	defer producer.Close()

	consumer, err := sem.Open(name) // another process would do this
	if err != nil {
		fmt.Println(err)
		return
	}
	defer consumer.Close()

	producer.Post()
	producer.Post()
	v, _ := consumer.Value()
	fmt.Println("value:", v)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	fmt.Println("wait:", consumer.Wait(ctx))
	ok, _ := consumer.TryWait()
	fmt.Println("trywait:", ok)
	ok, _ = consumer.TryWait()
	fmt.Println("trywait on zero:", ok)

	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	fmt.Println("wait on zero:", consumer.Wait(short))
	// Output:
	// value: 2
	// wait: <nil>
	// trywait: true
	// trywait on zero: false
	// wait on zero: context deadline exceeded
}
