// rest_crud.js: a read-heavy REST mix against bookhub's book API.
//
// Each iteration is one user action drawn at random: 70% reads (list pages
// with filters and sorting, or one book by id), 15% creates, 10% updates
// (GET for the ETag, then PATCH with If-Match; 412 when another VU won the
// race is expected), 5% deletes with the admin token. Arrival rate is fixed,
// so a slower server shows up as latency and dropped iterations, not as a
// politely lower request rate.
//
// Run locally against one bookhub (or the compose load balancer):
//   k6 run -e BASE_URL=http://localhost:8080 \
//     -e BOOKHUB_TOKEN=$(go run ./cmd/bookhub token --sub k6 --role viewer --ttl 2h) \
//     -e BOOKHUB_WRITER_TOKEN=$(go run ./cmd/bookhub token --sub k6-writer --role editor --ttl 2h) \
//     -e BOOKHUB_ADMIN_TOKEN=$(go run ./cmd/bookhub token --sub k6-admin --role admin --ttl 2h) \
//     -e RATE=50 -e DURATION=60 loadtest/k6/rest_crud.js
//
// Through compose:
//   make loadtest K6_SCRIPT=rest_crud.js
//   # or: docker compose --profile loadtest run --rm k6 run /scripts/rest_crud.js (tokens in the env)
//
// Settings (-e): RATE iterations/s (50), DURATION seconds (60), SEED books
// (50), READ_P95_MS (200), WRITE_P95_MS (400).
import http from "k6/http";
import { check } from "k6";
import { API, AUTHORS, asBook, deleteByPrefix, envInt, jsonBody, newBook, params, runId, seedBooks, token } from "./common.js";

const RATE = envInt("RATE", 50);
const DURATION = envInt("DURATION", 60);
const SEED = envInt("SEED", 50);

const viewerToken = token("BOOKHUB_TOKEN", "viewer");
const writerToken = token("BOOKHUB_WRITER_TOKEN", "editor");
const adminToken = token("BOOKHUB_ADMIN_TOKEN", "admin");

/** @type {import("k6/options").Options} */
export const options = {
  scenarios: {
    crud: {
      executor: "constant-arrival-rate",
      rate: RATE,
      timeUnit: "1s",
      duration: `${DURATION}s`,
      preAllocatedVUs: Math.max(5, Math.ceil(RATE / 5)),
      maxVUs: Math.max(20, RATE * 4),
    },
  },
  thresholds: {
    http_req_failed: ["rate<0.01"],
    "http_req_duration{op:read}": [`p(95)<${envInt("READ_P95_MS", 200)}`],
    "http_req_duration{op:write}": [`p(95)<${envInt("WRITE_P95_MS", 400)}`],
    "http_req_duration{op:delete}": [`p(95)<${envInt("WRITE_P95_MS", 400)}`],
    checks: ["rate>0.99"],
    dropped_iterations: [`count<${Math.max(1, Math.floor(RATE * DURATION * 0.01))}`],
  },
  summaryTrendStats: ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "count"],
};

/** @typedef {{ids: number[], prefix: string}} Setup */

/** Books this VU created and may update or delete (one runtime per VU). */
/** @type {number[]} */
const mine = [];

/** @returns {Setup} */
export function setup() {
  const prefix = `k6crud-${runId()}`;
  return { ids: seedBooks(writerToken, SEED, prefix), prefix };
}

/** @param {Setup} data */
export default function (data) {
  const r = Math.random();
  if (r < 0.7) {
    read(data);
  } else if (r < 0.85) {
    create(data.prefix);
  } else if (r < 0.95) {
    update(data);
  } else {
    remove(data.prefix);
  }
}

const sorts = ["title", "-price", "price", "-updated_at"];

/**
 * @template T
 * @param {T[]} xs
 * @returns {T | undefined}
 */
function pick(xs) {
  return xs[Math.floor(Math.random() * xs.length)];
}

/** @param {Setup} data */
function read(data) {
  if (Math.random() < 0.5) {
    const q = [`limit=${pick([10, 20, 50])}`, `sort=${pick(sorts)}`];
    if (Math.random() < 0.3) {
      q.push(`author=${encodeURIComponent(pick(AUTHORS) ?? "")}`);
    }
    if (Math.random() < 0.2) {
      q.push("min_price=10", "max_price=30");
    }
    const res = http.get(`${API}/books?${q.join("&")}`, params(viewerToken, { name: "GET /books", op: "read" }));
    const body = jsonBody(res);
    check(res, {
      "list: 200 OK": (r) => r.status === 200,
      "list: has books array": () => typeof body === "object" && body !== null && Array.isArray(/** @type {{books?: unknown}} */ (body).books),
    });
    return;
  }
  // A deleted book is a normal outcome in a mixed workload: 404 is fine.
  const id = pick(mine) ?? pick(data.ids);
  const res = http.get(`${API}/books/${id}`, params(viewerToken, { name: "GET /books/:id", op: "read" }, [200, 404]));
  check(res, {
    "get: 200 or 404": (r) => r.status === 200 || r.status === 404,
    "get: ETag on 200": (r) => r.status !== 200 || /^"\d+"$/.test(r.headers["Etag"] ?? ""),
  });
}

/** @param {string} prefix */
function create(prefix) {
  const res = http.post(`${API}/books`, JSON.stringify(newBook(prefix)), params(writerToken, { name: "POST /books", op: "write" }));
  const book = asBook(jsonBody(res));
  if (check(res, { "create: 201 Created": (r) => r.status === 201, "create: book in body": () => book !== null }) && book) {
    mine.push(book.id);
  }
}

/** @param {Setup} data */
function update(data) {
  const id = pick(mine) ?? pick(data.ids);
  const got = http.get(`${API}/books/${id}`, params(viewerToken, { name: "GET /books/:id", op: "read" }, [200, 404]));
  const etag = got.headers["Etag"];
  if (got.status !== 200 || !etag) {
    return; // deleted meanwhile; counted by the read check above
  }
  const change = { price: Math.round((5 + Math.random() * 45) * 100) / 100, stock: Math.floor(Math.random() * 50) };
  /** @type {import("k6/http").Params} */
  const p = params(writerToken, { name: "PATCH /books/:id", op: "write" }, [200, 404, 412]);
  p.headers = { ...p.headers, "If-Match": etag };
  const res = http.patch(`${API}/books/${id}`, JSON.stringify(change), p);
  const book = asBook(jsonBody(res));
  check(res, {
    "update: 200, or 412/404 after a concurrent change": (r) => r.status === 200 || r.status === 412 || r.status === 404,
    "update: version bumped": (r) => r.status !== 200 || (book !== null && `"${book.version}"` !== etag),
  });
}

/** @param {string} prefix */
function remove(prefix) {
  let id = mine.pop();
  if (id === undefined) {
    create(prefix); // delete only what this VU made, never the shared seed
    id = mine.pop();
    if (id === undefined) {
      return;
    }
  }
  const res = http.del(`${API}/books/${id}`, null, params(adminToken, { name: "DELETE /books/:id", op: "delete" }));
  check(res, { "delete: 204 No Content": (r) => r.status === 204 || r.status === 200 });
}

/** @param {Setup} data */
export function teardown(data) {
  // The seed and whatever VUs created: every title starts with the prefix.
  deleteByPrefix(adminToken, data.prefix, Math.ceil((SEED + RATE * DURATION * 0.2) / 100) + 1);
}
