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

// TestCRCMatchesHashCRC32: CRC, UpdateCRC, CopyCRC and copyCRCDst compute
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
	})
}

// TestImports: the package imports the standard library and, of this
// module, internal/crc32c (the project's CRC32C) only.
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
			if path != "github.com/shmpc/shmpc/internal/crc32c" && strings.Contains(first, ".") {
				t.Errorf("%s imports %s: ring imports only the standard library and internal/crc32c", name, path)
			}
		}
	}
}
