package cinterop

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/shmpc/shmpc/internal/payload"
	"github.com/shmpc/shmpc/internal/testutil"
)

// slotSize is the slot size of every ring here: small, so that a few items
// fill the ring and both sides wait on each other.
const slotSize = 64 << 10

// bound is the most any one process of a test may take.
const bound = 60 * time.Second

// pair is a producer and a consumer command, by language.
type pair struct {
	name               string
	producer, consumer string
}

func pairs(t *testing.T) []pair {
	c, g := binaries(t)
	return []pair{
		{"c-to-go", c, g},
		{"go-to-c", g, c},
		{"c-to-c", c, c},
	}
}

// TestPipe sends bytes through -stdin and -stdout in every pairing: the
// SHA-256 of what the consumer writes is that of what the producer read.
// Lengths: empty, one byte, an odd length, and a multiple of the slot size;
// the consumer starts first for some, the producer for others.
func TestPipe(t *testing.T) {
	lengths := []int{0, 1, 12345, 3 * slotSize, slotSize + 1}
	for _, pr := range pairs(t) {
		for i, n := range lengths {
			t.Run(fmt.Sprintf("%s/%d", pr.name, n), func(t *testing.T) {
				name := testutil.RingName(t, "ci")
				in := make([]byte, n)
				rng := rand.New(rand.NewPCG(uint64(n), 7))
				for j := range in {
					in[j] = byte(rng.Uint32())
				}
				var out bytes.Buffer
				consume := func() *proc {
					return start(t, pr.consumer, nil, &out, "consume", "-name", name, "-stdout", "-wait", "30s")
				}
				produce := func() *proc {
					return start(t, pr.producer, bytes.NewReader(in), nil, "produce", "-name", name, "-stdin",
						"-slot-size", "64KiB", "-slots", "4", "-wait", "30s")
				}
				var c, p *proc
				if i%2 == 0 {
					c = consume()
					p = produce()
				} else {
					p = produce()
					c = consume()
				}
				p.requireExit(t, bound, 0)
				c.requireExit(t, bound, 0)
				if got, want := sha256.Sum256(out.Bytes()), sha256.Sum256(in); got != want {
					t.Fatalf("consumer wrote %d bytes with SHA-256 %x, producer read %d bytes with %x", out.Len(), got, n, want)
				}
			})
		}
	}
}

// manifestLine is one line of -manifest.
type manifestLine struct {
	Seq    uint64 `json:"seq"`
	Len    int    `json:"len"`
	CRC32C uint32 `json:"crc32c"`
}

// readManifest parses a manifest, checking the exact form of every line.
func readManifest(t *testing.T, path string) []manifestLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open manifest: %v", err)
	}
	defer f.Close()
	var lines []manifestLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l manifestLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("manifest line %q: %v", sc.Text(), err)
		}
		if want := fmt.Sprintf(`{"seq":%d,"len":%d,"crc32c":%d}`, l.Seq, l.Len, l.CRC32C); sc.Text() != want {
			t.Fatalf("manifest line %q is not in the form %q", sc.Text(), want)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read manifest: %v", err)
	}
	return lines
}

// checkStream checks that lines hold items 0..len(lengths)-1, each exactly
// once (in any order), with its length and the CRC32C of the payload.
func checkStream(t *testing.T, lines []manifestLine, lengths []int) {
	t.Helper()
	seen := make(map[uint64]int)
	buf := make([]byte, slotSize)
	for _, l := range lines {
		seen[l.Seq]++
		if l.Seq >= uint64(len(lengths)) {
			t.Errorf("manifest has item %d of a %d-item stream", l.Seq, len(lengths))
			continue
		}
		if l.Len != lengths[l.Seq] {
			t.Errorf("item %d: length %d, want %d", l.Seq, l.Len, lengths[l.Seq])
			continue
		}
		if want := payload.Fill(buf[:l.Len], l.Seq); l.CRC32C != want {
			t.Errorf("item %d: crc32c %#x, the payload's is %#x", l.Seq, l.CRC32C, want)
		}
	}
	for seq := range lengths {
		if seen[uint64(seq)] != 1 {
			t.Errorf("item %d delivered %d times, want exactly once", seq, seen[uint64(seq)])
		}
	}
}

