package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// headroom is what the bridge leaves of max_payload for a piece's headers
// (the package's headroom).
const headroom = 4096

// pieces returns the message sizes the bridge publishes an item of size
// bytes as, with the server's max_payload maxPayload.
func pieces(size int64, maxPayload int) []int {
	piece := int64(maxPayload - headroom)
	var out []int
	for off := int64(0); off < size; off += piece {
		out = append(out, int(min(piece, size-off)))
	}
	if len(out) == 0 {
		out = append(out, 0)
	}
	return out
}

// parseSizes parses a comma-separated list of sizes.
func parseSizes(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		n, err := parseSize(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// parseSize parses a byte count with an optional KiB, MiB or GiB suffix.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("size %q: give a positive number of bytes, optionally with KiB, MiB or GiB", s)
	}
	return n * mult, nil
}

// fmtSize formats a byte count with the largest binary unit that divides it.
func fmtSize(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// summary is the median, least and greatest of some figures.
type summary struct {
	med, lo, hi float64
	n           int
}

// summarize returns the summary of xs (n 0 when xs is empty). The median of
// an even count is the mean of the middle two.
func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{med: m, lo: s[0], hi: s[len(s)-1], n: len(s)}
}

// String formats s as "median [min-max]".
func (s summary) String() string {
	if s.n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f [%.2f-%.2f]", s.med, s.lo, s.hi)
}

// ratio is a quotient of medians, "-" when either is missing.
func ratio(a, b summary) string {
	if a.n == 0 || b.n == 0 || b.med == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a.med/b.med)
}

// result holds every run's figures of one item size, GiB/s.
type result struct {
	size, total int64
	raw         []float64 // first publication to last acknowledgement
	send        []float64 // produce start to send exit
	sendOwn     []float64 // send's own time
	e2e         []float64 // first start to consume exit
	e2eOwn      []float64 // consume's own window
	// CPU seconds per GiB by variant: this process (the server) and the
	// processes started (clients: raw-publish; produce and send; produce,
	// send, recv and consume)
	serverCPU, clientCPU map[string][]float64
}

// printTable prints the results.
func printTable(w io.Writer, b *bench, res []result) {
	if len(res) == 0 {
		return
	}
	fmt.Fprintf(w, "\nbridge against raw JetStream, one server (max_payload %d, pieces of %d), %d slots, medians of %d rounds [min-max], GiB/s of payload\n",
		b.maxPayload, b.maxPayload-headroom, b.o.slots, b.o.reps)
	fmt.Fprintln(w, "| item | per run | raw JetStream | bridge send (whole job) | send (its own time) | end to end (whole job) | consume (its own window) | send / raw | e2e / raw |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range res {
		raw, send, own, e2e, cons := summarize(r.raw), summarize(r.send), summarize(r.sendOwn), summarize(r.e2e), summarize(r.e2eOwn)
		fmt.Fprintf(w, "| %s | %s | %v | %v | %v | %v | %v | %s | %s |\n",
			fmtSize(r.size), fmtSize(r.total), raw, send, own, e2e, cons, ratio(send, raw), ratio(e2e, raw))
	}
	fmt.Fprintln(w, "\nCPU seconds per GiB of payload, medians [min-max]: the server (this process) and the processes each variant started")
	fmt.Fprintln(w, "| item | variant | server | clients | sum |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range res {
		for _, v := range []string{"raw", "send", "e2e"} {
			if len(r.serverCPU[v]) == 0 {
				continue
			}
			var sum []float64
			for i := range r.serverCPU[v] {
				sum = append(sum, r.serverCPU[v][i]+r.clientCPU[v][i])
			}
			fmt.Fprintf(w, "| %s | %s | %v | %v | %v |\n", fmtSize(r.size), v, summarize(r.serverCPU[v]), summarize(r.clientCPU[v]), summarize(sum))
		}
	}
}
