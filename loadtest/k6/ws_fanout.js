// ws_fanout.js: WebSocket fan-out of bookhub events, end to end.
//
// SUBSCRIBERS virtual users each hold a socket (?token=...&subscribe=books)
// while a writer changes seeded books through REST at WRITE_RATE/s. Every
// write carries its sequence number and send time in the title (see
// socket.js), so each socket measures delivery latency (write start to frame
// arrival) and counts events that never arrived.
//
// Run locally against one bookhub (or the compose load balancer):
//   k6 run -e BASE_URL=http://localhost:8080 \
//     -e BOOKHUB_TOKEN=$(go run ./cmd/bookhub token --sub k6 --role viewer --ttl 2h) \
//     -e BOOKHUB_WRITER_TOKEN=$(go run ./cmd/bookhub token --sub k6-writer --role editor --ttl 2h) \
//     -e BOOKHUB_ADMIN_TOKEN=$(go run ./cmd/bookhub token --sub k6-admin --role admin --ttl 2h) \
//     -e SUBSCRIBERS=200 -e WRITE_RATE=5 -e DURATION=60 loadtest/k6/ws_fanout.js
// (the token command must see the server's BOOKHUB_JWT_SECRET, or its data dir).
//
// Through compose (tokens minted inside bookhub-1, which holds the secret):
//   make loadtest
//   # or: BOOKHUB_TOKEN=$(docker compose exec -T bookhub-1 /bookhub token --sub k6 --role viewer) ... \
//   #     docker compose --profile loadtest run --rm k6 run /scripts/ws_fanout.js
//
// Settings (-e): SUBSCRIBERS (200), WRITE_RATE writes/s (5), DURATION seconds
// (60), WARMUP seconds before writing (10), SEED books (10), P95_MS (250),
// P99_MS (1000), MAX_MISSED events (0), WS_TOKEN_IN=query to send the token
// as ?token= like a browser (default: Authorization header, which keeps it
// out of k6's url tag).
import { envInt, envNumber, runId, seedBooks, deleteBooks, token } from "./common.js";
import { holdSocket, writeMarked } from "./socket.js";
import exec from "k6/execution";

const SUBSCRIBERS = envInt("SUBSCRIBERS", 200);
const WRITE_RATE = envInt("WRITE_RATE", 5);
const DURATION = envInt("DURATION", 60);
const WARMUP = envInt("WARMUP", 10);
const COOLDOWN = 5; // seconds of quiet before sockets close, so the last events land
const SEED = envInt("SEED", 10);

if (DURATION <= WARMUP + COOLDOWN) {
  throw new Error(`DURATION (${DURATION}s) must exceed WARMUP (${WARMUP}s) + ${COOLDOWN}s`);
}

const viewerToken = token("BOOKHUB_TOKEN", "viewer");
const writerToken = token("BOOKHUB_WRITER_TOKEN", "editor");
const adminToken = __ENV.BOOKHUB_ADMIN_TOKEN || "";

/** @type {import("k6/options").Options} */
export const options = {
  scenarios: {
    subscribers: {
      executor: "constant-vus",
      exec: "subscribe",
      vus: SUBSCRIBERS,
      duration: `${DURATION}s`,
      gracefulStop: "15s",
    },
    writer: {
      executor: "constant-arrival-rate",
      exec: "write",
      rate: WRITE_RATE,
      timeUnit: "1s",
      startTime: `${WARMUP}s`,
      duration: `${DURATION - WARMUP - COOLDOWN}s`,
      preAllocatedVUs: Math.max(2, Math.ceil(WRITE_RATE / 10)),
      maxVUs: Math.max(10, WRITE_RATE * 2),
    },
  },
  thresholds: {
    ws_delivery_latency: [`p(95)<${envNumber("P95_MS", 250)}`, `p(99)<${envNumber("P99_MS", 1000)}`],
    ws_events_missed: [`count<=${envNumber("MAX_MISSED", 0)}`],
    ws_events_received: ["count>0"],
    ws_subscribe_ok: ["rate>0.99"],
    ws_error_frames: ["count==0"],
    "http_req_failed{scenario:writer}": ["rate<0.01"],
    "http_req_duration{scenario:writer}": ["p(95)<300"],
    checks: ["rate>0.99"],
  },
  summaryTrendStats: ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "count"],
};

/**
 * @typedef {{ids: number[], prefix: string}} Setup
 */

/** @returns {Setup} */
export function setup() {
  const prefix = `k6fan-${runId()}`;
  return { ids: seedBooks(writerToken, SEED, prefix), prefix };
}

/**
 * A subscriber: one socket until shortly before the scenario ends; if the
 * server drops it early, the next iteration reconnects.
 * @param {Setup} data
 */
export function subscribe(data) {
  const elapsed = Date.now() - exec.scenario.startTime;
  holdSocket({ jwt: viewerToken, prefix: data.prefix, holdMs: DURATION * 1000 - elapsed - 1000 });
}

/** @param {Setup} data */
export function write(data) {
  writeMarked(writerToken, data.ids, data.prefix);
}

/** @param {Setup} data */
export function teardown(data) {
  if (adminToken) {
    deleteBooks(adminToken, data.ids);
  } else {
    console.warn(`BOOKHUB_ADMIN_TOKEN unset: ${data.ids.length} books titled ${data.prefix}#... stay behind`);
  }
}
