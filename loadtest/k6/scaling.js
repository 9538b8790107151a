// scaling.js: how many WebSocket subscribers the cluster carries before
// delivery latency breaks its budget.
//
// Subscribers ramp up through the load balancer in steps (STAGES, e.g.
// 250,500,1000,2000 sockets), each step ramped over RAMP seconds and held for
// HOLD seconds, while a writer changes books at a steady WRITE_RATE/s. Every
// latency sample is tagged with its step, each step has its own thresholds
// (abortOnFail false, so the run goes on past the first failure), and the
// summary names the first step whose latency broke the budget.
//
// Run locally (start the cluster first: `make up`):
//   k6 run -e BASE_URL=http://localhost:8080 \
//     -e BOOKHUB_TOKEN=$(go run ./cmd/bookhub token --sub k6 --role viewer --ttl 2h) \
//     -e BOOKHUB_WRITER_TOKEN=$(go run ./cmd/bookhub token --sub k6-writer --role editor --ttl 2h) \
//     -e BOOKHUB_ADMIN_TOKEN=$(go run ./cmd/bookhub token --sub k6-admin --role admin --ttl 2h) \
//     -e STAGES=250,500,1000,2000 -e RAMP=30 -e HOLD=60 loadtest/k6/scaling.js
// (tokens must be signed with the cluster's BOOKHUB_JWT_SECRET; `make loadtest`
// mints them inside bookhub-1).
//
// Through compose:
//   make loadtest K6_SCRIPT=scaling.js
//   # or: docker compose --profile loadtest run --rm k6 run /scripts/scaling.js (tokens in the env)
//
// Settings (-e): STAGES (250,500,1000,2000), RAMP seconds (30), HOLD seconds
// (60), WRITE_RATE writes/s (2), SEED books (10), P95_MS (250), P99_MS
// (1000), SUMMARY_FILE (also write the summary data as JSON there).
import exec from "k6/execution";
import { deleteBooks, envInt, envNumber, envNumbers, envString, runId, seedBooks, token } from "./common.js";
import { holdSocket, writeMarked } from "./socket.js";

const STEPS = envNumbers("STAGES", [250, 500, 1000, 2000]);
const RAMP = envInt("RAMP", 30);
const HOLD = envInt("HOLD", 60);
const WRITE_RATE = envInt("WRITE_RATE", 2);
const SEED = envInt("SEED", 10);
const P95_MS = envNumber("P95_MS", 250);
const P99_MS = envNumber("P99_MS", 1000);
const RAMP_DOWN = 20;
/** Sockets reconnect after this long, so a step also sees connection churn. */
const SOCKET_MS = (RAMP + HOLD) * 1000;

const viewerToken = token("BOOKHUB_TOKEN", "viewer");
const writerToken = token("BOOKHUB_WRITER_TOKEN", "editor");
const adminToken = __ENV.BOOKHUB_ADMIN_TOKEN || "";

/** @type {import("k6/options").Stage[]} */
const stages = [];
for (const n of STEPS) {
  stages.push({ duration: `${RAMP}s`, target: n }, { duration: `${HOLD}s`, target: n });
}
stages.push({ duration: `${RAMP_DOWN}s`, target: 0 });

/**
 * The step (1-based) a moment of the subscribers scenario belongs to: its
 * ramp-up and its plateau; the final ramp-down counts as the last step.
 * @param {number} msSinceStart
 * @returns {number}
 */
function stepAt(msSinceStart) {
  const step = Math.floor(msSinceStart / ((RAMP + HOLD) * 1000)) + 1;
  return Math.min(Math.max(step, 1), STEPS.length);
}

/** @returns {Record<string, string>} */
function stepTags() {
  return { step: String(stepAt(Date.now() - exec.scenario.startTime)) };
}

/** @type {Record<string, import("k6/options").Threshold[]>} */
const thresholds = {
  ws_delivery_latency: [
    { threshold: `p(95)<${P95_MS}`, abortOnFail: false },
    { threshold: `p(99)<${P99_MS}`, abortOnFail: false },
  ],
  ws_subscribe_ok: [{ threshold: "rate>0.99", abortOnFail: false }],
  ws_events_received: [{ threshold: "count>0", abortOnFail: false }],
  "http_req_failed{scenario:writer}": [{ threshold: "rate<0.01", abortOnFail: false }],
};
for (let i = 1; i <= STEPS.length; i++) {
  // Sub-metric thresholds make k6 keep per-step values for handleSummary.
  thresholds[`ws_delivery_latency{step:${i}}`] = [
    { threshold: `p(95)<${P95_MS}`, abortOnFail: false },
    { threshold: `p(99)<${P99_MS}`, abortOnFail: false },
  ];
  thresholds[`ws_connecting{step:${i}}`] = [{ threshold: "p(95)<1000", abortOnFail: false }];
  thresholds[`ws_subscribe_ok{step:${i}}`] = [{ threshold: "rate>0.99", abortOnFail: false }];
}

