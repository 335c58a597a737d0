package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/shmpc/shmpc/internal/ringobj"
)

// Scenario is one kind of trial: a row of the failure table (README, "When things die") or one
// kind of hostile input.
type Scenario struct {
	// Name identifies the scenario (table row, -scenario flag, subtest).
	Name string
	// Expect is the expected outcome, for the table: exit statuses and
	// what loss is allowed.
	Expect string
	// Root says the scenario needs root (objects of other uids, a victim
	// run as nobody); without it the scenario is skipped.
	Root bool
	// Variants is how many trials it takes, with Config.Cover, for every
	// choice of each of the scenario's draws (Trial.pick) to be taken at
	// least once: the length of its longest list of choices, or more
	// where two draws must meet in every combination. 0 means 1.
	Variants int
	// Mixed says the scenario also runs with the mixed pairs (Pair):
	// shmpc-c in one role or both.
	Mixed bool
	run   func(tr *Trial)
}

// skip says why the scenario cannot run here with pair ("" if it can).
func (s *Scenario) skip(cfg *Config, pm PageMode, pair Pair) string {
	if s.Root && os.Geteuid() != 0 {
		return "needs root (objects of another uid, a victim run as uid " + fmt.Sprint(cfg.victim()) + ")"
	}
	if pair.usesC() {
		switch {
		case !s.Mixed:
			return "runs with the pair go/go only"
		case cfg.CBinary == "" && cfg.NoC != "":
			return cfg.NoC
		case cfg.CBinary == "":
			return "no shmpc-c binary given (Config.CBinary)"
		}
	}
	return ""
}

// Scenarios returns every scenario in table order.
func Scenarios() []*Scenario {
	return []*Scenario{
		{Name: "producer-kill", Mixed: true, Variants: 6, run: func(tr *Trial) { producerKilled(tr, false) },
			Expect: "consumer 3 at once or after -peer-timeout (0 if drained); every published item once, nothing half-written"},
		{Name: "producer-kill-resume", Mixed: true, Variants: 5, run: func(tr *Trial) { producerKilled(tr, true) },
			Expect: "new producer resumes at head; both 0; all items exactly once"},
		{Name: "consumer-kill", Mixed: true, Variants: 4, run: func(tr *Trial) { consumerKilled(tr, false) },
			Expect: "producer 3 at once or after -peer-timeout; every released item in the manifest"},
		{Name: "consumer-kill-resume", Mixed: true, Variants: 4, run: func(tr *Trial) { consumerKilled(tr, true) },
			Expect: "new consumer resumes; both 0; all items, repeats <= slots of the unreleased"},
		{Name: "both-kill-gc", Mixed: true, Variants: 3, run: func(tr *Trial) { bothKilled(tr, false) },
			Expect: "objects stay, ls shows owners dead; gc -name removes all"},
		{Name: "both-kill-resume", Mixed: true, Variants: 2, run: func(tr *Trial) { bothKilled(tr, true) },
			Expect: "new pair resumes (or -fresh: a new stream once); both 0; all items, repeats <= slots of the unreleased"},
		{Name: "sigterm-producer", Mixed: true, run: sigtermProducer,
			Expect: "both 0; every published item exactly once"},
		{Name: "sigterm-consumer", Mixed: true, run: sigtermConsumer,
			Expect: "consumer 0, producer 3 (or a new consumer: all 0); none lost, no repeat"},
		{Name: "sigstop-peer", Mixed: true, Variants: 2, run: sigstopPeer,
			Expect: "a stopped peer past -peer-timeout is not dead; both 0; all exactly once"},
		{Name: "stall-timeout", Variants: 4, run: stallTimeout,
			Expect: "-stall-timeout: survivor 3 in time; the stopped peer ends too; nothing left"},
		{Name: "scribble-header", Mixed: true, Variants: 4, run: func(tr *Trial) { scribble(tr, "header") },
			Expect: "clear error (1, 3) or integrity (4) or unharmed (0); bad data never delivered"},
		{Name: "scribble-descriptors", Mixed: true, Variants: 4, run: func(tr *Trial) { scribble(tr, "descriptors") },
			Expect: "integrity error (4) or clear error (1) (or unharmed, 0, if live); bad data never delivered"},
		{Name: "scribble-payload", Mixed: true, Variants: 6, run: func(tr *Trial) { scribble(tr, "payload") },
			Expect: "integrity error 4 at the damaged item (or unharmed, 0, if live); never delivered"},
		{Name: "sem-damaged-at-rest", Variants: 7, run: semAtRest,
			Expect: "resume refused, one line (1); gc -name removes all"},
		{Name: "sem-truncated-live", Variants: 4, run: func(tr *Trial) { semLive(tr, true) },
			Expect: "clear error (1, 3) or unharmed (0); no crash, no hang; nothing left"},
		{Name: "sem-replaced-live", Variants: 4, run: func(tr *Trial) { semLive(tr, false) },
			Expect: "unharmed (0) or clear error (1, 3); no crash, no hang; nothing left"},
		{Name: "squat-other-uid", Variants: 2, Root: true, run: squatOtherUID,
			Expect: "refused, one line (1, or 3 after -wait); squatter's objects untouched"},
		{Name: "squat-wrong-perm", Variants: 6, run: squatWrongPerm,
			Expect: "refused, one line (1); objects untouched; gc -name removes them"},
		{Name: "lifecycle-start-race", run: startRace,
			Expect: "K producers at once, gc and ls looping: one wins, the rest refused (1); all items once"},
		{Name: "lifecycle-churn", run: churn,
			Expect: "create-drain-remove x50, gc/ls looping, extras refused (1); every stream once; nothing left"},
		{Name: "lifecycle-foreign", Variants: 2, Root: true, run: foreignHandover,
			Expect: "objects handed over by another uid, sizes/modes toggled: refused (1, 3); untouched; no crash"},
	}
}

