package ring

import (
	"bytes"
	"go/parser"
	"go/token"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestCRCMatchesHashCRC32: CRC, UpdateCRC, CopyCRC, CopyUpdateCRC (in random
// pieces) and copyCRCDst compute
// what hash/crc32 computes with the Castagnoli table, on random lengths
// (across CopyCRC's pieces), alignments and split points.
func TestCRCMatchesHashCRC32(t *testing.T) {
	table := crc32.MakeTable(crc32.Castagnoli)
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.OneOf(rapid.IntRange(0, 1024), rapid.IntRange(0, 3*copyChunkSrc)).Draw(t, "len")
		off := rapid.IntRange(0, 63).Draw(t, "offset")
		buf := make([]byte, off+n)
		fill(buf, rapid.Uint64().Draw(t, "seed"))
		src := buf[off:]
		want := crc32.Checksum(src, table)
		if got := CRC(src); got != want {
			t.Fatalf("CRC of %d bytes at offset %d = %#08x, hash/crc32 says %#08x", n, off, got, want)
		}
		cut := rapid.IntRange(0, n).Draw(t, "cut")
		if got := UpdateCRC(CRC(src[:cut]), src[cut:]); got != want {
			t.Fatalf("UpdateCRC after %d of %d bytes = %#08x, want %#08x", cut, n, got, want)
		}
		dst := make([]byte, n+rapid.IntRange(0, 9).Draw(t, "extra dst"))
		if got := CopyCRC(dst, src); got != want || !bytes.Equal(dst[:n], src) {
			t.Fatalf("CopyCRC of %d bytes = %#08x (copy ok %v), want %#08x", n, got, bytes.Equal(dst[:n], src), want)
		}
		clear(dst)
		if got := copyCRCDst(dst, src); got != want || !bytes.Equal(dst[:n], src) {
			t.Fatalf("copyCRCDst of %d bytes = %#08x (copy ok %v), want %#08x", n, got, bytes.Equal(dst[:n], src), want)
		}
		// The item assembled from pieces with CopyUpdateCRC: the running
		// checksum of the whole, and the whole copied.
		clear(dst)
		var crc uint32
		for at := 0; at < n; {
			k := min(n-at, rapid.IntRange(1, max(1, n/3+1)).Draw(t, "piece"))
			crc = CopyUpdateCRC(crc, dst[at:], src[at:at+k])
			at += k
		}
		if crc != want || !bytes.Equal(dst[:n], src) {
			t.Fatalf("CopyUpdateCRC in pieces of %d bytes = %#08x (copy ok %v), want %#08x", n, crc, bytes.Equal(dst[:n], src), want)
		}
	})
}

// TestImports: the package imports the standard library and, of this
// module, internal/crc32c (the project's CRC32C) and internal/errline (its
// one-line error join, shared with sem) only.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			allowed := path == "github.com/shmpc/shmpc/internal/crc32c" || path == "github.com/shmpc/shmpc/internal/errline"
			if !allowed && strings.Contains(first, ".") {
				t.Errorf("%s imports %s: ring imports only the standard library, internal/crc32c and internal/errline", name, path)
			}
		}
	}
}

// TestCopyCRCSlotAlignments: CopyCRC into a slot at every dst alignment 0..31,
// below and above internal/crc32c's 64 KiB non-temporal threshold, copies exactly
// src, leaves the slot's bytes after the copy alone, and returns the CRC of src.
// The CRC is computed from src: a dst that CopyCRC's copy overwrites whole cannot
// change it (the slot is filled with a pattern whose CRC differs).
func TestCopyCRCSlotAlignments(t *testing.T) {
	table := crc32.MakeTable(crc32.Castagnoli)
	src := make([]byte, 1<<20+77)
	fill(src, 42)
	slot := make([]byte, len(src)+64)
	for _, n := range []int{0, 255, 256, 4096 + 3, 64<<10 - 1, 64 << 10, 64<<10 + 129, len(src)} {
		want := crc32.Checksum(src[:n], table)
		for a := range 32 {
			for k := range slot {
				slot[k] = 0x5A
			}
			dst := slot[a : a+n+16]
			if got := CopyCRC(dst, src[:n]); got != want {
				t.Fatalf("CopyCRC of %d bytes at dst alignment %d = %#08x, want %#08x", n, a, got, want)
			}
			if !bytes.Equal(dst[:n], src[:n]) {
				t.Fatalf("CopyCRC of %d bytes at dst alignment %d: copy differs", n, a)
			}
			for k, c := range slot {
				if (k < a || k >= a+n) && c != 0x5A {
					t.Fatalf("CopyCRC of %d bytes at dst alignment %d wrote slot byte %d", n, a, k)
				}
			}
		}
	}
}
