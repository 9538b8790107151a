#!/usr/bin/env bash
# wrk-reads.sh LABEL [VAR=value ...]: one bookhub instance (bin/bookhub, or
# $BIN), 200 seeded books, then wrk -t1 -c64 -d10s on GET /books/{id} and
# GET /books?limit=20. Extra arguments are environment settings, e.g.
#   loadtest/wrk-reads.sh sqlite
#   loadtest/wrk-reads.sh mysql BOOKHUB_DATABASE_URL=mysql://root@127.0.0.1:3306/bench BOOKHUB_REDIS_URL=redis://127.0.0.1:6379/0
#   loadtest/wrk-reads.sh sqlite-nocache BOOKHUB_READ_CACHE=false
# Needs wrk (apt-get install wrk) and curl.
set -euo pipefail
label=$1; shift
BIN=${BIN:-bin/bookhub}
PORT=${PORT:-18080}
SECRET=wrk-reads-secret-0123456789abcdef0123456789
dir=$(mktemp -d)
env BOOKHUB_ADDR=127.0.0.1:$PORT BOOKHUB_DATA_DIR="$dir" BOOKHUB_JWT_SECRET=$SECRET BOOKHUB_LOG_LEVEL=error "$@" "$BIN" >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do curl -sf "localhost:$PORT/readyz" >/dev/null && break; sleep 0.1; done
TOKEN=$(env BOOKHUB_DATA_DIR="$dir" BOOKHUB_JWT_SECRET=$SECRET "$BIN" token --sub wrk --role editor)
for i in $(seq 1 200); do
	curl -sf -o /dev/null -X POST "localhost:$PORT/api/v1/books" -H "Authorization: Bearer $TOKEN" \
		-H 'Content-Type: application/json' -d "{\"title\":\"Book $i\",\"author\":\"Author $((i % 17))\",\"price\":$i.25,\"stock\":$i}"
done
id=$(curl -sf "localhost:$PORT/api/v1/books?limit=1" | sed -E 's/^[^0-9]*"id":([0-9]+).*/\1/')
for path in "/api/v1/books/$id" "/api/v1/books?limit=20"; do
	echo "== $label GET $path"
	wrk -t1 -c64 -d10s --latency "http://127.0.0.1:$PORT$path" | grep -E "Requests/sec|50%|99%"
done
