package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Pair says which command plays each role of a trial: the language of its
// first producer and of its first consumer, "producer/consumer", where go
// is the shmpc command and c is shmpc-c, the C command over the C library
// (the directory c/). The zero value is GoGo.
//
// In a mixed pair (CGo, GoC) every process that takes a role over from one
// that was killed or stopped (a resuming producer, a consumer that takes
// over) is of the other language than the one it replaces: a C producer
// killed inside a slot is resumed by a Go producer, a Go consumer killed is
// followed by a C consumer. In GoGo and CC every process of a role is of
// the pair's language. ls and gc are always the Go command's (shmpc-c has
// neither).
type Pair string

// The four pairs.
const (
	GoGo Pair = "go/go"
	CGo  Pair = "c/go"
	GoC  Pair = "go/c"
	CC   Pair = "c/c"
)

// Pairs returns every pair, GoGo first.
func Pairs() []Pair { return []Pair{GoGo, CGo, GoC, CC} }

// MixedPairs returns the pairs that run shmpc-c: every pair but GoGo.
func MixedPairs() []Pair { return []Pair{CGo, GoC, CC} }

// ParsePair returns the pair named s ("go/go", "c/go", "go/c" or "c/c").
func ParsePair(s string) (Pair, error) {
	for _, p := range Pairs() {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("pair %q: want go/go, c/go, go/c or c/c", s)
}

// or returns p, or GoGo for the zero value.
func (p Pair) or() Pair {
	if p == "" {
		return GoGo
	}
	return p
}

// usesC reports whether a process of the pair runs shmpc-c.
func (p Pair) usesC() bool { return p.or() != GoGo }

// The languages of a pair's processes.
const (
	langGo = "go"
	langC  = "c"
)

// lang returns the language of a process of the pair that runs the
// command cmd (produce, consume, anything else) in role: the pair's
// language for the role's first process ("producer", "consumer"), the
// other one for a successor in a mixed pair (see Pair).
func (p Pair) lang(role, cmd string) string {
	first, _, _ := strings.Cut(string(p.or()), "/")
	switch cmd {
	case "produce":
		if role == "producer" {
			return first
		}
	case "consume":
		_, first, _ = strings.Cut(string(p.or()), "/")
		if role == "consumer" {
			return first
		}
	default:
		return langGo
	}
	if p.or() == CGo || p.or() == GoC {
		if first == langC {
			return langGo
		}
		return langC
	}
	return first
}

// checkPair checks that a trial of a mixed pair ran its first producer and
// its first consumer (the roles "producer" and "consumer") with the
// commands the pair names: a scenario that named its roles otherwise would
// run the Go command in both and pass without testing the pair.
func (tr *Trial) checkPair() {
	if !tr.pair.usesC() {
		return
	}
	for role, cmd := range map[string]string{"producer": "produce", "consumer": "consume"} {
		want := tr.pair.lang(role, cmd)
		found := false
		for _, p := range tr.procs {
			if p.role != role {
				continue
			}
			found = true
			if p.lang != want {
				tr.failf("pair %s: the %s ran the %s command, want %s", tr.pair, role, p.lang, want)
			}
		}
		if !found {
			tr.failf("pair %s: no process in the role %q: the pair was not tested (a bug of the suite)", tr.pair, role)
		}
	}
}

// cFlags are the flags shmpc-c knows, by command, and whether each takes a
// value (c/shmpc-c.c's usage). -workers is accepted and ignored.
var cFlags = map[string]map[string]bool{
	"produce": {"-name": true, "-count": true, "-bytes": true, "-stdin": false, "-slots": true, "-slot-size": true,
		"-wait": true, "-peer-timeout": true, "-stall-timeout": true, "-hugepages": true, "-perm": true, "-fresh": false},
	"consume": {"-name": true, "-stdout": false, "-manifest": true, "-wait": true, "-peer-timeout": true,
		"-stall-timeout": true, "-workers": true},
}

// goOnlyFlags are the Go command's flags that only change what it prints
// (-json: the summary on stdout, which the checks read from shmpc-c's
// stderr summary or the ring instead): dropped for shmpc-c. Any other flag
// shmpc-c does not know is a bug of the suite.
var goOnlyFlags = map[string]bool{"-json": true, "-v": true}

// cArgs returns the arguments of args for shmpc-c: the Go-only output
// flags dropped. A flag shmpc-c does not know is an error (the scenario
// must not ask a C process for it).
func cArgs(args []string) ([]string, error) {
	known, ok := cFlags[args[0]]
	if !ok {
		return nil, fmt.Errorf("shmpc-c has no command %q", args[0])
	}
	out := []string{args[0]}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if goOnlyFlags[a] {
			continue
		}
		takesValue, ok := known[a]
		if !ok {
			return nil, fmt.Errorf("shmpc-c %s has no flag %s", args[0], a)
		}
		out = append(out, a)
		if takesValue && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out, nil
}

// cSummaryRE matches the summary line shmpc-c prints on stderr when it
// exits 0: "shmpc-c produce: N items, ..." or "shmpc-c consume: N items, ...".
var cSummaryRE = regexp.MustCompile(`(?m)^shmpc-c (?:produce|consume): (\d+) items, `)

// cSummaryItems returns the item count of shmpc-c's summary line in
// stderr; ok is false when there is none.
func cSummaryItems(stderr string) (uint64, bool) {
	m := cSummaryRE.FindAllStringSubmatch(stderr, -1)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseUint(m[len(m)-1][1], 10, 64)
	return n, err == nil
}

// BuildCBinary builds shmpc-c from the c/ directory of the module
// containing dir (the current directory when dir is "") with `make c
// C_BUILD=<a new temporary directory>` (or the C compiler directly, when
// make is missing), into a directory every uid may search. It returns the
// binary's path and a function that removes the directory. When no C
// compiler is installed it returns noCC, saying so, and no error: the
// mixed pairs are then skipped with that message.
func BuildCBinary(dir string) (bin string, remove func(), noCC string, err error) {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		return "", nil, fmt.Sprintf("no C compiler (%s) in PATH: the mixed pairs (shmpc-c) are skipped; install one (apt-get install gcc libc6-dev) to run them", cc), nil
	}
	root, err := moduleRoot(dir)
	if err != nil {
		return "", nil, "", err
	}
	out, err := os.MkdirTemp("", "shmpc-e2e-cbin-")
	if err != nil {
		return "", nil, "", fmt.Errorf("make build directory: %w", err)
	}
	remove = func() { _ = os.RemoveAll(out) }
	if err := os.Chmod(out, 0o755); err != nil {
		remove()
		return "", nil, "", fmt.Errorf("chmod build directory: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin = filepath.Join(out, "shmpc-c")
	var cmd *exec.Cmd
	if _, err := exec.LookPath("make"); err == nil {
		cmd = exec.CommandContext(ctx, "make", "-s", "c", "C_BUILD="+out, "C_CC="+cc)
	} else {
		srcs, _ := filepath.Glob(filepath.Join(root, "c", "*.c"))
		cmd = exec.CommandContext(ctx, cc, append([]string{"-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", bin}, srcs...)...)
	}
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		remove()
		return "", nil, "", fmt.Errorf("build shmpc-c: %v\n%s", err, b)
	}
	if _, err := os.Stat(bin); err != nil {
		remove()
		return "", nil, "", fmt.Errorf("build shmpc-c: %w", err)
	}
	return bin, remove, "", nil
}

// moduleRoot returns the directory of the go.mod that dir (or the current
// directory) is in.
func moduleRoot(dir string) (string, error) {
	cmd := exec.Command("go", "env", "GOMOD")
	cmd.Dir = dir
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module (%q): run from the shmpc repository", dir)
	}
	return filepath.Dir(mod), nil
}