// lsEntry is the part of an `ls -json` object the suite reads.
type lsEntry struct {
	Name          string `json:"name"`
	Pages         string `json:"pages"`
	Head          uint64 `json:"head"`
	Tail          uint64 `json:"tail"`
	OwnerUID      int    `json:"owner_uid"`
	ProducerPID   int    `json:"producer_pid"`
	ProducerAlive bool   `json:"producer_alive"`
	ConsumerPID   int    `json:"consumer_pid"`
	ConsumerAlive bool   `json:"consumer_alive"`
}

// ls runs `shmpc ls -json` and returns the trial ring's entry.
func (tr *Trial) ls() (lsEntry, bool) {
	p := tr.start("ls", procOpt{}, "ls", "-json")
	if code := p.wait(30 * time.Second); code != 0 {
		tr.failf("ls -json exited %d: %s", code, clip(p.stderr.String(), 1500))
		return lsEntry{}, false
	}
	for _, line := range strings.Split(strings.TrimSpace(p.stdout.String()), "\n") {
		var e lsEntry
		if json.Unmarshal([]byte(line), &e) == nil && e.Name == tr.name {
			return e, true
		}
	}
	return lsEntry{}, false
}

// gc runs `shmpc gc -name NAME` (with -dry-run when dry) and checks it
// exits 0 without a crash; it returns its standard output.
func (tr *Trial) gc(dry bool) string {
	args := []string{"gc", "-name", tr.name}
	if dry {
		args = append(args, "-dry-run")
	}
	return tr.runGC(args, []int{0})
}

// gcAllow runs `shmpc gc -name NAME` allowing the exit statuses allowed.
func (tr *Trial) gcAllow(allowed []int) string {
	return tr.runGC([]string{"gc", "-name", tr.name}, allowed)
}

func (tr *Trial) runGC(args []string, allowed []int) string {
	dry := len(args) > 3
	p := tr.start("gc", procOpt{}, args...)
	p.wait(30 * time.Second)
	tr.expectCode(p, allowed)
	tr.logf("gc%s: %s", map[bool]string{true: " -dry-run"}[dry], strings.TrimSpace(p.stdout.String()))
	return p.stdout.String()
}

// leftovers lists the ring's objects.
func (tr *Trial) leftovers() []string {
	left, err := ringobj.Leftovers(tr.names)
	if err != nil {
		tr.failf("list objects of %s: %v", tr.name, err)
	}
	return left
}
