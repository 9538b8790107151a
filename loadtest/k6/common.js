// Shared helpers for the bookhub k6 scripts: settings from `-e NAME=value`
// (or the environment), authenticated request parameters, book payloads and
// response decoding. Imported by rest_crud.js, ws_fanout.js and scaling.js;
// not a test on its own.
import http from "k6/http";
import { check, fail } from "k6";

/**
 * A book as the REST API returns it.
 * @typedef {{id: number, title: string, author: string, isbn: string | null,
 *   price: number, stock: number, version: number, created_at: string, updated_at: string}} Book
 */

/** Base URL of bookhub or of the load balancer in front of it. */
export const BASE_URL = (__ENV.BASE_URL || "http://localhost:8080").replace(/\/+$/, "");
/** REST API root. */
export const API = `${BASE_URL}/api/v1`;
/** WebSocket endpoint (ws:// or wss:// to match BASE_URL). */
export const WS_URL = `${BASE_URL.replace(/^http/, "ws")}/ws`;

/**
 * A string setting with a default.
 * @param {string} name
 * @param {string} fallback
 * @returns {string}
 */
export function envString(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === "" ? fallback : v;
}

/**
 * A numeric setting with a default; a value that is not a number stops the
 * test at once instead of silently running with NaN.
 * @param {string} name
 * @param {number} fallback
 * @returns {number}
 */
export function envNumber(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === "") {
    return fallback;
  }
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) {
    throw new Error(`${name}=${raw} is not a non-negative number`);
  }
  return n;
}

/**
 * An integer setting with a default (VU counts, rates, seconds).
 * @param {string} name
 * @param {number} fallback
 * @returns {number}
 */
export function envInt(name, fallback) {
  const n = envNumber(name, fallback);
  if (!Number.isInteger(n)) {
    throw new Error(`${name}=${__ENV[name]} is not a whole number`);
  }
  return n;
}

/**
 * A comma-separated list of positive numbers, e.g. STAGES=100,500,1000.
 * @param {string} name
 * @param {number[]} fallback
 * @returns {number[]}
 */
export function envNumbers(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === "") {
    return fallback;
  }
  return raw.split(",").map((part) => {
    const n = Number(part.trim());
    if (!Number.isInteger(n) || n <= 0) {
      throw new Error(`${name}=${raw}: ${part} is not a positive integer`);
    }
    return n;
  });
}

/**
 * A JWT from the environment. Tokens are minted with the same secret the
 * server uses: `go run ./cmd/bookhub token --sub k6 --role editor`.
 * @param {"BOOKHUB_TOKEN" | "BOOKHUB_WRITER_TOKEN" | "BOOKHUB_ADMIN_TOKEN"} name
 * @param {"viewer" | "editor" | "admin"} role
 * @returns {string}
 */
export function token(name, role) {
  const v = __ENV[name];
  if (!v) {
    throw new Error(`${name} is not set: pass -e ${name}=$(go run ./cmd/bookhub token --sub k6 --role ${role} --ttl 2h)`);
  }
  return v;
}

/**
 * Request parameters with a bearer token, JSON body and metric tags.
 * @param {string} jwt
 * @param {Record<string, string>} tags - "name" groups URLs such as /books/:id
 * @param {number[]} [okStatuses] - statuses that do not count as http_req_failed
 * @returns {import("k6/http").Params}
 */
export function params(jwt, tags, okStatuses) {
  /** @type {import("k6/http").Params} */
  const p = {
    headers: { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json", Accept: "application/json" },
    tags,
  };
  if (okStatuses) {
    p.responseCallback = http.expectedStatuses(...okStatuses);
  }
  return p;
}

/**
 * Decodes a book from a response body or an event frame, checking the
 * fields the scripts rely on.
 * @param {unknown} v
 * @returns {Book | null}
 */
export function asBook(v) {
  if (typeof v !== "object" || v === null) {
    return null;
  }
  const b = /** @type {Record<string, unknown>} */ (v);
  if (typeof b.id !== "number" || typeof b.title !== "string" || typeof b.version !== "number") {
    return null;
  }
  return /** @type {Book} */ (/** @type {unknown} */ (b));
}

/**
 * The body of a response as JSON, or null when it is not JSON.
 * @param {import("k6/http").RefinedResponse<import("k6/http").ResponseType | undefined>} res
 * @returns {unknown}
 */
export function jsonBody(res) {
  try {
    return res.json();
  } catch (_) {
    return null;
  }
}

/** Authors of generated books; list filters use them (author= matches exactly). */
export const AUTHORS = ["Ursula K. Le Guin", "Terry Pratchett", "Octavia E. Butler", "Iain M. Banks", "N. K. Jemisin", "Ted Chiang"];

/**
 * A new-book payload whose title starts with prefix, so teardown can find it.
 * @param {string} prefix
 * @returns {{title: string, author: string, price: number, stock: number}}
 */
export function newBook(prefix) {
  return {
    title: `${prefix} ${Math.random().toString(36).slice(2, 10)}`,
    author: AUTHORS[Math.floor(Math.random() * AUTHORS.length)] ?? "Anonymous",
    price: Math.round((5 + Math.random() * 45) * 100) / 100,
    stock: Math.floor(Math.random() * 50),
  };
}

/**
 * Creates n books for a test and returns their ids; run it from setup().
 * @param {string} jwt - editor or admin token
 * @param {number} n
 * @param {string} prefix
 * @returns {number[]}
 */
export function seedBooks(jwt, n, prefix) {
  /** @type {number[]} */
  const ids = [];
  for (let i = 0; i < n; i++) {
    const res = http.post(`${API}/books`, JSON.stringify(newBook(prefix)), params(jwt, { name: "POST /books", op: "seed" }));
    const book = asBook(jsonBody(res));
    if (!check(res, { "seed: 201 Created": (r) => r.status === 201 }) || book === null) {
      fail(`seeding book ${i + 1}/${n} failed: ${res.status} ${res.body}`);
    }
    ids.push(book.id);
  }
  return ids;
}

/**
 * Deletes books (best effort, from teardown()). 404 is fine: a test may
 * already have deleted some.
 * @param {string} jwt - admin token
 * @param {number[]} ids
 */
export function deleteBooks(jwt, ids) {
  for (const id of ids) {
    const res = http.del(`${API}/books/${id}`, null, params(jwt, { name: "DELETE /books/:id", op: "cleanup" }, [200, 204, 404]));
    check(res, { "cleanup: deleted": (r) => r.status === 200 || r.status === 204 || r.status === 404 });
  }
}

/**
 * Deletes every book whose title starts with prefix, page by page (best
 * effort, at most maxPages pages of 100), for books VUs created on the fly.
 * @param {string} jwt - admin token
 * @param {string} prefix
 * @param {number} maxPages
 */
export function deleteByPrefix(jwt, prefix, maxPages) {
  for (let page = 0; page < maxPages; page++) {
    const res = http.get(`${API}/books?q=${encodeURIComponent(prefix)}&limit=100`, params(jwt, { name: "GET /books", op: "cleanup" }));
    const body = /** @type {{books?: unknown[]}} */ (jsonBody(res) ?? {});
    const ids = (body.books ?? [])
      .map(asBook)
      .filter((b) => b !== null && b.title.startsWith(prefix))
      .map((b) => /** @type {Book} */ (b).id);
    if (res.status !== 200 || ids.length === 0) {
      return;
    }
    deleteBooks(jwt, ids);
  }
}

/**
 * A short id for this run, so concurrent runs against one cluster never
 * count each other's events.
 * @returns {string}
 */
export function runId() {
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
}
