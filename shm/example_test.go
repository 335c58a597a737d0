package shm_test

import (
	"fmt"
	"log"
	"os"

	"github.com/shmpc/shmpc/shm"
)

func ExampleKeyForName() {
	key, err := shm.KeyForName("demo")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%#x\n", key)
	_, err = shm.KeyForName(".hidden")
	fmt.Println(err)
	// Output:
	// 0x6ead639
	// check name ".hidden": starts with '.': invalid ring name: a ring NAME is 1 to 64 characters of [A-Za-z0-9_.-], not starting with '.'
}

// A producer creates the segment, a consumer attaches it by key; the
// creator removes it when done (the memory goes at the last detach).
func ExampleCreate() {
	key, err := shm.KeyForName(fmt.Sprintf("example-%d", os.Getpid()))
	if err != nil {
		log.Fatal(err)
	}
	seg, err := shm.Create(key, 1<<20, shm.Options{HugePages: shm.Off, Lock: shm.Off, Pretouch: true})
	if err != nil {
		log.Fatal(err)
	}
	defer seg.Detach()
	defer seg.Remove()
	for _, note := range seg.Notes() {
		log.Print(note) // fallbacks taken under Auto, for the user
	}

	peer, err := shm.Attach(key, true, shm.Options{Lock: shm.Off})
	if err != nil {
		log.Fatal(err)
	}
	defer peer.Detach()

	copy(seg.Bytes(), "hello")
	fmt.Println(string(peer.Bytes()[:5]), peer.Size(), peer.Huge())
	// Output: hello 1048576 false
}
