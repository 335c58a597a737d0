package ring

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/layout.golden and the fuzz seed corpora")

const goldenPath = "testdata/layout.golden"

// layoutText renders every offset and size the shared format depends on.
func layoutText(tb testing.TB) string {
	tb.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "# shmpc ring layout. Regenerate: go test ./ring -run TestLayoutGolden -update\n")
	fmt.Fprintf(&b, "magic %q version %d\n", Magic, Version)
	fmt.Fprintf(&b, "header size %d\n", headerSize)
	for _, f := range headerFields() {
		fmt.Fprintf(&b, "header.%s\n", f)
	}
	fmt.Fprintf(&b, "descriptor size %d\n", descriptorSize)
	for _, f := range descriptorFields() {
		fmt.Fprintf(&b, "descriptor.%s\n", f)
	}
	for _, c := range [][2]int{{1, 1}, {1, 4096}, {8, 64}, {8, 4096}, {8, 4097}, {8, 2 << 20}, {8, 8 << 20}, {3, 6 << 20}, {100, 65536}} {
		g, err := computeGeometry("test", uint64(c[0]), uint64(c[1]))
		if err != nil {
			tb.Fatalf("geometry %v: %v", c, err)
		}
		fmt.Fprintf(&b, "geometry slots %d slotSize %d: stride %d align %d descOffset %d dataOffset %d total %d\n",
			c[0], c[1], g.stride, g.align, g.descOff, g.dataOff, g.total)
	}
	return b.String()
}

// TestLayoutGolden pins every offset and size of the shared format: a drift fails here
// (bump Version, then regenerate with -update).
func TestLayoutGolden(t *testing.T) {
	got := layoutText(t)
	if *update {
		noErr(t, os.WriteFile(goldenPath, []byte(got), 0o644), "write golden")
	}
	want, err := os.ReadFile(goldenPath)
	noErr(t, err, "read golden (create it with -update)")
	if got != string(want) {
		t.Fatalf("layout drifted from %s (bump Version and run with -update if intended):\n--- got\n%s--- want\n%s", goldenPath, got, want)
	}
}

// namedFields lists the named fields of a struct type, recursing into nested structs,
// with absolute offsets: the layout as reflection sees it.
func namedFields(t reflect.Type, prefix string, base uintptr, out map[string][2]uintptr) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name == "_" {
			continue
		}
		name := prefix + f.Name
		if f.Type.Kind() == reflect.Struct && !strings.HasPrefix(f.Type.PkgPath(), "sync/") {
			namedFields(f.Type, name+".", base+f.Offset, out)
			continue
		}
		out[name] = [2]uintptr{base + f.Offset, f.Type.Size()}
	}
}

// TestLayoutTableComplete: the unsafe.Offsetof tables name every field the structs have,
// so the golden file cannot miss one.
func TestLayoutTableComplete(t *testing.T) {
	for _, c := range []struct {
		typ    reflect.Type
		fields []field
	}{
		{reflect.TypeOf(header{}), headerFields()},
		{reflect.TypeOf(descriptor{}), descriptorFields()},
	} {
		want := map[string][2]uintptr{}
		namedFields(c.typ, "", 0, want)
		got := map[string][2]uintptr{}
		for _, f := range c.fields {
			got[f.name] = [2]uintptr{f.offset, f.size}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: table %v, struct %v", c.typ, got, want)
		}
		if uintptr(len(c.fields)) > c.typ.Size() {
			t.Errorf("%s: more fields than bytes", c.typ)
		}
	}
}

// writers says who writes each header field after Format: nobody ("format"), the
// producer, the consumer, or both (the doorbells, which the sleeper sets and the waker
// clears, and the application words, which the CLI gives one to each side).
var writers = map[string]string{
	"magic": "format", "version": "format", "headerSize": "format", "slots": "format",
	"slotSize": "format", "slotStride": "format", "slotAlign": "format", "descOffset": "format",
	"dataOffset": "format", "totalSize": "format", "flags": "format", "ownerUID": "format",
	"streamItems": "format", "streamBytes": "format", "nameLen": "format", "name": "format",
	"end": "producer", "drained": "consumer",
	"producer.seq": "producer", "producer.pid": "producer", "producer.start": "producer", "producer.gen": "producer",
	"consumer.seq": "consumer", "consumer.pid": "consumer", "consumer.start": "consumer", "consumer.gen": "consumer",
	"items": "consumer", "bytes": "consumer", "integrity": "consumer",
	"app":  "both",
	"head": "producer", "committedBytes": "producer", "producerSleeps": "producer",
	"producerWakes": "producer", "producerLosses": "producer", "producerLostGen": "producer",
	"tail": "consumer", "consumerSleeps": "consumer", "consumerWakes": "consumer",
	"consumerLosses": "consumer", "consumerLostGen": "consumer",
	"consumerWaiting": "both", "producerWaiting": "both",
}

