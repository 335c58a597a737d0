package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain runs the test binary as the raw-publish command when the bench
// starts it so (os.Executable is the test binary here).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "raw-publish" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestPieces(t *testing.T) {
	const mp = 1 << 20
	for _, tc := range []struct {
		size int64
		want []int
	}{
		{64 << 10, []int{64 << 10}},
		{mp - headroom, []int{mp - headroom}},
		{mp, []int{mp - headroom, headroom}},
		{8 << 20, []int{1044480, 1044480, 1044480, 1044480, 1044480, 1044480, 1044480, 1044480, 32768}},
	} {
		got := pieces(tc.size, mp)
		if len(got) != len(tc.want) {
			t.Fatalf("pieces(%d) = %v, want %v", tc.size, got, tc.want)
		}
		sum := 0
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("pieces(%d) = %v, want %v", tc.size, got, tc.want)
			}
			sum += got[i]
		}
		if int64(sum) != tc.size {
			t.Fatalf("pieces(%d) add up to %d", tc.size, sum)
		}
	}
}

func TestSummarize(t *testing.T) {
	if s := summarize([]float64{3, 1, 2, 5, 4}); s.med != 3 || s.lo != 1 || s.hi != 5 || s.n != 5 {
		t.Fatalf("odd count: %+v, want median 3 in [1-5]", s)
	}
	if s := summarize([]float64{4, 1, 2, 3}); s.med != 2.5 {
		t.Fatalf("even count: median %v, want 2.5", s.med)
	}
	if s := summarize(nil); s.n != 0 || s.String() != "-" {
		t.Fatalf("empty: %+v %q", s, s.String())
	}
	if r := ratio(summarize([]float64{1}), summarize([]float64{2})); r != "0.50x" {
		t.Fatalf("ratio 1/2 = %s, want 0.50x", r)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "64KiB": 64 << 10, "8MiB": 8 << 20, " 2GiB": 2 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "1TiB", "x"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) gave no error", in)
		}
	}
}

func TestParseSend(t *testing.T) {
	line := "shmpc-bridge send: ring-00000000000000ff: 3 items, 25165824 bytes, 27 messages (0 duplicates dropped, 0 retries) in 0.250s\n"
	n, secs, err := parseSend("noise\n" + line)
	if err != nil || n != 25165824 || secs != 0.25 {
		t.Fatalf("parseSend = %d, %v, %v; want 25165824, 0.25", n, secs, err)
	}
	if _, _, err := parseSend("shmpc-bridge send: connect: refused"); err == nil {
		t.Fatal("parseSend of a line without a summary gave no error")
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-sizes", "1000"}, // not a multiple of 4096
		{"-sizes", "8MiB,64KiB", "-totals", "1GiB,1GiB,1GiB"}, // one total per size
		{"-totals", "4KiB"}, // less than one item
		{"-variants", "raw,fast"},
		{"-reps", "0"},
		{"-max-payload", "4096"},
		{"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) gave no error", args)
		}
	}
	o, err := parseFlags(nil, io.Discard)
	if err != nil || len(o.sizes) != 2 || o.totals[0] != 2<<30 || o.totals[1] != 1<<30 || o.reps != 5 || len(o.variants) != 3 {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
}

// TestSmoke runs every variant once with small transfers and checks that the
// bench leaves nothing behind: its temporary directory, rings and streams.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds shmpc and shmpc-bridge and runs the bench: not with -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build shmpc and shmpc-bridge")
	}
	o, err := parseFlags([]string{"-sizes", "8MiB,64KiB", "-totals", "32MiB,4MiB", "-reps", "1", "-min-free", "64MiB"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log bytes.Buffer
	b, err := newBench(ctx, o, &log)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = b.close()
		}
	})
	res, err := b.runAll(ctx)
	if err != nil {
		t.Fatalf("runAll: %v\n%s", err, log.String())
	}
	if len(res) != 2 {
		t.Fatalf("%d results, want 2", len(res))
	}
	for _, r := range res {
		for name, xs := range map[string][]float64{"raw": r.raw, "send": r.send, "send own": r.sendOwn, "e2e": r.e2e, "consume own": r.e2eOwn} {
			if len(xs) != 1 || xs[0] <= 0 {
				t.Errorf("%d-byte items, %s: %v, want one positive figure", r.size, name, xs)
			}
		}
	}
	var out bytes.Buffer
	printTable(&out, b, res)
	if !strings.Contains(out.String(), "| 8 MiB | 32 MiB |") || !strings.Contains(out.String(), "| 64 KiB | 4 MiB |") {
		t.Errorf("table lacks a row:\n%s", out.String())
	}
	lister, left := b.js.StreamNames(ctx), 0
	for range lister.Name() {
		left++
	}
	if err := lister.Err(); err != nil {
		t.Fatalf("list streams: %v", err)
	}
	if left != 0 {
		t.Errorf("%d streams left on the server after the runs", left)
	}
	dir, id := b.dir, b.id
	closed = true
	if err := b.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary directory %s left behind (%v)", dir, err)
	}
	if files, _ := filepath.Glob("/dev/shm/*shmpc." + id + "*"); len(files) > 0 {
		t.Errorf("ring files left behind: %v", files)
	}
}
