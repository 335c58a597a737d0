package shm

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// benchSize is the segment size of every benchmark: 8 slots of 8 MiB.
const benchSize = 64 << 20

type benchKind struct {
	name string
	opt  Options
}

var benchKinds = []benchKind{
	{"normal", Options{HugePages: Off, Lock: Off}},
	{"normal+mlock", Options{HugePages: Off, Lock: On}},
	{"huge", Options{HugePages: On, Lock: Off}},
}

// benchSetup reserves the pool for a huge-page sub-benchmark (skipping,
// with the reason, where that is impossible).
func benchSetup(b *testing.B, k benchKind) int {
	b.Helper()
	if k.opt.HugePages == On {
		reserveHuge(b, benchSize/HugePageSize+1)
	}
	if k.opt.Lock == On {
		needRoot(b, "locking 64 MiB (RLIMIT_MEMLOCK)")
	}
	return newKey(b)
}

func benchCreate(b *testing.B, key int, opt Options) *Segment {
	b.Helper()
	return createRetry(b, key, benchSize, opt)
}

func benchDestroy(b *testing.B, s *Segment) {
	b.Helper()
	if err := s.Remove(); err != nil {
		b.Fatal(err)
	}
	if err := s.Detach(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCreatePretouchRemove: the full cost of a ready-to-use 64 MiB
// segment (create, attach, pre-touch, and mlock where asked), then remove.
func BenchmarkCreatePretouchRemove(b *testing.B) {
	for _, k := range benchKinds {
		b.Run(k.name, func(b *testing.B) {
			key := benchSetup(b, k)
			opt := k.opt
			opt.Pretouch = true
			b.SetBytes(benchSize)
			for range b.N {
				benchDestroy(b, benchCreate(b, key, opt))
			}
		})
	}
}

// BenchmarkCreateRemove: the same without pre-touch (the kernel only
// reserves; no page is allocated).
func BenchmarkCreateRemove(b *testing.B) {
	for _, k := range benchKinds {
		if k.opt.Lock == On {
			continue // mlock populates: that is CreatePretouchRemove
		}
		b.Run(k.name, func(b *testing.B) {
			key := benchSetup(b, k)
			b.SetBytes(benchSize)
			for range b.N {
				benchDestroy(b, benchCreate(b, key, k.opt))
			}
		})
	}
}

// BenchmarkFirstTouch: what the first use of an untouched 64 MiB segment
// pays in page faults, measured as one write per 4 KiB.
func BenchmarkFirstTouch(b *testing.B) {
	for _, k := range benchKinds {
		if k.opt.Lock == On {
			continue
		}
		b.Run(k.name, func(b *testing.B) {
			key := benchSetup(b, k)
			b.SetBytes(benchSize)
			b.StopTimer()
			for range b.N {
				s := benchCreate(b, key, k.opt)
				b.StartTimer()
				touchWrite(s.Bytes(), os.Getpagesize())
				b.StopTimer()
				benchDestroy(b, s)
			}
		})
	}
}

// BenchmarkFirstWrite: the first full write (copy) of 64 MiB into a segment,
// cold or pre-touched: what pre-touch takes off the data path.
func BenchmarkFirstWrite(b *testing.B) {
	src := make([]byte, benchSize)
	for i := range src {
		src[i] = byte(i)
	}
	for _, k := range benchKinds {
		if k.opt.Lock == On {
			continue
		}
		for _, pre := range []bool{false, true} {
			name := k.name + "/cold"
			if pre {
				name = k.name + "/pretouched"
			}
			b.Run(name, func(b *testing.B) {
				key := benchSetup(b, k)
				opt := k.opt
				opt.Pretouch = pre
				b.SetBytes(benchSize)
				b.StopTimer()
				for range b.N {
					s := benchCreate(b, key, opt)
					b.StartTimer()
					copy(s.Bytes(), src)
					b.StopTimer()
					benchDestroy(b, s)
				}
			})
		}
	}
}

// BenchmarkPretouch: MADV_POPULATE_WRITE against the page-stride fallback.
func BenchmarkPretouch(b *testing.B) {
	for _, k := range benchKinds {
		if k.opt.Lock == On {
			continue
		}
		for _, stride := range []bool{false, true} {
			name := k.name + "/populate"
			if stride {
				name = k.name + "/stride"
			}
			b.Run(name, func(b *testing.B) {
				key := benchSetup(b, k)
				noPopulate.Store(stride)
				defer noPopulate.Store(false)
				b.SetBytes(benchSize)
				b.StopTimer()
				for range b.N {
					s := benchCreate(b, key, k.opt)
					b.StartTimer()
					if err := s.pretouch(); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					benchDestroy(b, s)
				}
			})
		}
	}
}

// BenchmarkOptionsCompare measures what each option buys, every
// configuration once per iteration in a rotating order, so that drift in
// the machine's state (other load, memory the hypervisor has not backed yet)
// affects all alike and the ratios come from one run. It reports the median
// milliseconds of each configuration for 64 MiB and the ratios the README
// quotes. Huge-page and mlock configurations need root (the pool is
// reserved for the benchmark) and are left out otherwise.
func BenchmarkOptionsCompare(b *testing.B) {
	huge := os.Geteuid() == 0
	if huge {
		reserveHuge(b, 2*(benchSize/HugePageSize)+1)
	}
	key := newKey(b)
	src := make([]byte, benchSize)
	for i := range src {
		src[i] = byte(i)
	}
	normal := Options{HugePages: Off, Lock: Off}
	hugeOpt := Options{HugePages: On, Lock: Off}
	with := func(o Options, f func(*Options)) Options { f(&o); return o }
	type config struct {
		name string
		huge bool
		run  func() time.Duration // returns the time of the measured part
	}
	whole := func(o Options) func() time.Duration {
		return func() time.Duration {
			t0 := time.Now()
			benchDestroy(b, benchCreate(b, key, o))
			return time.Since(t0)
		}
	}
	part := func(o Options, f func(*Segment)) func() time.Duration {
		return func() time.Duration {
			s := benchCreate(b, key, o)
			t0 := time.Now()
			f(s)
			d := time.Since(t0)
			benchDestroy(b, s)
			return d
		}
	}
	touch := func(s *Segment) { touchWrite(s.Bytes(), os.Getpagesize()) }
	write := func(s *Segment) { copy(s.Bytes(), src) }
	pretouch := func(o *Options) { o.Pretouch = true }
	configs := []config{
		{"normal-create-pretouch-remove", false, whole(with(normal, pretouch))},
		{"normal-mlock-create-pretouch-remove", false, whole(with(normal, func(o *Options) { o.Pretouch, o.Lock = true, On }))},
		{"huge-create-pretouch-remove", true, whole(with(hugeOpt, pretouch))},
		{"normal-first-touch", false, part(normal, touch)},
		{"huge-first-touch", true, part(hugeOpt, touch)},
		{"normal-cold-write", false, part(normal, write)},
		{"normal-pretouched-write", false, part(with(normal, pretouch), write)},
		{"huge-cold-write", true, part(hugeOpt, write)},
		{"huge-pretouched-write", true, part(with(hugeOpt, pretouch), write)},
		{"normal-pretouch-populate", false, part(normal, func(s *Segment) { pretouchWith(b, s, false) })},
		{"normal-pretouch-stride", false, part(normal, func(s *Segment) { pretouchWith(b, s, true) })},
	}
	if os.Geteuid() != 0 {
		configs = slices.DeleteFunc(configs, func(c config) bool { return c.huge || strings.Contains(c.name, "mlock") })
	}
	// One warm-up round, not recorded, then at least 9 rounds whatever b.N
	// is (a round takes about a second, so -benchtime would give one).
	times := make(map[string][]time.Duration)
	for i := range max(b.N, 9) + 1 {
		for j := range configs {
			c := configs[(i+j)%len(configs)]
			if d := c.run(); i > 0 {
				times[c.name] = append(times[c.name], d)
			}
		}
	}
	med := func(name string) float64 {
		ds := slices.Clone(times[name])
		if len(ds) == 0 {
			return 0
		}
		slices.Sort(ds)
		return float64(ds[len(ds)/2]) / 1e6
	}
	for _, c := range configs {
		b.ReportMetric(med(c.name), "ms-"+c.name)
	}
	ratio := func(unit, a, c string) {
		if x, y := med(a), med(c); x > 0 && y > 0 {
			b.ReportMetric(x/y, unit)
		}
	}
	ratio("x-normal/huge-create-pretouch", "normal-create-pretouch-remove", "huge-create-pretouch-remove")
	ratio("x-normal/huge-first-touch", "normal-first-touch", "huge-first-touch")
	ratio("x-cold/pretouched-write-normal", "normal-cold-write", "normal-pretouched-write")
	ratio("x-cold/pretouched-write-huge", "huge-cold-write", "huge-pretouched-write")
	ratio("x-populate/stride-pretouch-normal", "normal-pretouch-populate", "normal-pretouch-stride")
	ratio("x-mlock/plain-create-pretouch", "normal-mlock-create-pretouch-remove", "normal-create-pretouch-remove")
	b.ReportMetric(0, "ns/op") // the per-configuration metrics above are the result
}

// pretouchWith pre-touches s with MADV_POPULATE_WRITE or the page-stride
// fallback.
func pretouchWith(b *testing.B, s *Segment, stride bool) {
	noPopulate.Store(stride)
	defer noPopulate.Store(false)
	if err := s.pretouch(); err != nil {
		b.Fatal(err)
	}
}
