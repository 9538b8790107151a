#!/usr/bin/env bash
# Starts N bookhub instances on local MySQL + Redis, runs the Go load
# generator against all of them, then stops them. Used for loadtest/RESULTS.md
# and `make loadtest-scenarios`.
#
#   loadtest/cluster.sh [instances] -- [bookhub-loadtest flags...]
#   loadtest/cluster.sh 2 -- -subscribers 2000 -writes 500 -rate 50
#   NAME=idle-10k loadtest/cluster.sh 2 -- -subscribers 10000 -writes 0 -idle 10s
#
# The generator reads every instance's metrics listener (-metrics-urls, with
# a GC before the memory readings), so its summary ends with the servers'
# CPU per 1,000 deliveries and memory per idle socket next to its own CPU.
# Reports land in $OUT (default loadtest/out) as $NAME.json, .html, .svg,
# the summary as $NAME.txt and the cost lines as $NAME.cost.txt (NAME
# defaults to "report"). METRICS_GC=0 skips the GC, for a build that does
# not serve /debug/pprof on its metrics listener (an older bookhub, when
# comparing before and after): heap figures then include garbage.
#
# Needs: MySQL at $MYSQL_HOST (root, no password) and Redis at $REDIS_URL.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-2}; shift || true
[[ "${1:-}" == "--" ]] && shift
MYSQL_HOST=${MYSQL_HOST:-127.0.0.1}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
DB=bookhub_loadtest_$$
OUT=${OUT:-loadtest/out}
NAME=${NAME:-report}
gcflag=-metrics-gc
[[ "${METRICS_GC:-1}" == 0 ]] && gcflag=
export BOOKHUB_JWT_SECRET=${BOOKHUB_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}

[[ -n "${SKIP_BUILD:-}" ]] || make -s build
[[ -n "${SKIP_BUILD:-}" ]] || go build -o bin/bookhub-loadtest ./loadtest/cmd/bookhub-loadtest
mkdir -p "$OUT"

mysql -h "$MYSQL_HOST" -uroot -e "CREATE DATABASE $DB"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	mysql -h "$MYSQL_HOST" -uroot -e "DROP DATABASE IF EXISTS $DB" || true
}
trap cleanup EXIT

targets=(); metrics=()
for i in $(seq 1 "$n"); do
	port=$((18080 + i))
	BOOKHUB_DATABASE_URL="mysql://root@$MYSQL_HOST:3306/$DB" BOOKHUB_REDIS_URL="$REDIS_URL" \
	BOOKHUB_REDIS_PREFIX="bookhub-loadtest-$$:" BOOKHUB_INSTANCE="lt-$i" BOOKHUB_LOG_LEVEL=warn \
		bin/bookhub serve --addr "127.0.0.1:$port" --metrics-addr "127.0.0.1:$((19090 + i))" >"$OUT/instance-$i.log" 2>&1 &
	pids+=($!)
	targets+=("http://127.0.0.1:$port")
	metrics+=("http://127.0.0.1:$((19090 + i))")
done
for t in "${targets[@]}"; do
	for _ in $(seq 1 100); do bin/bookhub healthcheck --url "$t/readyz" 2>/dev/null && break; sleep 0.1; done
done

IFS=,; tlist="${targets[*]}"; mlist="${metrics[*]}"; unset IFS
set +e
bin/bookhub-loadtest -targets "$tlist" -source-addrs 127.0.0.1-127.0.0.16 \
	-metrics-urls "$mlist" $gcflag \
	-json "$OUT/$NAME.json" -html "$OUT/$NAME.html" -svg "$OUT/$NAME.svg" "$@" | tee "$OUT/$NAME.txt"
status=${PIPESTATUS[0]}

# The cost lines of the summary: the servers' CPU-s per 1,000 deliveries in
# the write phase (process_cpu_seconds_total over
# bookhub_ws_frames_delivered_total of all instances, so it includes REST,
# MySQL and Redis clients, not only the fan-out), their memory per idle
# socket, and the generator's own CPU next to them.
grep -E '^(server cost|server idle per socket|generator CPU-s)' "$OUT/$NAME.txt" >"$OUT/$NAME.cost.txt"
echo "== $NAME: cost"
cat "$OUT/$NAME.cost.txt"
exit $status
