// Package e2e is shmpc's fault-injection suite: it drives the real shmpc
// binary as a user would (README, "The command"), kills, stops and
// signals its processes at moments drawn at random, attacks a live ring's
// objects, and checks after every trial what the failure table of
// the README ("When things die", "Delivery guarantee") promises.
//
// # Trials
//
// A Scenario is one row of the failure table or one kind of hostile input.
// Each trial of it gets its own ring NAME (the process id plus a random
// suffix), its own temporary directory and its own random source, seeded
// from Config.Seed, the scenario, the page mode and the trial number, so a
// failing trial replays with the same seed. A trial draws the geometry
// (slots, slot size, workers, -count or -bytes with a short last item),
// a variant of its scenario and the kill point, runs the processes, then
// checks:
//
//   - every item a consumer delivered: its manifest line (seq, len,
//     crc32c) against internal/payload's pattern, and, where the consumer
//     writes -stdout, every byte of the item;
//   - sequence numbers: no gap in what the scenario promises, no duplicate
//     within one consumer, and across a consumer's death only items that
//     were published but not released at its death, at most the slot count;
//   - every process's exit status against the scenario's; a failing
//     process says so in one line of stderr and never prints a Go panic
//     trace; no wait is unbounded: a process that outlives its bound is a
//     hang, reported as such;
//   - peer-death detection: from the kill to the survivor's exit, with
//     -peer-timeout 0, against Config.DetectBound;
//   - that no /dev/shm object and no SysV segment of the ring remains
//     (internal/ringobj.Leftovers), and that objects the trial planted for
//     an attacker or a bystander are exactly as they were planted.
//
// A read-only attachment of the ring's segment (the observer) reads head
// and tail directly: the kill points wait on them, and after a death they
// say exactly which items were published and which released, which is what
// the loss and duplicate checks compare the manifests with. The observer
// keeps the memory of a removed segment mapped until the trial ends; it
// never writes. The hostile scenarios attach a second, writable mapping.
//
// # Scenarios
//
// Crashes and signals (the README's failure table): producer-kill and
// producer-kill-resume (SIGKILL mid-transfer, inside a slot write, between
// items, on a full ring with no consumer or a stopped one, after the
// stream drained but before cleanup; the survivor gives up at once or when
// a short -peer-timeout expires, or a new producer resumes at head);
// consumer-kill and consumer-kill-resume (mid-transfer, inside a handler,
// with the producer blocked on the full ring, asleep on an empty ring);
// both-kill-gc and both-kill-resume (gc -dry-run, gc -name, resume, or
// -fresh); sigterm-producer and sigterm-consumer (SIGTERM or SIGINT);
// sigstop-peer (a peer stopped past -peer-timeout is alive); stall-timeout
// (-stall-timeout declares it lost).
//
// Hostile input: scribble-header, scribble-descriptors and scribble-payload
// (random bytes or chosen values written over a live ring, or over items
// published and not yet consumed, or an item damaged by its producer after
// its CRC; the header's NAME may be pointed at a bystander ring, which must
// survive); sem-damaged-at-rest (a dead ring's semaphore truncated or
// replaced by garbage, a symlink, a FIFO or a directory); sem-truncated-live
// and sem-replaced-live (the same to a live ring); squat-other-uid (objects
// of another uid planted under the NAME, a victim run as nobody; or a live
// ring of nobody's attacked by another uid); squat-wrong-perm (objects of
// our uid with looser permissions or the wrong size).
//
// Lifecycle races (issue 12): lifecycle-start-race (2 to 8 producers
// started at once on a fresh NAME while `gc -name NAME`, `gc -dry-run` and
// `ls -json` run in a loop: exactly one wins, the rest are refused with
// one line, the stream is delivered once); lifecycle-churn (one NAME
// created, drained and removed 50 times in a row under the same loop, with
// extra producers and consumers started while both roles are held: each
// is refused, every stream is delivered exactly once, nothing is left);
// lifecycle-foreign (another uid creates a segment at the ring's key and
// hands it over with IPC_SET, plants semaphore and lock files, and keeps
// toggling their sizes and modes while the target uid's producer,
// consumer, gc and ls run: refused, no crash, the objects untouched).
// Their cells: live rings damaged, double owners, adopted foreign objects.
// The loop never runs a plain `gc`, which would judge the rings of trials
// running at once and of other programs on the machine.
//
// # Pairs
//
// The scenarios of the kill, resume, scribble and signal families
// (producer-kill, producer-kill-resume, consumer-kill, consumer-kill-resume,
// both-kill-gc, both-kill-resume, sigterm-producer, sigterm-consumer,
// sigstop-peer and the three scribble-* scenarios; Scenario.Mixed) also run
// with mixed pairs: shmpc-c, the C command over the C library of c/, as
// the producer (c/go), the consumer (go/c) or both (c/c), and in c/go and
// go/c a process that takes a role over from one that was killed is of the
// other language (a C producer killed inside a slot is resumed by a Go
// producer, and the reverse; a Go consumer killed, a C consumer takes
// over). ls and gc are the Go command's. The table has a pair column. The
// checks are the same, with what shmpc-c offers where the Go command's
// output is used: shmpc-c has no -json, so the item count of a summary is
// read from its stderr summary line, and what a zero-copy shmpc-c consumer
// delivered from the ring's tail (it delivers and releases in order, one
// item at a time); it knows the same SHMPC_FAULT points (c/shmpc-c.c). The
// suite passes shmpc-c only flags it knows (-json dropped, anything else
// unknown is a bug of the suite) and checks that a mixed trial's first
// producer and consumer ran the commands its pair names. shmpc-c is built
// with `make c` into a temporary directory (BuildCBinary); without a C
// compiler the mixed trials are skipped, saying so.
//
// # Running
//
// `go test ./e2e` runs, in each page mode, every scenario as many times
// as it takes to meet each of its variants (Scenario.Variants trials, with
// Config.Cover taking the choices of every draw in turn) from a fixed
// seed, so the sample is the same every time and no attack or kill point
// is left to chance, and one trial of each mixed pair of the scenarios
// that run them; it also fails on temporary semaphore files left in
// /dev/shm, as make e2e does (SHMPC_E2E_TRIALS, SHMPC_E2E_SEED,
// SHMPC_E2E_SKIP, SHMPC_E2E_BIN, SHMPC_E2E_CBIN and
// SHMPC_E2E_DETECT_BOUND adjust it; see e2e_test.go). `make e2e` runs
// e2e/run.sh: as root, it reserves huge pages, runs 12 trials of every
// scenario in both page modes (go/go) and 2 of each mixed pair of the
// scenarios that run them through e2e/cmd/e2e and prints the table.
// Config.Short moves less data per trial (go test -short, the race
// detector).
//
// # Why a library and a command
//
// The scenarios are ordinary code (this package) returning a Result per
// trial, so the same code serves `go test ./e2e` (a short sample, each
// failed check a test failure) and the command e2e/cmd/e2e that `make e2e`
// runs through e2e/run.sh (hundreds of trials in both page modes, a table
// of totals, a non-zero exit when a cell that must be zero is not). A
// trial stops at its first fatal check by panicking with a private value
// that the trial runner recovers (as testing.T.FailNow stops a test); any
// other panic is a bug of the suite and is reported as a failed trial.
//
// # Processes
//
// Every process is started with exec.Cmd, gets SIGKILL when this process's
// starting thread dies (Pdeathsig), and is always waited for; the trial
// kills what is still running when it ends. Children built with -race
// would sleep at exit: GORACE=atexit_sleep_ms=0 is set for them. The
// fault-injection points of cmd/shmpc/fault.go (SHMPC_FAULT) stop a
// process inside a slot write or a handler; the suite waits for the line
// the hook prints, then kills.
//
// # Scenarios that need root
//
// Planting objects owned by another uid and running a victim as `nobody`
// (syscall.Credential) need root: without it those scenarios are skipped
// with a message. Huge-page trials need room in the 2 MiB pool; the tests
// reserve it by the flock-and-add rule of shm.ReserveHugePages (root), and
// run.sh does the same in shell.
package e2e
