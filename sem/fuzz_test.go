package sem_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/shmpc/shmpc/sem"
)

// FuzzOpen puts arbitrary bytes under a semaphore name. Open must either
// refuse them with an error matching ErrInvalid (never fault, whatever the
// size) or accept exactly the files whose first 32 bytes are a
// process-shared semaphore with a value up to SEM_VALUE_MAX, reporting that
// value and nwaiters; operations on an accepted file then behave.
func FuzzOpen(f *testing.F) {
	for _, v := range []uint32{0, 1, sem.ValueMax} {
		img := sem.Image(v)
		f.Add(img[:])
	}
	img := sem.Image(3)
	f.Add(img[:31])
	f.Add([]byte{})
	img[8] = 0
	f.Add(img[:])
	img = sem.Image(3)
	img[5] = 1 // a waiter left by a dead process
	f.Add(append(img[:], 0xff))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, path := writeSemFile(t, b)
		s, err := sem.Open(name)
		valid := len(b) >= 32 &&
			binary.LittleEndian.Uint32(b[8:]) == 0x80 &&
			binary.LittleEndian.Uint32(b[0:]) <= sem.ValueMax
		if !valid {
			if !errors.Is(err, sem.ErrInvalid) {
				t.Fatalf("Open of % x: %v, want ErrInvalid", b, err)
			}
			if got, _ := os.ReadFile(path); string(got) != string(b) {
				t.Fatalf("a refused file was changed")
			}
			return
		}
		if err != nil {
			t.Fatalf("Open of a valid image % x: %v", b, err)
		}
		defer s.Close()
		value := binary.LittleEndian.Uint32(b[0:])
		waiters := binary.LittleEndian.Uint32(b[4:])
		if v := mustValue(t, s); v != value {
			t.Fatalf("Value %d, file says %d", v, value)
		}
		if n := mustWaiters(t, s); n != waiters {
			t.Fatalf("Waiters %d, file says %d", n, waiters)
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
		// Operations behave: a post (or overflow), then a take.
		err = s.Post()
		if value == sem.ValueMax {
			if !errors.Is(err, sem.ErrOverflow) {
				t.Fatalf("Post at SEM_VALUE_MAX: %v", err)
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if err := s.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := value
		if value == sem.ValueMax {
			want--
		}
		if v := mustValue(t, s); v != want {
			t.Fatalf("value %d after post and wait, want %d", v, want)
		}
	})
}
