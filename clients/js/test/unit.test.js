// The parts that need no gateway: backoff windows, storage, the bundle.
import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay, defaultStorage, MemoryStorage, WebStorage, WsgateClient } from "../dist/index.js";

test("backoff: full jitter in windows that double from min up to max", () => {
  const top = () => 0.9999;
  const windows = [...Array(8).keys()].map((n) => backoffDelay(n, 1000, 30000, top));
  assert.deepEqual(windows, [999, 1999, 3999, 7999, 15998, 29997, 29997, 29997]);
  assert.equal(backoffDelay(5, 1000, 30000, () => 0), 0);
  assert.equal(backoffDelay(1e6, 1000, 30000, top), 29997, "no overflow");
});

test("storage: Web Storage as JSON, damaged values taken as none; memory in Node", () => {
  const m = new Map();
  const area = { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, v) };
  const s = new WebStorage(area);
  assert.equal(s.get("wsgate:42:user.42"), undefined);
  s.set("wsgate:42:user.42", { seq: 7, epoch: 1764650000000 });
  assert.equal(m.get("wsgate:42:user.42"), '{"seq":7,"epoch":1764650000000}');
  assert.deepEqual(s.get("wsgate:42:user.42"), { seq: 7, epoch: 1764650000000 });
  m.set("wsgate:42:user.42", "{not json");
  assert.equal(s.get("wsgate:42:user.42"), undefined);
  m.set("wsgate:42:user.42", '{"seq":-1,"epoch":1}');
  assert.equal(s.get("wsgate:42:user.42"), undefined);
  assert.ok(defaultStorage() instanceof MemoryStorage);
});

test("without a WebSocket implementation the constructor says what to pass", () => {
  if (globalThis.WebSocket) return; // Node 22 and later have one
  assert.throws(() => new WsgateClient({ url: "ws://127.0.0.1:1/ws" }), /options\.WebSocket/);
});

test("the bundle is one ES module with the same exports", async () => {
  const b = await import("../dist/wsgate.min.js");
  for (const name of ["WsgateClient", "ServerError", "ClosedError", "NotConnectedError", "TimeoutError", "MemoryStorage", "WebStorage", "backoffDelay"]) {
    assert.equal(typeof b[name], "function", name);
  }
});

/**
 * scripted returns a WebSocket class whose one socket is driven by the
 * test: it welcomes user, records what the client sends in sent, and
 * push(frame) delivers a frame to the client.
 */
function scripted(user) {
  const s = { sent: [], socket: null };
  s.WebSocket = class {
    readyState = 1;
    onopen = null;
    onmessage = null;
    onclose = null;
    onerror = null;
    constructor() {
      s.socket = this;
      setTimeout(() => s.push({ type: "welcome", conn: "t-1", user, ping_interval: 25 }));
    }
    send(data) {
      s.sent.push(JSON.parse(data));
    }
    close() {}
  };
  s.push = (frame) => s.socket.onmessage({ data: JSON.stringify(frame) });
  return s;
}

const tick = (ms = 0) => new Promise((res) => setTimeout(res, ms));

async function until(fn, what) {
  for (let i = 0; i < 250 && !fn(); i++) await tick(4);
  assert.ok(fn(), what);
}

test("a resume answered unavailable: the channel's frames stay dropped until a retry is answered", async () => {
  const epoch = 1764650000000;
  const s = scripted("u1");
  const storage = new MemoryStorage();
  storage.set("wsgate:u1:user.u1", { seq: 10, epoch });
  const c = new WsgateClient({ url: "ws://gateway.invalid/ws", WebSocket: s.WebSocket, storage, backoff: { min: 20, max: 40 } });
  const got = [];
  c.on("message", (m) => got.push(m.seq));
  c.connect();
  const resumes = () => s.sent.filter((op) => op.op === "resume");
  await until(() => resumes().length === 1, "the resume after the welcome");
  assert.deepEqual(resumes()[0], { op: "resume", channel: "user.u1", seq: 10, epoch, ref: resumes()[0].ref });
  s.push({ type: "error", ref: resumes()[0].ref, code: "unavailable", message: "durable history is unavailable; resume again later" });

  // Live frames after the failed attempt follow a gap (the gateway dropped
  // those it held): dropped, and no resume of their own.
  const frame = (seq, prev) => ({ type: "message", channel: "user.u1", seq, prev, epoch, data: { seq } });
  s.push(frame(12, 11));
  s.push(frame(13, 12));
  assert.deepEqual(got, []);
  await until(() => resumes().length === 2, "the retry after the backoff");
  await tick(30);
  assert.equal(resumes().length, 2, "one retry, not one resume per dropped frame");
  s.push(frame(14, 13)); // still before the answer: dropped
  const retry = resumes()[1];
  assert.deepEqual([retry.seq, retry.epoch], [10, epoch]);
  s.push({ type: "resumed", channel: "user.u1", ref: retry.ref, recovered: true, seq: 10, epoch });
  for (const [seq, prev] of [[11, 10], [12, 11], [13, 12], [14, 13]]) s.push(frame(seq, prev));
  assert.deepEqual(got, [11, 12, 13, 14]);
  c.close();
});