// TestCountAndBytes runs -count and -bytes streams in every pairing and
// checks the consumer's manifest against the Go payload: every item once,
// with its length and CRC32C. Two slots make both sides wait.
func TestCountAndBytes(t *testing.T) {
	for _, pr := range pairs(t) {
		for _, tc := range []struct {
			flag, value string
			lengths     []int
		}{
			{"-count", "7", []int{slotSize, slotSize, slotSize, slotSize, slotSize, slotSize, slotSize}},
			{"-count", "0", nil},
			{"-bytes", "200000", []int{slotSize, slotSize, slotSize, 200000 - 3*slotSize}},
		} {
			t.Run(pr.name+"/"+tc.flag[1:]+"-"+tc.value, func(t *testing.T) {
				name := testutil.RingName(t, "ci")
				manifest := filepath.Join(t.TempDir(), "manifest")
				c := start(t, pr.consumer, nil, nil, "consume", "-name", name, "-manifest", manifest, "-wait", "30s")
				p := start(t, pr.producer, nil, nil, "produce", "-name", name, tc.flag, tc.value,
					"-slot-size", "64KiB", "-slots", "2", "-wait", "30s")
				p.requireExit(t, bound, 0)
				c.requireExit(t, bound, 0)
				lines := readManifest(t, manifest)
				checkStream(t, lines, tc.lengths)
				if filepath.Base(pr.consumer) != "shmpc-c" {
					return // the Go consumer's workers finish items in any order
				}
				for i, l := range lines {
					if l.Seq != uint64(i) {
						t.Fatalf("manifest line %d is item %d: shmpc-c delivers in sequence order", i, l.Seq)
					}
				}
			})
		}
	}
}

// TestErrors checks that shmpc-c refuses what the Go command refuses, with
// the same exit statuses: usage errors (2), a ring that never comes (1), a
// busy role (1), a consumer whose producer never comes back (3).
func TestErrors(t *testing.T) {
	c, g := binaries(t)
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"no-name", []string{"produce", "-count", "1"}, 2},
		{"bad-name", []string{"produce", "-name", ".x", "-count", "1"}, 2},
		{"exclusive", []string{"produce", "-name", "x", "-count", "1", "-stdin"}, 2},
		{"slot-size", []string{"produce", "-name", "x", "-count", "1", "-slot-size", "1000"}, 2},
		{"unknown-flag", []string{"consume", "-name", "x", "-nope"}, 2},
		{"positional", []string{"consume", "-name", "x", "extra"}, 2},
		{"bad-duration", []string{"consume", "-name", "x", "-wait", "10"}, 2},
		{"no-command", []string{}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, bin := range []string{c, g} {
				if len(tc.args) == 0 {
					continue // both print the usage; only shmpc-c is checked below
				}
				p := start(t, bin, nil, nil, tc.args...)
				if got := p.wait(t, bound); got != tc.want {
					t.Errorf("%s %v: exit %d, want %d; stderr: %s", filepath.Base(bin), tc.args, got, tc.want, p.stderr)
				}
				if lines := bytes.Count([]byte(p.stderr.String()), []byte("\n")); lines != 1 {
					t.Errorf("%s %v: %d lines on stderr, want one: %q", filepath.Base(bin), tc.args, lines, p.stderr)
				}
			}
		})
	}
	t.Run("no-ring", func(t *testing.T) {
		name := testutil.RingName(t, "ci")
		p := start(t, c, nil, nil, "consume", "-name", name, "-wait", "200ms")
		p.requireExit(t, bound, 1)
		if s := p.stderr.String(); !bytes.Contains([]byte(s), []byte("no producer created ring "+name+" within 200ms")) {
			t.Errorf("stderr %q does not say the ring did not come", s)
		}
	})
	t.Run("busy-and-lost", func(t *testing.T) {
		// A Go producer with nothing to drain it fills the ring; a second
		// producer (C) is refused, naming it; the Go producer is killed; a C
		// consumer delivers the two items, gives up on the third and removes
		// the ring.
		name := testutil.RingName(t, "ci")
		gp := start(t, g, nil, nil, "produce", "-name", name, "-count", "3", "-slot-size", "64KiB", "-slots", "2", "-wait", "30s")
		waitFor(t, func() bool { return ringHead(name) >= 2 }, "the Go producer to fill the ring")
		p := start(t, c, nil, nil, "produce", "-name", name, "-count", "3", "-slot-size", "64KiB", "-slots", "2")
		p.requireExit(t, bound, 1)
		if s := p.stderr.String(); !bytes.Contains([]byte(s), []byte("already has a live producer (pid "+strconv.Itoa(gp.cmd.Process.Pid)+")")) {
			t.Errorf("second producer's stderr %q does not name the live one", s)
		}
		_ = gp.cmd.Process.Kill()
		gp.wait(t, bound)
		// Attached after the death, the consumer never saw the producer: it
		// delivers what is there and waits -wait for a new one.
		cc := start(t, c, nil, nil, "consume", "-name", name, "-wait", "300ms")
		cc.requireExit(t, bound, 3)
		if s := cc.stderr.String(); !bytes.Contains([]byte(s), []byte("producer of "+name+" is gone and no new producer came within 300ms: 2 items delivered, 1 lost: peer lost")) {
			t.Errorf("consumer's stderr %q does not count the items", s)
		}
	})
}
