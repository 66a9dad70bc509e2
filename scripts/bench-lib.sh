# shellcheck shell=bash
# What scripts/bench-cold and scripts/bench-memory share: a radiusd from a
# harness config directory, started and stopped by PID, and one checked
# Access-Request per bench user. Sourced after lib.sh, never run. Expects
# BENCH_DIR and SECRET.

SRV_PID=""

# bench_requests N PATH: one Access-Request per user, with the right
# password, in a fixed shuffled order.
bench_requests() {
	/usr/bin/python3 - "$1" "$2" <<-'PY'
		import random, sys
		n, path = int(sys.argv[1]), sys.argv[2]
		ids = list(range(1, n + 1))
		random.Random(7).shuffle(ids)
		with open(path, "w") as f:
		    for i in ids:
		        f.write('User-Name = "user%05d"\nUser-Password = "pw-%05d"\n'
		                'NAS-IP-Address = 127.0.0.1\nNAS-Port = 0\n\n' % (i, i))
	PY
}

# bench_start DIR: radiusd from harness config DIR (its bench.env gives
# AUTH_PORT), ready when it rejects an unknown user, which warms no real
# one's cache entry. Sets SRV_PID; not in a subshell, so the caller's EXIT
# trap can stop it.
bench_start() {
	local d=$1 up=0
	# shellcheck disable=SC1091
	. "$d/bench.env"
	"$RADIUSD" -f -d "$d" >"$d/log/bench-stdout.log" 2>&1 &
	SRV_PID=$!
	for _ in $(seq 1 150); do
		kill -0 "$SRV_PID" 2>/dev/null || die "freeradius ($d) exited during startup"
		if printf 'User-Name = "bench-probe"\nUser-Password = "x"\nResponse-Packet-Type = Access-Reject\n' |
			radclient -d "$d" -q -r 1 -t 1 "127.0.0.1:$AUTH_PORT" auth "$SECRET" >/dev/null 2>&1; then
			up=1
			break
		fi
		sleep 0.2
	done
	[ "$up" = 1 ] || die "freeradius ($d) does not answer on 127.0.0.1:$AUTH_PORT"
}

bench_stop() {
	if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
		kill -TERM "$SRV_PID" 2>/dev/null || true
		wait "$SRV_PID" 2>/dev/null || true
	fi
	SRV_PID=""
}

# bench_send REQUESTS N: the requests to the started radiusd, 32 (PARALLEL)
# in flight, every reply checked; udpload's result line in OUT. Fails
# unless all N users were accepted.
bench_send() {
	OUT=$(/usr/bin/python3 "$BENCH_DIR/udpload.py" --server "127.0.0.1:$AUTH_PORT" \
		--secret "$SECRET" --kind auth --parallel "${PARALLEL:-32}" --check-reply \
		--session-timeout "${BENCH_SESSION_TIMEOUT:-3600}" \
		--idle-timeout "${BENCH_IDLE_TIMEOUT:-600}" "$1")
	grep -q "accept=$2 reject=0 lost=0" <<<"$OUT" || die "not every user accepted: $OUT"
}
