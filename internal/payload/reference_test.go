package payload_test

// The package against testdata/payload/payload_ref.c, an independent
// reference written from the text of the payload definition: through its
// golden vectors (TestGoldenVectors, no compiler needed) and by running it
// (TestMatchesCReference). Only the public API is used, and the CRC is also
// computed with hash/crc32, so nothing here shares code with the generator.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/internal/payload"
)

const (
	refSource  = "../../testdata/payload/payload_ref.c"
	goldenFile = "../../testdata/payload/golden.txt"
)

// vector is one line of golden.txt or of payload_ref's output: the CRC32C
// of item seq's first n bytes and its first and last min(n, 8) bytes.
type vector struct {
	line        string
	seq         uint64
	n           int
	crc         uint32
	first, last []byte
}

// parseVectors parses lines "seq n crc first last", skipping blank lines
// and # comments.
func parseVectors(t *testing.T, text string) []vector {
	t.Helper()
	var vs []vector
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		require.Len(t, f, 5, "expected 5 fields (seq n crc first last) in %q", line)
		v := vector{line: line}
		var err error
		v.seq, err = strconv.ParseUint(f[0], 10, 64)
		require.NoError(t, err, "expected a decimal seq in %q", line)
		v.n, err = strconv.Atoi(f[1])
		require.NoError(t, err, "expected a decimal length in %q", line)
		require.GreaterOrEqual(t, v.n, 0, "expected a length >= 0 in %q", line)
		crc, err := strconv.ParseUint(f[2], 0, 32)
		require.NoError(t, err, "expected a 32-bit hex CRC in %q", line)
		v.crc = uint32(crc)
		v.first, v.last = parseBytes(t, f[3], line), parseBytes(t, f[4], line)
		k := min(v.n, 8)
		require.Len(t, v.first, k, "expected %d first bytes in %q", k, line)
		require.Len(t, v.last, k, "expected %d last bytes in %q", k, line)
		vs = append(vs, v)
	}
	require.NoError(t, sc.Err())
	return vs
}

