// WebSocket side of the bookhub k6 scripts (ws_fanout.js, scaling.js): a
// subscriber that holds one socket and accounts for every marked event, and
// a writer that marks each change with a sequence number and its send time.
//
// Marker: the writer sets a book's title to "<prefix>#<writer>.<seq>@<ms>".
// <writer> is the writer VU, <seq> counts that VU's successful writes (a
// failed write reuses its number, so a gap means an event was lost, never a
// write that failed) and <ms> is Date.now() just before the request. All VUs
// share one clock, so arrival time minus <ms> is the end-to-end latency:
// REST write, commit, publish, Redis, every instance's hub, the socket.
import http from "k6/http";
import { check } from "k6";
import exec from "k6/execution";
import { Counter, Rate, Trend } from "k6/metrics";
import { setTimeout, clearTimeout } from "k6/timers";
import { WebSocket } from "k6/websockets";
import { API, WS_URL, asBook, params } from "./common.js";

/** Custom metrics of the WebSocket scripts (created in the init context). */
export const metrics = {
  /** Write start to frame arrival, per delivered marked event. */
  latency: new Trend("ws_delivery_latency", true),
  /** Marked events received, counting each socket separately. */
  received: new Counter("ws_events_received"),
  /** Events a socket should have seen (gaps in a writer's sequence) but did not. */
  missed: new Counter("ws_events_missed"),
  /** The same marked event twice on one socket (a retried write, or a bug). */
  duplicated: new Counter("ws_events_duplicated"),
  /** Sockets that got their "subscribed" frame in time. */
  subscribed: new Rate("ws_subscribe_ok"),
  /** Sockets the server or the network closed before the test did. */
  unexpectedClose: new Counter("ws_unexpected_closes"),
  /** Error frames from the server ({"type":"error"}). */
  errorFrames: new Counter("ws_error_frames"),
};

/**
 * A server->client frame, as far as these scripts read it.
 * @typedef {{type: string, channel?: string, event?: string, book_id?: number,
 *   book?: unknown, code?: string, message?: string}} Frame
 */

/**
 * @param {unknown} data
 * @returns {Frame | null}
 */
function parseFrame(data) {
  if (typeof data !== "string") {
    return null;
  }
  try {
    const v = JSON.parse(data);
    return typeof v === "object" && v !== null && typeof v.type === "string" ? /** @type {Frame} */ (v) : null;
  } catch (_) {
    return null;
  }
}

/**
 * @param {string} prefix
 * @param {string} title
 * @returns {{writer: string, seq: number, sentAt: number} | null}
 */
export function parseMarker(prefix, title) {
  if (!title.startsWith(`${prefix}#`)) {
    return null;
  }
  const m = /#(\d+)\.(\d+)@(\d+)$/.exec(title);
  if (m === null || m[1] === undefined || m[2] === undefined || m[3] === undefined) {
    return null;
  }
  return { writer: m[1], seq: Number(m[2]), sentAt: Number(m[3]) };
}

/**
 * Per-writer accounting of one socket: which sequence numbers arrived.
 */
class Ledger {
  constructor() {
    /** @type {Map<string, {min: number, max: number, seen: Set<number>}>} */
    this.writers = new Map();
  }

  /**
   * Records seq from writer; returns false for a duplicate.
   * @param {string} writer
   * @param {number} seq
   * @returns {boolean}
   */
  record(writer, seq) {
    const w = this.writers.get(writer);
    if (w === undefined) {
      this.writers.set(writer, { min: seq, max: seq, seen: new Set([seq]) });
      return true;
    }
    if (w.seen.has(seq)) {
      return false;
    }
    w.seen.add(seq);
    w.min = Math.min(w.min, seq);
    w.max = Math.max(w.max, seq);
    return true;
  }

  /**
   * Sequence numbers between the first and last seen that never arrived.
   * Events before the socket subscribed or after it closed are not gaps.
   * @returns {number}
   */
  gaps() {
    let n = 0;
    for (const w of this.writers.values()) {
      n += w.max - w.min + 1 - w.seen.size;
    }
    return n;
  }
}

