package shm

// Helper processes: the test binary re-run with helperEnv set, which TestMain
// dispatches to a function below instead of running the tests. The helpers
// drop root to an unprivileged uid, so that the tests can check what another
// user sees (permission errors, EPERM from SHM_HUGETLB, RLIMIT_MEMLOCK).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const helperEnv = "SHMPC_SHM_TEST_HELPER"

// The unprivileged ids the helpers run as, and the foreign owner the
// ownership test gives a segment. Neither needs a passwd entry.
const (
	helperUID  = 65533
	helperGID  = 65533
	foreignUID = 65534
	foreignGID = 65534
)

// helperResult is what a helper reports on stdout, as JSON.
type helperResult struct {
	Errors map[string]string // step -> error text ("" for none)
	Is     map[string]bool   // "step/sentinel" -> errors.Is
	Notes  []string
	Huge   bool
	Locked bool
}

func (r *helperResult) record(step string, err error, sentinels map[string]error) {
	if r.Errors == nil {
		r.Errors, r.Is = map[string]string{}, map[string]bool{}
	}
	r.Errors[step] = ""
	if err != nil {
		r.Errors[step] = err.Error()
	}
	for name, s := range sentinels {
		r.Is[step+"/"+name] = errors.Is(err, s)
	}
}

var helpers = map[string]func() (helperResult, error){
	"foreign":  helperForeign,
	"hugeperm": helperHugePerm,
	"memlock":  helperMemlock,
}

func runHelper(name string) int {
	fn, ok := helpers[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
		return 2
	}
	if err := dropPrivileges(); err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", name, err)
		return 1
	}
	res, err := fn()
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", name, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", name, err)
		return 1
	}
	return 0
}

// dropPrivileges makes the (root) helper process uid/gid helperUID/helperGID
// with no supplementary groups. Go applies set*id to every thread.
func dropPrivileges() error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(helperGID); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(helperUID); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	// Changing credentials makes the process non-dumpable, which would make
	// its /proc/self files root's.
	return unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0)
}

func envInt(name string) int {
	n, err := strconv.Atoi(os.Getenv(name))
	if err != nil {
		panic(fmt.Sprintf("helper: %s=%q: %v", name, os.Getenv(name), err))
	}
	return n
}

// helperForeign tries everything an unprivileged user might do to a segment
// it does not own and may not access.
func helperForeign() (helperResult, error) {
	var r helperResult
	key, id := envInt("SHM_KEY"), envInt("SHM_ID")
	perm := map[string]error{"perm": fs.ErrPermission, "exist": fs.ErrExist}
	_, err := Attach(key, false, Options{})
	r.record("attach", err, perm)
	_, err = AttachID(id, true, Options{})
	r.record("attachro", err, perm)
	err = RemoveID(id)
	r.record("remove", err, perm)
	_, err = Create(key, 4096, Options{})
	r.record("create", err, perm)
	// Stat and List need no permission on the segment.
	in, err := StatID(id)
	r.record("stat", err, nil)
	if err == nil && in.UID != foreignUID {
		return r, fmt.Errorf("StatID saw uid %d, want %d", in.UID, foreignUID)
	}
	return r, nil
}

// helperHugePerm asks for huge pages without CAP_IPC_LOCK and outside
// vm.hugetlb_shm_group: On must fail with EPERM's message, Auto must fall
// back.
func helperHugePerm() (helperResult, error) {
	var r helperResult
	key := envInt("SHM_KEY")
	_, err := Create(key, HugePageSize, Options{HugePages: On, Lock: Off})
	r.record("on", err, map[string]error{"huge": ErrHugePages, "perm": fs.ErrPermission})
	s, err := Create(key, HugePageSize, Options{HugePages: Auto, Lock: Off})
	r.record("auto", err, nil)
	if err != nil {
		return r, nil
	}
	r.Huge, r.Notes = s.Huge(), s.Notes()
	return r, errors.Join(s.Detach(), s.Remove())
}

// helperMemlock locks a segment larger than a 1 MiB RLIMIT_MEMLOCK: On must
// fail with the figure, Auto must go on unlocked with a note.
func helperMemlock() (helperResult, error) {
	var r helperResult
	key := envInt("SHM_KEY")
	lim := unix.Rlimit{Cur: 1 << 20, Max: 1 << 20}
	if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return r, fmt.Errorf("setrlimit: %w", err)
	}
	_, err := Create(key, 4<<20, Options{HugePages: Off, Lock: On})
	r.record("on", err, map[string]error{"lock": ErrLock})
	s, err := Create(key, 4<<20, Options{HugePages: Off, Lock: Auto})
	r.record("auto", err, nil)
	if err != nil {
		return r, nil
	}
	r.Locked, r.Notes = s.Locked(), s.Notes()
	return r, errors.Join(s.Detach(), s.Remove())
}

// runHelperProcess runs helper name as an unprivileged user (root needed)
// with env, bounded by a timeout, and returns its report.
func runHelperProcess(t *testing.T, name string, env ...string) helperResult {
	t.Helper()
	needRoot(t, "switching to another uid")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+name), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %s: %v", name, err)
	}
	registerPID(cmd.Process.Pid)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper %s: %v (ctx %v)\nstderr:\n%s", name, err, ctx.Err(), stderr.String())
	}
	var r helperResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("helper %s: parse report %q: %v\nstderr:\n%s", name, stdout.String(), err, stderr.String())
	}
	return r
}
