#!/usr/bin/env bash
# c/bench.sh (make bench-c): C and Go on one ring, the four pairings side by
# side. For each geometry (CONFIGS: slot size:item count) and each of REPS
# rounds it runs `produce -count` into `consume` with shmpc and shmpc-c in
# every pairing (go/go, c/go, go/c, c/c; producer/consumer), alternating so
# drift hits all alike, and prints the consumer's GiB/s (first item to last,
# as its last line says) as medians with every run in brackets, then each
# mixed pairing's ratio to the slower of c/c and go/go.
#
#   sudo make bench-c
#   REPS=5 CONFIGS="8MiB:512 64KiB:65536" c/bench.sh
#
# As root it adds the huge pages the rings need (under the same flock as
# make e2e, adding and giving back exactly what it added, on every exit)
# and runs with -hugepages on; otherwise with -hugepages off.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-5}
CONFIGS=${CONFIGS:-"8MiB:512 64KiB:65536"}
SLOTS=${SLOTS:-8}
work=$(mktemp -d /tmp/shmpc-bench-c.XXXXXX)
name=bench-c-$$
pool=/proc/sys/vm/nr_hugepages
lock=/tmp/shmpc-hugepages.lock
added=0
pages=off

cleanup() {
	"$work/shmpc" gc -name "$name" >/dev/null 2>&1 || true
	if [ "$added" -gt 0 ]; then
		exec 9>>"$lock"
		flock -w 120 9 || true
		cur=$(cat "$pool")
		new=$((cur - added))
		[ "$new" -lt 0 ] && new=0
		echo "$new" >"$pool"
		flock -u 9
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

go build -o "$work/shmpc" ./cmd/shmpc
make -s c C_BUILD="$work/c" >/dev/null
cbin="$work/c/shmpc-c"

if [ "$(id -u)" = 0 ] && [ -w "$pool" ]; then
	want=80 # 8 x 8 MiB = 32 pages of 2 MiB, and room
	exec 9>>"$lock"
	flock -w 120 9
	cur=$(cat "$pool")
	echo $((cur + want)) >"$pool"
	added=$(($(cat "$pool") - cur))
	flock -u 9
	exec 9>&-
	if [ "$added" -ge 32 ]; then pages=on; fi
fi

cmd() { # cmd go|c
	if [ "$1" = go ]; then echo "$work/shmpc"; else echo "$cbin"; fi
}

# one PRODUCER CONSUMER SIZE COUNT: the consumer's GiB/s
one() {
	local p c
	p=$(cmd "$1")
	c=$(cmd "$2")
	"$c" consume -name "$name" -wait 30s 2>"$work/c.err" &
	local cpid=$!
	"$p" produce -name "$name" -slots "$SLOTS" -slot-size "$3" -count "$4" -hugepages "$pages" -wait 30s 2>"$work/p.err" || {
		cat "$work/p.err" >&2
	}
	wait "$cpid" || cat "$work/c.err" >&2
	sed -n 's/.* in [0-9.]* s (\([0-9.]*\) GiB\/s).*/\1/p' "$work/c.err" | tail -n 1
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

pairs="go/go c/go go/c c/c"
declare -A runs
for rep in $(seq 1 "$REPS"); do
	for cfg in $CONFIGS; do
		for pair in $pairs; do
			r=$(one "${pair%/*}" "${pair#*/}" "${cfg%%:*}" "${cfg##*:}")
			runs[$cfg/$pair]+="${r:-0} "
		done
	done
done

echo "shmpc-c fill and CRC: $("$cbin" version 2>/dev/null || echo '(see c/payload.c, c/crc32c.c)'); shmpc: $("$work/shmpc" version | tr '\n' ' ')"
echo "consumer GiB/s, medians of $REPS alternating runs [all runs], $SLOTS slots, huge pages $pages"
printf '%-8s' item
for pair in $pairs; do printf '  %-26s' "$pair"; done
printf '  %-12s %-12s\n' "c/go ratio" "go/c ratio"
for cfg in $CONFIGS; do
	declare -A med
	printf '%-8s' "${cfg%%:*}"
	for pair in $pairs; do
		med[$pair]=$(echo "${runs[$cfg/$pair]}" | median)
		printf '  %-26s' "${med[$pair]} [$(echo "${runs[$cfg/$pair]}" | tr ' ' '\n' | grep . | sort -g | tr '\n' ' ' | sed 's/ $//')]"
	done
	slower=$(awk -v a="${med[c/c]}" -v b="${med[go/go]}" 'BEGIN {print (a < b ? a : b)}')
	printf '  %-12s %-12s\n' "$(awk -v x="${med[c/go]}" -v s="$slower" 'BEGIN {printf "%.2fx", x / s}')" \
		"$(awk -v x="${med[go/c]}" -v s="$slower" 'BEGIN {printf "%.2fx", x / s}')"
	unset med
done
