package payload

// No purego constraint: with -tags purego this test runs too and requires
// the portable code.

import (
	"bytes"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"
)

// kernelSupport is whether this CPU, as golang.org/x/sys/cpu reports it
// (GODEBUG included), can run a kernel; missing names what it lacks.
type kernelSupport struct {
	name    string
	missing string // "" when the kernel can run
}

// rawVPCLMULQDQ reads CPUID leaf 7 ECX bit 10 where /proc/cpuinfo cannot
// tell (set by kernel_amd64_test.go; nil with -tags purego).
var rawVPCLMULQDQ func() bool

// cpuVPCLMULQDQ reports the VPCLMULQDQ CPUID bit (leaf 7, ECX bit 10),
// which x/sys/cpu reports only as HasAVX512VPCLMULQDQ, only with AVX-512,
// and which no GODEBUG option turns off. On Linux it comes from the flags
// of /proc/cpuinfo, independently of the package's cpuid.
func cpuVPCLMULQDQ() (has bool, source string) {
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range bytes.Lines(b) {
			if k, v, ok := strings.Cut(string(line), ":"); ok && strings.TrimSpace(k) == "flags" {
				return slices.Contains(strings.Fields(v), "vpclmulqdq"), "/proc/cpuinfo"
			}
		}
	}
	if rawVPCLMULQDQ != nil {
		return rawVPCLMULQDQ(), "CPUID"
	}
	return false, "unknown"
}

// godebugOff reports whether GODEBUG turns x/sys/cpu option name off, read
// as x/sys/cpu reads it (the last cpu.name= or cpu.all= field wins). It only
// explains a missing feature; cpu.X86 itself decides.
func godebugOff(name string) bool {
	off := false
	for f := range strings.SplitSeq(os.Getenv("GODEBUG"), ",") {
		switch f {
		case "cpu." + name + "=off", "cpu.all=off":
			off = true
		case "cpu." + name + "=on", "cpu.all=on":
			off = false
		}
	}
	return off
}

// cpuKernels lists the assembly kernels in the order of preference with
// what this CPU lacks for each (see TestKernelSelection for the rule).
func cpuKernels() []kernelSupport {
	type feature struct {
		name, option string // option: x/sys/cpu's GODEBUG name ("" none)
		has          bool
	}
	vpclmul, src := cpuVPCLMULQDQ()
	sse42 := feature{"SSE4.2", "sse42", cpu.X86.HasSSE42}
	pclmul := feature{"PCLMULQDQ", "pclmulqdq", cpu.X86.HasPCLMULQDQ}
	lacks := func(fs ...feature) string {
		var m []string
		for _, f := range fs {
			if f.has {
				continue
			}
			why := "CPU or OS lacks it"
			if f.option != "" && godebugOff(f.option) {
				why = "GODEBUG cpu." + f.option + "=off"
			}
			m = append(m, f.name+": "+why)
		}
		if len(m) == 0 {
			return ""
		}
		return "no " + strings.Join(m, ", no ")
	}
	return []kernelSupport{
		{"avx512", lacks(sse42, pclmul, feature{"AVX512F", "avx512f", cpu.X86.HasAVX512F},
			feature{"AVX512VPCLMULQDQ", "avx512vpclmulqdq", cpu.X86.HasAVX512VPCLMULQDQ})},
		{"avx2", lacks(sse42, pclmul, feature{"AVX2", "avx2", cpu.X86.HasAVX2},
			feature{"VPCLMULQDQ (" + src + ")", "", vpclmul})},
		{"sse42", lacks(sse42, feature{"BMI2", "bmi2", cpu.X86.HasBMI2})},
	}
}

// puregoBuild reports whether the test binary was built with -tags purego
// (from its build information, not from which files were compiled).
func puregoBuild(t *testing.T) bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build information: cannot tell whether -tags purego was given")
	}
	for _, s := range bi.Settings {
		if s.Key == "-tags" {
			return slices.Contains(strings.Split(s.Value, ","), "purego")
		}
	}
	return false
}

// TestKernelSelection derives the kernel this CPU must use from
// golang.org/x/sys/cpu, independently of detectKernel, and fails when
// Kernel() is another. The rule (kernel_amd64.go, detectKernel):
//
//   - with -tags purego: "go";
//   - no SSE4.2: "go";
//   - PCLMULQDQ, AVX512F and AVX512VPCLMULQDQ: "avx512";
//   - PCLMULQDQ, AVX2 and the VPCLMULQDQ CPUID bit (leaf 7 ECX bit 10):
//     "avx2";
//   - BMI2: "sse42" (the scalar kernel);
//   - otherwise "go".
//
// The flags are cpu.X86's, which include the operating system checks:
// HasAVX2 needs XCR0 to enable the XMM and YMM state (OSXSAVE, XGETBV bits
// 1, 2), HasAVX512F and HasAVX512VPCLMULQDQ the opmask and ZMM state too
// (bits 5-7; on Darwin its own check). x/sys/cpu applies GODEBUG's cpu.*
// options itself (os.Getenv at its init, not the runtime's internal/cpu),
// so GODEBUG=cpu.avx512f=off,cpu.avx2=off selects "sse42" on a CPU with
// both. Options do not imply each other: cpu.avx512=off leaves HasAVX512F
// set, and no option hides the VPCLMULQDQ bit the AVX2 kernel reads with
// CPUID (taken here from /proc/cpuinfo on Linux).
//
// With SHMPC_WANT_KERNEL set (avx512, avx2, sse42, go) Kernel() must also be
// that one: CI uses it to prove that a GODEBUG run tested the kernel it
// meant to.
func TestKernelSelection(t *testing.T) {
	want, why := "go", "no assembly kernel can run"
	switch {
	case puregoBuild(t):
		why = "built with -tags purego"
	default:
		var lacks []string
		for _, k := range cpuKernels() {
			if k.missing == "" {
				want, why = k.name, "best kernel the CPU can run"
				break
			}
			lacks = append(lacks, k.name+" ("+k.missing+")")
		}
		if len(lacks) > 0 {
			why += "; not " + strings.Join(lacks, "; not ")
		}
	}
	got := Kernel()
	t.Logf("Kernel() = %q; want %q: %s (GODEBUG=%q)", got, want, why, os.Getenv("GODEBUG"))
	if got != want {
		t.Errorf("Kernel() = %q, but x/sys/cpu says this CPU should use %q: %s", got, want, why)
	}
	if env, ok := os.LookupEnv("SHMPC_WANT_KERNEL"); ok {
		if !slices.Contains([]string{"avx512", "avx2", "sse42", "go"}, env) {
			t.Fatalf("SHMPC_WANT_KERNEL=%q: not a kernel name (avx512, avx2, sse42, go)", env)
		}
		if got != env {
			t.Errorf("Kernel() = %q, SHMPC_WANT_KERNEL requires %q", got, env)
		}
	}
}