// parseBytes decodes a hex field, "-" being no bytes.
func parseBytes(t *testing.T, s, line string) []byte {
	t.Helper()
	if s == "-" {
		return nil
	}
	b, err := hex.DecodeString(s)
	require.NoError(t, err, "expected hex bytes or - in %q", line)
	return b
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkVector requires every public way of producing item v.seq's first
// v.n bytes, and of checksumming them, to agree with v.
func checkVector(t *testing.T, v vector) {
	t.Helper()
	buf := make([]byte, v.n)
	require.Equalf(t, v.crc, payload.Fill(buf, v.seq), "Fill's CRC of item %d, %d bytes: want the reference's (%s)", v.seq, v.n, v.line)
	k := min(v.n, 8)
	require.Equalf(t, v.first, nonNil(buf[:k]), "Fill's first %d bytes of item %d, %d bytes: want the reference's (%s)", k, v.seq, v.n, v.line)
	require.Equalf(t, v.last, nonNil(buf[v.n-k:]), "Fill's last %d bytes of item %d, %d bytes: want the reference's (%s)", k, v.seq, v.n, v.line)
	require.Equalf(t, v.crc, crc32.Checksum(buf, castagnoli), "hash/crc32 CRC32C of Fill's bytes of item %d, %d bytes: want the reference's CRC (%s)", v.seq, v.n, v.line)
	require.Equalf(t, v.crc, payload.Checksum(buf), "Checksum of Fill's bytes of item %d, %d bytes: want the reference's CRC (%s)", v.seq, v.n, v.line)
	require.Equalf(t, v.crc, payload.CRC(v.seq, v.n), "CRC(%d, %d): want the reference's CRC (%s)", v.seq, v.n, v.line)
	require.NoErrorf(t, payload.Check(buf, v.seq), "Check of Fill's bytes of item %d, %d bytes: want them accepted", v.seq, v.n)

	other := make([]byte, v.n)
	require.Equalf(t, v.crc, payload.FillCached(other, v.seq), "FillCached's CRC of item %d, %d bytes: want the reference's (%s)", v.seq, v.n, v.line)
	require.Truef(t, bytes.Equal(buf, other), "FillCached's bytes of item %d, %d bytes: want Fill's", v.seq, v.n)
	clear(other)
	var g payload.Generator
	require.Equalf(t, v.crc, g.Fill(other, v.seq), "Generator.Fill's CRC of item %d, %d bytes: want the reference's (%s)", v.seq, v.n, v.line)
	require.Truef(t, bytes.Equal(buf, other), "Generator.Fill's bytes of item %d, %d bytes: want Fill's", v.seq, v.n)
}

// nonNil maps an empty slice to nil, as parseBytes returns for "-".
func nonNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// readGolden returns golden.txt and its vectors.
func readGolden(t *testing.T) (string, []vector) {
	t.Helper()
	text, err := os.ReadFile(goldenFile)
	require.NoError(t, err, "expected the golden vectors at %s", goldenFile)
	vs := parseVectors(t, string(text))
	require.GreaterOrEqual(t, len(vs), 40, "expected at least 40 golden vectors in %s", goldenFile)
	return string(text), vs
}

// TestGoldenVectors checks the generator against the vectors that the C
// reference printed into testdata/payload/golden.txt.
func TestGoldenVectors(t *testing.T) {
	t.Logf("kernel %s", payload.Kernel())
	_, vs := readGolden(t)
	for _, v := range vs {
		checkVector(t, v)
	}
}

// TestMatchesCReference builds the C reference and compares the generator
// with it on the golden cases and on random (seq, length) pairs. The seed
// is logged; PAYLOAD_REF_SEED replays one.
func TestMatchesCReference(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		const why = "gcc not on PATH: cannot build the C reference testdata/payload/payload_ref.c (apt-get install gcc)"
		if os.Getenv("SHMPC_REQUIRE_GCC") == "1" {
			t.Fatal(why + "; SHMPC_REQUIRE_GCC=1 requires it")
		}
		t.Skip(why)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "payload_ref")
	build := exec.CommandContext(ctx, gcc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", bin, refSource)
	build.WaitDelay = 5 * time.Second
	out, err := build.CombinedOutput()
	require.NoError(t, err, "expected gcc to build %s: %s", refSource, out)

	goldenText, golden := readGolden(t)
	gen := exec.CommandContext(ctx, bin, "--golden")
	gen.WaitDelay = 5 * time.Second
	out, err = gen.Output()
	require.NoError(t, err, "expected payload_ref --golden to succeed")
	require.Equal(t, goldenText, string(out), "expected %s to be exactly what payload_ref --golden prints", goldenFile)

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PAYLOAD_REF_SEED"); s != "" {
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "expected PAYLOAD_REF_SEED to be a decimal uint64")
	}
	t.Logf("random cases from seed %d (PAYLOAD_REF_SEED=%d replays them); kernel %s", seed, seed, payload.Kernel())
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	type pair struct {
		seq uint64
		n   int
	}
	var cases []pair
	for _, v := range golden {
		cases = append(cases, pair{v.seq, v.n})
	}
	for i := range 300 {
		seq := rng.Uint64()
		if i%4 == 0 {
			seq = rng.Uint64N(1 << 10)
		}
		var n int
		switch i % 3 {
		case 0: // up to 1 MiB
			n = rng.IntN(1<<20 + 1)
		case 1: // a few chunks: the kernel's groups and the portable tail
			n = rng.IntN(10*payload.ChunkBytes + 1)
		default: // around a chunk boundary
			n = (1+rng.IntN(8))*payload.ChunkBytes + rng.IntN(17) - 8
		}
		cases = append(cases, pair{seq, n})
	}
	var in strings.Builder
	for _, c := range cases {
		in.WriteString(strconv.FormatUint(c.seq, 10) + " " + strconv.Itoa(c.n) + "\n")
	}
	run := exec.CommandContext(ctx, bin)
	run.Stdin = strings.NewReader(in.String())
	run.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	run.Stderr = &stderr
	out, err = run.Output()
	require.NoError(t, err, "expected payload_ref to succeed on %d cases: %s", len(cases), stderr.String())
	got := parseVectors(t, string(out))
	require.Len(t, got, len(cases), "expected one line of payload_ref output per case")
	for i, v := range got {
		require.Equal(t, cases[i].seq, v.seq, "expected payload_ref to echo seq in %q", v.line)
		require.Equal(t, cases[i].n, v.n, "expected payload_ref to echo the length in %q", v.line)
		checkVector(t, v)
	}
}
