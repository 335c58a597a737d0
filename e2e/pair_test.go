package e2e

import (
	"strings"
	"testing"
)

// TestPairLang pins which command each role runs with each pair: the
// pair's for the first producer and consumer, the other language for a
// successor in a mixed pair, the same in go/go and c/c, and the Go command
// for anything but produce and consume.
func TestPairLang(t *testing.T) {
	for _, tc := range []struct {
		pair                 Pair
		p, c, p2, c2, lsOrGC string
		usesC                bool
	}{
		{GoGo, langGo, langGo, langGo, langGo, langGo, false},
		{"", langGo, langGo, langGo, langGo, langGo, false},
		{CGo, langC, langGo, langGo, langC, langGo, true},
		{GoC, langGo, langC, langC, langGo, langGo, true},
		{CC, langC, langC, langC, langC, langGo, true},
	} {
		got := []string{
			tc.pair.lang("producer", "produce"), tc.pair.lang("consumer", "consume"),
			tc.pair.lang("producer 2", "produce"), tc.pair.lang("consumer 2", "consume"),
			tc.pair.lang("gc", "gc"),
		}
		want := []string{tc.p, tc.c, tc.p2, tc.c2, tc.lsOrGC}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("pair %q: producer, consumer, producer 2, consumer 2, gc run %v, want %v", tc.pair, got, want)
		}
		if tc.pair.usesC() != tc.usesC {
			t.Errorf("pair %q: usesC %v, want %v", tc.pair, tc.pair.usesC(), tc.usesC)
		}
	}
	for _, p := range Pairs() {
		if got, err := ParsePair(string(p)); err != nil || got != p {
			t.Errorf("ParsePair(%q) = %q, %v", p, got, err)
		}
	}
	if _, err := ParsePair("c/rust"); err == nil {
		t.Error("ParsePair accepted c/rust")
	}
}

// TestCArgs: shmpc-c gets the flags it knows with their values, -json is
// dropped, and a flag it does not know is an error, never passed on.
func TestCArgs(t *testing.T) {
	got, err := cArgs([]string{"consume", "-name", "x", "-workers", "3", "-json", "-manifest", "m", "-stdout", "-peer-timeout", "0s"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "consume -name x -workers 3 -manifest m -stdout -peer-timeout 0s"; strings.Join(got, " ") != want {
		t.Errorf("cArgs = %q, want %q", strings.Join(got, " "), want)
	}
	got, err = cArgs([]string{"produce", "-name", "x", "-hugepages", "on", "-count", "5", "-json", "-fresh", "-wait", "1s"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "produce -name x -hugepages on -count 5 -fresh -wait 1s"; strings.Join(got, " ") != want {
		t.Errorf("cArgs = %q, want %q", strings.Join(got, " "), want)
	}
	for _, bad := range [][]string{
		{"produce", "-name", "x", "-spin", "1ms"},
		{"consume", "-name", "x", "-mlock", "on"},
		{"produce", "-name", "x", "-workers", "2"},
		{"gc", "-name", "x"},
	} {
		if got, err := cArgs(bad); err == nil {
			t.Errorf("cArgs(%q) = %q, want an error", bad, got)
		}
	}
}

// TestCSummaryItems reads the item count of shmpc-c's summary line, the
// last one when there are several, and finds none in an error.
func TestCSummaryItems(t *testing.T) {
	for _, tc := range []struct {
		stderr string
		n      uint64
		ok     bool
	}{
		{"shmpc-c produce: ring uses huge pages\nshmpc-c produce: 17 items, 68.00 KiB in 0.001 s (1 GiB/s), pages huge\n", 17, true},
		{"shmpc-c consume: 0 items, 0 B in 0.000 s (0 B/s), 0 integrity errors, pages normal\n", 0, true},
		{"shmpc-c consume: producer of r is gone: 5 items delivered, 2 lost: peer lost\n", 0, false},
		{"", 0, false},
	} {
		n, ok := cSummaryItems(tc.stderr)
		if n != tc.n || ok != tc.ok {
			t.Errorf("cSummaryItems(%q) = %d, %v; want %d, %v", tc.stderr, n, ok, tc.n, tc.ok)
		}
	}
}

// TestIsNoteC: shmpc-c's informational lines are notes as the Go
// command's are; its error lines are not.
func TestIsNoteC(t *testing.T) {
	for l, want := range map[string]bool{
		"shmpc-c produce: resuming ring r at item 4 (4 released)":                      true,
		"shmpc-c produce: discarded the existing ring r (-fresh)":                      true,
		"shmpc-c produce: ring uses huge pages":                                        true,
		"shmpc-c: fault produce-in-slot 3":                                             true,
		"shmpc-c consume: producer of r is gone: 1 items delivered, 0 lost: peer lost": false,
		"shmpc-c produce: ring r already has a live producer":                          false,
	} {
		if got := isNote(l); got != want {
			t.Errorf("isNote(%q) = %v, want %v", l, got, want)
		}
	}
}
