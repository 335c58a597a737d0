// Package leakcheck finds what is left of a ring on the machine, for the
// tests' "nothing leaked" checks. It derives nothing from the code it
// checks: the key is computed here from the design's definition (FNV-1a-32
// of "shmpc:" + NAME, top bit cleared, 0 becomes 1), segments are read
// from /proc/sysvipc/shm, and files are every entry of /dev/shm whose name
// contains "shmpc." + NAME, so a file the code names differently (or
// forgets) is found as well as the ones it knows about.
//
// The file pattern is broad: a ring whose NAME has another's as a prefix
// (NAME "a" and "a.b") matches too. Tests use NAMEs unique to them, with a
// random part, where that cannot happen.
package leakcheck

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Key is ring name's SysV key by the design's definition.
func Key(name string) int {
	h := fnv.New32a()
	h.Write([]byte("shmpc:" + name))
	k := int(h.Sum32() & 0x7fffffff)
	if k == 0 {
		k = 1
	}
	return k
}

// Dir is where the ring's files live.
const Dir = "/dev/shm"

// Objects lists what of ring name exists: every file in Dir whose name
// contains "shmpc."+name (its path), and "segment key 0x..." when a
// segment in /proc/sysvipc/shm has the ring's key. An empty list means
// nothing of the ring is left.
func Objects(name string) ([]string, error) {
	ents, err := os.ReadDir(Dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.Contains(e.Name(), "shmpc."+name) {
			out = append(out, filepath.Join(Dir, e.Name()))
		}
	}
	sort.Strings(out)
	ok, err := SegmentWithKey(Key(name))
	if err != nil {
		return out, err
	}
	if ok {
		out = append(out, fmt.Sprintf("segment key %#x", Key(name)))
	}
	return out, nil
}

// SegmentWithKey reports whether /proc/sysvipc/shm lists a segment with
// key (a segment marked for removal has key 0 there and does not count).
func SegmentWithKey(key int) (bool, error) {
	f, err := os.Open("/proc/sysvipc/shm")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	first := true
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if first {
			first = false
			if len(fields) == 0 || fields[0] != "key" {
				return false, fmt.Errorf("/proc/sysvipc/shm: unexpected header %q", sc.Text())
			}
			continue
		}
		if len(fields) == 0 {
			continue
		}
		k, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return false, fmt.Errorf("/proc/sysvipc/shm: key %q: %v", fields[0], err)
		}
		if int(k) == key {
			return true, nil
		}
	}
	return false, sc.Err()
}
