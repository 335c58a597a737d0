#!/usr/bin/env bash
# make e2e: shmpc's full fault-injection run.
#
# As root: adds SHMPC_E2E_HUGEPAGES (default 64) pages of 2 MiB to the
# huge-page pool (under an exclusive flock on /tmp/shmpc-hugepages.lock,
# adding to the current value, never setting an absolute one), runs
# SHMPC_E2E_TRIALS (default 12) trials of every scenario in both page modes
# (21 scenarios x 2 x 12 = 504) with the Go command in both roles, and
# SHMPC_E2E_MIXED_TRIALS (default 2) trials of each of the 12 scenarios of
# the kill, resume, scribble and signal families with each mixed pair
# (shmpc-c, built here with `make c`, as producer, consumer or both:
# 12 x 2 x 3 x 2 = 144), SHMPC_E2E_PARALLEL (default 2) at a time, prints
# the table, and gives the pages back (subtracting exactly what it added) on
# every exit: success, failure, Ctrl-C, SIGTERM. Without a C compiler the
# mixed pairs are skipped, saying so (SHMPC_REQUIRE_GCC=1 fails instead).
# Extra arguments go to the runner (e2e/cmd/e2e), e.g. -seed N or
# -scenario RE.
#
# Then the bridge family (bridge/cmd/bridge-e2e, in the bridge module):
# SHMPC_E2E_BRIDGE_TRIALS (default 3) trials of each of its scenarios
# (kills of shmpc-bridge send, recv, the NATS server and the remote
# consumer, and forged messages on the subject), SHMPC_E2E_BRIDGE_PARALLEL
# (default 1) at a time, seeded by SHMPC_E2E_BRIDGE_SEED (default: the
# clock, printed), normal pages only. When the bridge module cannot be
# built (no network for its modules, an old Go) it is skipped, saying so;
# SHMPC_REQUIRE_BRIDGE=1 fails instead.
# Exit status: 0 when every must-be-zero cell of both tables is 0; else the
# first runner's status when it is not 0, or the bridge runner's.
set -euo pipefail
cd "$(dirname "$0")/.."

pages=${SHMPC_E2E_HUGEPAGES:-64}
trials=${SHMPC_E2E_TRIALS:-12}
mixed=${SHMPC_E2E_MIXED_TRIALS:-2}
parallel=${SHMPC_E2E_PARALLEL:-2}
btrials=${SHMPC_E2E_BRIDGE_TRIALS:-3}
bparallel=${SHMPC_E2E_BRIDGE_PARALLEL:-1}
bseed=()
[ -n "${SHMPC_E2E_BRIDGE_SEED:-}" ] && bseed=(-seed "$SHMPC_E2E_BRIDGE_SEED")
lock=/tmp/shmpc-hugepages.lock
pool=/proc/sys/vm/nr_hugepages

if [ "$(id -u)" != 0 ]; then
	echo "e2e/run.sh: run it as root (it reserves huge pages and runs victims as nobody); e.g. sudo -E env PATH=\"\$PATH\" make e2e" >&2
	exit 1
fi

work=$(mktemp -d /tmp/shmpc-e2e-run.XXXXXX)
added=0

# shellcheck disable=SC2317 # called by the EXIT trap
give_back() {
	if [ "$added" -gt 0 ]; then
		exec 9>>"$lock"
		flock -w 120 9 || echo "e2e/run.sh: no lock on $lock after 120s; giving the pages back anyway" >&2
		cur=$(cat "$pool")
		new=$((cur - added))
		[ "$new" -lt 0 ] && new=0
		echo "$new" >"$pool"
		flock -u 9
		exec 9>&-
		echo "e2e/run.sh: gave back $added huge pages (vm.nr_hugepages $cur -> $(cat "$pool"))"
		added=0
	fi
	rm -rf "$work"
}
trap give_back EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Build first, so a build error does not hold pages.
go build -o "$work/e2e" ./e2e/cmd/e2e
go build -o "$work/shmpc" ./cmd/shmpc
chmod 0755 "$work" "$work/shmpc" # victims run as nobody
cbin=()
if command -v "${C_CC:-cc}" >/dev/null 2>&1; then
	make -s c C_BUILD="$work/c" >/dev/null
	chmod 0755 "$work/c"
	cbin=(-cbin "$work/c/shmpc-c")
fi # else the runner says that the mixed pairs are skipped, and why
bridge=""
mkdir "$work/bridge"
if (cd bridge && go build -o "$work/bridge/" ./cmd/bridge-e2e ./cmd/shmpc-bridge ./internal/cmd/natsd) >"$work/bridge/build.log" 2>&1; then
	bridge="$work/bridge"
elif [ "${SHMPC_REQUIRE_BRIDGE:-}" = 1 ]; then
	cat "$work/bridge/build.log" >&2
	echo "e2e/run.sh: the bridge module does not build, and SHMPC_REQUIRE_BRIDGE=1 requires the bridge family" >&2
	exit 1
else
	sed 's/^/  /' "$work/bridge/build.log" >&2
	echo "e2e/run.sh: the bridge module does not build (above): the bridge family is skipped (SHMPC_REQUIRE_BRIDGE=1 fails instead)" >&2
fi

exec 9>>"$lock"
flock -w 120 9
before=$(cat "$pool")
echo $((before + pages)) >"$pool"
after=$(cat "$pool")
added=$((after - before))
flock -u 9
exec 9>&-
echo "e2e/run.sh: added $added huge pages (vm.nr_hugepages $before -> $after)"
if [ "$added" -lt "$pages" ]; then
	echo "e2e/run.sh: the kernel made only $added of $pages huge pages (memory too fragmented?)" >&2
	exit 1
fi
grep -E '^HugePages_(Total|Free)' /proc/meminfo

set +e
"$work/e2e" -bin "$work/shmpc" "${cbin[@]}" -trials "$trials" -mixed-trials "$mixed" -pages both -parallel "$parallel" "$@"
status=$?
bstatus=0
if [ -n "$bridge" ]; then
	echo
	"$bridge/bridge-e2e" -shmpc "$work/shmpc" -bridge "$bridge/shmpc-bridge" -natsd "$bridge/natsd" \
		-trials "$btrials" -parallel "$bparallel" "${bseed[@]}"
	bstatus=$?
	[ "$bstatus" != 0 ] && echo "e2e/run.sh: the bridge family failed (exit $bstatus)" >&2
fi
set -e
[ "$status" != 0 ] && exit "$status"
exit "$bstatus"
