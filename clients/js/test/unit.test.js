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
  for (const name of ["WsgateClient", "ServerError", "ClosedError", "MemoryStorage", "WebStorage", "backoffDelay"]) {
    assert.equal(typeof b[name], "function", name);
  }
});