// counterWords are the live counters' words (and the loss marks kept with them).
var counterWords = []string{"committedBytes", "producerSleeps", "producerWakes", "producerLosses", "producerLostGen",
	"consumerSleeps", "consumerWakes", "consumerLosses", "consumerLostGen", "items", "bytes", "integrity"}

// TestLayoutCacheLines: every field lies inside the header, naturally aligned, without
// overlap; every field has a known writer; head's and tail's lines hold only words
// their own side writes (the counters kept there included), and each doorbell word has
// a line to itself; a counter word is on a line where its side writes another word.
func TestLayoutCacheLines(t *testing.T) {
	fs := headerFields()
	byName := map[string]field{}
	for i, f := range fs {
		byName[f.name] = f
		if f.offset+f.size > headerSize {
			t.Errorf("%s ends at %d, past the header (%d)", f.name, f.offset+f.size, headerSize)
		}
		if f.offset%f.size != 0 && f.size <= 8 {
			t.Errorf("%s at %d is not naturally aligned", f.name, f.offset)
		}
		if i > 0 && fs[i-1].offset+fs[i-1].size > f.offset {
			t.Errorf("%s overlaps %s", fs[i-1].name, f.name)
		}
		if writers[f.name] == "" {
			t.Errorf("%s: nobody is known to write it: add it to writers", f.name)
		}
	}
	lines := func(f field) (first, last uintptr) { return f.offset / CacheLine, (f.offset + f.size - 1) / CacheLine }
	sameLine := func(a, b field) bool {
		af, al := lines(a)
		bf, bl := lines(b)
		return af <= bl && bf <= al
	}
	for _, c := range []struct {
		hot   string
		alone bool // the line holds nothing else
	}{{"head", false}, {"tail", false}, {"consumerWaiting", true}, {"producerWaiting", true}} {
		hot, ok := byName[c.hot]
		if !ok {
			t.Fatalf("no field %s", c.hot)
		}
		for _, f := range fs {
			if f.name == hot.name || !sameLine(f, hot) {
				continue
			}
			if c.alone || writers[f.name] != writers[hot.name] {
				t.Errorf("%s (written by %s) shares cache line %d with %s (written by %s)",
					hot.name, writers[hot.name], hot.offset/CacheLine, f.name, writers[f.name])
			}
		}
	}
	for _, name := range counterWords {
		c, ok := byName[name]
		if !ok {
			t.Fatalf("no field %s", name)
		}
		if w := writers[name]; w != "producer" && w != "consumer" {
			t.Errorf("counter %s is written by %s, not by one side", name, w)
		}
		mates := 0
		for _, f := range fs {
			if sameLine(f, c) && writers[f.name] != writers[name] {
				t.Errorf("counter %s (written by %s) shares a line with %s (written by %s)", name, writers[name], f.name, writers[f.name])
			}
			if sameLine(f, c) && !slices.Contains(counterWords, f.name) {
				mates++
			}
		}
		if mates == 0 && name != "items" && name != "bytes" && name != "integrity" {
			t.Errorf("counter %s is on a line its side writes only to count", name)
		}
	}
}

// TestMagicBytes: the magic reads as "SHMPCRNG" in memory (for hexdumps and foreign
// tools), written as one word.
func TestMagicBytes(t *testing.T) {
	_, buf := newRing(t, 1, 1)
	if !bytes.Equal(buf[:8], []byte(Magic)) {
		t.Fatalf("first bytes %q, want %q", buf[:8], Magic)
	}
}

// seedFile writes one fuzz seed in the go test corpus format.
func seedFile(tb testing.TB, target, name string, args ...any) {
	tb.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	noErr(tb, os.MkdirAll(dir, 0o755), "mkdir corpus")
	noErr(tb, os.WriteFile(filepath.Join(dir, name), []byte(seedText(tb, args...)), 0o644), "write seed")
}

// seedText is one fuzz seed in the go test corpus format.
func seedText(tb testing.TB, args ...any) string {
	tb.Helper()
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case uint64:
			fmt.Fprintf(&b, "uint64(%d)\n", v)
		default:
			tb.Fatalf("seed arg of type %T", a)
		}
	}
	return b.String()
}