test("a replay cut at the limit: the client resumes from the count-th frame, at once", async () => {
  const epoch = 1764650000000;
  const s = scripted("u2");
  const storage = new MemoryStorage();
  storage.set("wsgate:u2:user.u2", { seq: 0, epoch });
  const c = new WsgateClient({ url: "ws://gateway.invalid/ws", WebSocket: s.WebSocket, storage });
  const got = [];
  c.on("message", (m) => got.push(m.seq));
  c.connect();
  const resumes = () => s.sent.filter((op) => op.op === "resume");
  await until(() => resumes().length === 1, "the resume after the welcome");
  // Seq 0 in a known epoch is a position: sent, not left to the watermark.
  assert.deepEqual([resumes()[0].seq, resumes()[0].epoch], [0, epoch]);
  s.push({ type: "resumed", channel: "user.u2", ref: resumes()[0].ref, recovered: false, reason: "limit", seq: 0, epoch, count: 3 });
  const frame = (seq, prev) => ({ type: "message", channel: "user.u2", seq, prev, epoch, data: {} });
  s.push(frame(1, 0));
  s.push(frame(2, 1));
  assert.equal(resumes().length, 1, "not before the count-th frame");
  s.push(frame(3, 2));
  assert.equal(resumes().length, 2, "right after it, without waiting");
  assert.deepEqual([resumes()[1].seq, resumes()[1].epoch], [3, epoch]);
  s.push({ type: "resumed", channel: "user.u2", ref: resumes()[1].ref, recovered: true, seq: 3, epoch });
  s.push(frame(4, 3));
  assert.deepEqual(got, [1, 2, 3, 4]);
  assert.equal(resumes().length, 2);
  c.close();
});

test("a missed frame resumes every channel that has a position, and only those", async () => {
  const epoch = 1764650000000;
  const s = scripted("u1");
  const storage = new MemoryStorage();
  storage.set("wsgate:u1:user.u1", { seq: 10, epoch });
  const c = new WsgateClient({ url: "ws://gateway.invalid/ws", WebSocket: s.WebSocket, storage });
  const got = [];
  c.on("message", (m) => got.push(m.seq));
  c.connect();
  const resumes = () => s.sent.filter((op) => op.op === "resume");
  await until(() => resumes().length === 1, "the resume after the welcome");
  s.push({ type: "resumed", channel: "user.u1", ref: resumes()[0].ref, recovered: true, seq: 10, epoch });
  s.push({ type: "message", channel: "user.u1", seq: 11, prev: 10, epoch, data: {} });
  assert.deepEqual(got, [11]);

  s.push({ type: "missed" });
  await until(() => resumes().length === 2, "the resume after missed");
  assert.deepEqual(resumes()[1], { op: "resume", channel: "user.u1", seq: 11, epoch, ref: resumes()[1].ref });
  await tick(20);
  assert.equal(resumes().length, 2, "broadcast has no position: not resumed");
  s.push({ type: "resumed", channel: "user.u1", ref: resumes()[1].ref, recovered: true, seq: 11, epoch });
  s.push({ type: "message", channel: "user.u1", seq: 15, prev: 11, epoch, data: {} });
  assert.deepEqual(got, [11, 15]);
  c.close();
});

test("after a reconnect the positions go in the upgrade request: no resume op, frames chained from them", async () => {
  const epoch = 1764650000000;
  const urls = [];
  const s = scripted("u1");
  const Base = s.WebSocket;
  s.WebSocket = class extends Base {
    constructor(url) {
      super(url);
      urls.push(String(url));
    }
  };
  const storage = new MemoryStorage();
  storage.set("wsgate:u1:user.u1", { seq: 10, epoch });
  const c = new WsgateClient({ url: "ws://gateway.invalid/ws", WebSocket: s.WebSocket, storage, backoff: { min: 5, max: 10 } });
  const got = [];
  const lost = [];
  c.on("message", (m) => got.push(m.seq));
  c.on("lost", (l) => lost.push(l.reason));
  c.connect();
  const resumes = () => s.sent.filter((op) => op.op === "resume");
  await until(() => resumes().length === 1, "the first connection resumes by op: the user is not known before its welcome");
  assert.ok(!urls[0].includes("resume="), urls[0]);
  s.push({ type: "resumed", channel: "user.u1", ref: resumes()[0].ref, recovered: true, seq: 10, epoch });
  s.push({ type: "message", channel: "user.u1", seq: 11, prev: 10, epoch, data: {} });

  s.socket.onclose({ code: 1006, reason: "" });
  await until(() => urls.length === 2, "the reconnect");
  const u = new URL(urls[1]);
  assert.equal(u.searchParams.get("resume"), `user.u1:11:${epoch}`);
  await until(() => c.state === "connected", "welcomed again");
  await tick(20);
  assert.equal(resumes().length, 1, "no resume op for a channel resumed in the upgrade");
  s.push({ type: "message", channel: "user.u1", seq: 12, prev: 11, epoch, data: {} }); // the replay: no answer before it
  s.push({ type: "resumed", channel: "user.u1", ref: 0, recovered: false, seq: 12, epoch, reason: "evicted" });
  assert.deepEqual(got, [11, 12]);
  assert.deepEqual(lost, ["evicted"]);
  c.close();
});