/**
 * Opens one socket subscribed to "books", counts marked events for holdMs,
 * then closes it. Returns at once; k6 ends the iteration when the socket
 * and its timers are done.
 * @param {{jwt: string, prefix: string, holdMs: number,
 *   tags?: () => Record<string, string>, connectTags?: Record<string, string>}} opts
 *   tags: computed per sample (scaling.js tags samples with the current step).
 */
export function holdSocket(opts) {
  // The token goes in a header by default: k6 tags WebSocket metrics with the
  // URL, and a token there would end up in every result output.
  // WS_TOKEN_IN=query sends ?token= instead, as browsers must.
  const inQuery = __ENV.WS_TOKEN_IN === "query";
  const url = `${WS_URL}?subscribe=books${inQuery ? `&token=${encodeURIComponent(opts.jwt)}` : ""}`;
  /** @type {import("k6/websockets").Params} */
  const wsParams = { tags: { name: "/ws", ...(opts.connectTags ?? {}) } };
  if (!inQuery) {
    wsParams.headers = { Authorization: `Bearer ${opts.jwt}` };
  }
  const ws = new WebSocket(url, null, wsParams);
  const ledger = new Ledger();
  const tagsNow = opts.tags ?? (() => ({}));
  /** @type {boolean | null} null until the subscription succeeded or failed */
  let subscribed = null;
  let closing = false;
  /** @param {boolean} ok */
  const settle = (ok) => {
    if (subscribed === null) {
      subscribed = ok;
      metrics.subscribed.add(ok, tagsNow());
    }
  };

  const subscribeTimer = setTimeout(() => {
    if (subscribed === null) {
      settle(false);
      closing = true;
      ws.close();
    }
  }, 10000);
  const holdTimer = setTimeout(() => {
    closing = true;
    ws.close();
  }, Math.max(opts.holdMs, 1000));

  ws.onmessage = (ev) => {
    const now = Date.now();
    const frame = parseFrame(ev?.data);
    if (frame === null) {
      return;
    }
    switch (frame.type) {
      case "subscribed":
        if (frame.channel === "books") {
          settle(true);
          clearTimeout(subscribeTimer);
        }
        return;
      case "event": {
        const book = asBook(frame.book);
        const mark = book === null ? null : parseMarker(opts.prefix, book.title);
        if (mark === null) {
          return; // someone else's change (e.g. rest_crud.js running alongside)
        }
        const tags = tagsNow();
        if (!ledger.record(mark.writer, mark.seq)) {
          metrics.duplicated.add(1, tags);
          return;
        }
        metrics.received.add(1, tags);
        metrics.latency.add(now - mark.sentAt, tags);
        return;
      }
      case "error":
        metrics.errorFrames.add(1, { code: frame.code ?? "unknown" });
        console.warn(`error frame: ${frame.code}: ${frame.message}`);
        return;
      default:
        return; // welcome, pong, unsubscribed
    }
  };
  ws.onerror = (ev) => {
    if (!closing) {
      console.warn(`socket error: ${ev?.error ?? "unknown"}`);
    }
  };
  ws.onclose = () => {
    clearTimeout(subscribeTimer);
    clearTimeout(holdTimer);
    settle(false); // no-op when it subscribed; a refused or dropped handshake counts as a failure
    if (!closing) {
      metrics.unexpectedClose.add(1, tagsNow());
    }
    metrics.missed.add(ledger.gaps(), tagsNow());
  };
}

/** This writer VU's next sequence number (one JS runtime per VU). */
let writerSeq = 0;

/**
 * Changes one of the books with a marked title. Run it from an
 * arrival-rate scenario so the write rate is fixed.
 * @param {string} jwt - editor token
 * @param {number[]} ids - books to rotate through
 * @param {string} prefix - the run's marker prefix
 */
export function writeMarked(jwt, ids, prefix) {
  const id = ids[writerSeq % ids.length];
  const sentAt = Date.now();
  const title = `${prefix}#${exec.vu.idInTest}.${writerSeq}@${sentAt}`;
  const res = http.patch(`${API}/books/${id}`, JSON.stringify({ title }), params(jwt, { name: "PATCH /books/:id", op: "mark" }));
  if (check(res, { "mark: 200 OK": (r) => r.status === 200 })) {
    writerSeq++;
  }
}
