#!/usr/bin/env bash
# Starts N bookhub instances on local MySQL + Redis, runs the Go load
# generator against all of them, then stops them. Used for loadtest/RESULTS.md.
#
#   loadtest/cluster.sh [instances] -- [bookhub-loadtest flags...]
#   loadtest/cluster.sh 2 -- -subscribers 2000 -writes 500 -rate 50
#
# Needs: MySQL at $MYSQL (root, no password) and Redis at $REDIS_URL.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-2}; shift || true
[[ "${1:-}" == "--" ]] && shift
MYSQL_HOST=${MYSQL_HOST:-127.0.0.1}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
DB=bookhub_loadtest_$$
OUT=${OUT:-loadtest/out}
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

targets=()
for i in $(seq 1 "$n"); do
	port=$((18080 + i))
	BOOKHUB_DATABASE_URL="mysql://root@$MYSQL_HOST:3306/$DB" BOOKHUB_REDIS_URL="$REDIS_URL" \
	BOOKHUB_REDIS_PREFIX="bookhub-loadtest-$$:" BOOKHUB_INSTANCE="lt-$i" BOOKHUB_LOG_LEVEL=warn \
		bin/bookhub serve --addr "127.0.0.1:$port" --metrics-addr "127.0.0.1:$((19090 + i))" >"$OUT/instance-$i.log" 2>&1 &
	pids+=($!)
	targets+=("http://127.0.0.1:$port")
done
for t in "${targets[@]}"; do
	for _ in $(seq 1 100); do bin/bookhub healthcheck --url "$t/readyz" 2>/dev/null && break; sleep 0.1; done
done

IFS=,; tlist="${targets[*]}"; unset IFS
set +e
bin/bookhub-loadtest -targets "$tlist" -source-addrs 127.0.0.1-127.0.0.16 \
	-json "$OUT/report.json" -html "$OUT/report.html" -svg "$OUT/report.svg" "$@"
status=$?

# Server-side cost: CPU seconds of the bookhub processes per 1,000 frames
# they delivered (includes connection setup, REST, MySQL and Redis clients).
cpu=0; frames=0
for i in $(seq 1 "$n"); do
	m=$(curl -s "http://127.0.0.1:$((19090 + i))/metrics")
	cpu=$(awk -v a="$cpu" '/^process_cpu_seconds_total/ {print a + $2}' <<<"$m")
	frames=$(awk -v a="$frames" '/^bookhub_ws_frames_delivered_total/ {print a + $2}' <<<"$m")
done
awk -v c="$cpu" -v f="$frames" 'BEGIN { if (f > 0) printf "server cost                 %.2f CPU-s for %d frames = %.4f CPU-s per 1,000 deliveries\n", c, f, c * 1000 / f }' | tee "$OUT/server-cost.txt"
exit $status