const totalSeconds = STEPS.length * (RAMP + HOLD) + RAMP_DOWN;

/** @type {import("k6/options").Options} */
export const options = {
  scenarios: {
    subscribers: {
      executor: "ramping-vus",
      exec: "subscribe",
      startVUs: 0,
      stages,
      gracefulRampDown: "10s",
      gracefulStop: "10s",
    },
    writer: {
      executor: "constant-arrival-rate",
      exec: "write",
      rate: WRITE_RATE,
      timeUnit: "1s",
      startTime: "5s",
      duration: `${totalSeconds - 5 - RAMP_DOWN}s`,
      preAllocatedVUs: 2,
      maxVUs: Math.max(10, WRITE_RATE * 2),
    },
  },
  thresholds,
  summaryTrendStats: ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "count"],
};

/** @typedef {{ids: number[], prefix: string}} Setup */

/** @returns {Setup} */
export function setup() {
  const prefix = `k6scale-${runId()}`;
  return { ids: seedBooks(writerToken, SEED, prefix), prefix };
}

/** @param {Setup} data */
export function subscribe(data) {
  holdSocket({ jwt: viewerToken, prefix: data.prefix, holdMs: SOCKET_MS, tags: stepTags, connectTags: stepTags() });
}

/** @param {Setup} data */
export function write(data) {
  writeMarked(writerToken, data.ids, data.prefix);
}

/** @param {Setup} data */
export function teardown(data) {
  if (adminToken) {
    deleteBooks(adminToken, data.ids);
  }
}

/**
 * The part of k6's end-of-test data this summary reads.
 * @typedef {{values: Record<string, number>, thresholds?: Record<string, {ok: boolean}>}} MetricData
 * @typedef {{metrics: Record<string, MetricData | undefined>}} SummaryData
 */

/**
 * @param {MetricData | undefined} m
 * @returns {boolean} false when any threshold on m failed
 */
function thresholdsOK(m) {
  return Object.values(m?.thresholds ?? {}).every((t) => t.ok);
}

/**
 * @param {number | undefined} v
 * @param {string} unit
 * @returns {string}
 */
function fmt(v, unit) {
  return v === undefined ? "-" : `${v.toFixed(unit === "ms" ? 1 : 3)}${unit}`;
}

/**
 * Reports per step: target sockets, delivery latency p95/p99, connect p95,
 * subscribe success, and the first step whose thresholds broke.
 * @param {SummaryData} data
 * @returns {Record<string, string>}
 */
export function handleSummary(data) {
  const lines = ["", "bookhub scaling: delivery latency by step", ""];
  lines.push("step  sockets  events   p95        p99        connect p95  subscribed  thresholds");
  /** @type {number | null} */
  let firstBroken = null;
  STEPS.forEach((n, i) => {
    const step = i + 1;
    const lat = data.metrics[`ws_delivery_latency{step:${step}}`];
    const conn = data.metrics[`ws_connecting{step:${step}}`];
    const sub = data.metrics[`ws_subscribe_ok{step:${step}}`];
    const ok = thresholdsOK(lat) && thresholdsOK(conn) && thresholdsOK(sub);
    if (!ok && firstBroken === null) {
      firstBroken = step;
    }
    const rate = sub?.values["rate"];
    lines.push(
      [
        String(step).padEnd(5),
        String(n).padEnd(8),
        String(lat?.values["count"] ?? 0).padEnd(8),
        fmt(lat?.values["p(95)"], "ms").padEnd(10),
        fmt(lat?.values["p(99)"], "ms").padEnd(10),
        fmt(conn?.values["p(95)"], "ms").padEnd(12),
        (rate === undefined ? "-" : `${(rate * 100).toFixed(2)}%`).padEnd(11),
        ok ? "ok" : "BROKEN",
      ].join(" "),
    );
  });
  const missed = data.metrics["ws_events_missed"]?.values["count"] ?? 0;
  lines.push("", `events missed (all steps): ${missed}`, "", "thresholds:");
  // handleSummary replaces k6's default summary, so list every threshold here.
  for (const [name, m] of Object.entries(data.metrics).sort(([a], [b]) => a.localeCompare(b))) {
    for (const [expr, t] of Object.entries(m?.thresholds ?? {})) {
      lines.push(`  ${t.ok ? "ok    " : "FAILED"} ${name} ${expr}`);
    }
  }
  lines.push(
    firstBroken === null
      ? `verdict: every step met p95<${P95_MS}ms and p99<${P99_MS}ms up to ${STEPS[STEPS.length - 1]} sockets`
      : `verdict: thresholds first broke at step ${firstBroken} (${STEPS[firstBroken - 1]} sockets); the last good step carried ${firstBroken > 1 ? STEPS[firstBroken - 2] : 0} sockets`,
    "",
  );
  /** @type {Record<string, string>} */
  const out = { stdout: lines.join("\n") };
  const file = envString("SUMMARY_FILE", "");
  if (file) {
    out[file] = JSON.stringify(data, null, 2);
  }
  return out;
}
