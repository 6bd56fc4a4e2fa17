// Reconnecting as docs/protocol.md's "Reconnecting" says, by close code,
// against a real gateway.
import assert from "node:assert/strict";
import { test } from "node:test";
import { WsgateClient, MemoryStorage, ClosedError } from "../dist/index.js";
import { WebSocket, freeAddr, publish, record, sleep, startGateway, tempDir, token, waitFor } from "./helpers.js";

function client(g, opts = {}) {
  return new WsgateClient({ url: g.url, WebSocket, storage: new MemoryStorage(), backoff: { min: 50, max: 500 }, ...opts });
}

const states = (r) => r.states.map((s) => s.state);

test("1008 token expired: the provider is asked again, with reason expired, and the client carries on", async (t) => {
  const g = await startGateway(t);
  const calls = [];
  const c = client(g, {
    token: async (ctx) => {
      calls.push(ctx.reason);
      // The first token expired 4 s ago: accepted within the gateway's 5 s
      // leeway, then closed with 1008 about a second later.
      return token("e1", { ttl: calls.length === 1 ? -4 : 3600 });
    },
  });
  t.after(() => c.close());
  const r = record(c);
  c.connect();
  await c.ready();
  const closed = await waitFor(() => r.states.find((s) => s.state === "disconnected"), 5000, "the 1008 close");
  assert.equal(closed.code, 1008);
  assert.equal(closed.reason, "token expired");
  assert.equal(closed.willReconnect, true);
  assert.equal(closed.delay, 0, "a fresh token needs no backoff");
  await waitFor(() => r.welcomes.length === 2, 5000, "the second welcome");
  assert.deepEqual(calls, ["connect", "expired"]);
  await publish(g.natsURL, { user: "e1" }, { after: "refresh" });
  await waitFor(() => r.messages.length === 1, 5000, "a notification after the refresh");
  assert.deepEqual(states(r), ["connecting", "connected", "disconnected", "connecting", "connected"]);
});

test("4003 replaced: the older client stops, and reconnects only when told to", async (t) => {
  const g = await startGateway(t, { flags: ["--max-user-conns", "1", "--user-conns-policy", "close-oldest"] });
  const a = client(g, { token: () => token("r1") });
  const b = client(g, { token: () => token("r1") });
  t.after(() => (a.close(), b.close()));
  const ra = record(a);
  const rb = record(b);
  a.connect();
  await a.ready();
  const waiting = a.subscribe("topic.x").catch((e) => e); // restored subscriptions do not matter here
  await waiting;
  b.connect();
  await b.ready();
  const closed = await waitFor(() => ra.states.find((s) => s.state === "disconnected"), 5000, "a's close");
  assert.equal(closed.code, 4003);
  assert.equal(closed.willReconnect, false);
  await assert.rejects(a.ready(), ClosedError, "a stopped: ready() does not wait forever");
  await sleep(700); // longer than the maximum backoff
  assert.equal(ra.welcomes.length, 1, "a did not reconnect");
  assert.equal(a.state, "disconnected");
  assert.equal(b.state, "connected");

  a.reconnect(); // a user action
  await a.ready();
  await waitFor(() => rb.states.find((s) => s.state === "disconnected" && s.code === 4003), 5000, "b replaced in turn");
  assert.equal(ra.welcomes.length, 2);
});

test("1001 on drain: the client reconnects with backoff, restores its topics and gets what follows", async (t) => {
  const store = tempDir(t);
  const listen = await freeAddr();
  const nats = await freeAddr();
  let g = await startGateway(t, { store, listen, nats });
  const c = client(g, { token: () => token("d1") });
  t.after(() => c.close());
  const r = record(c);
  c.connect();
  await c.subscribe("topic.live");

  g.proc.kill("SIGTERM");
  const closed = await waitFor(() => r.states.find((s) => s.state === "disconnected"), 10000, "the 1001 close");
  assert.equal(closed.code, 1001);
  assert.equal(closed.reason, "server going away");
  assert.equal(closed.willReconnect, true);
  assert.ok(closed.delay >= 0 && closed.delay < 50, `first delay ${closed.delay}ms, want within [0, min)`);
  await g.exited;
  await sleep(300); // attempts fail meanwhile
  g = await startGateway(t, { store, listen, nats });
  await waitFor(() => r.welcomes.length === 2, 10000, "the welcome from the new gateway");
  assert.equal(c.state, "connected");
  // Failed attempts in between: each delay within its backoff window.
  for (const s of r.states.filter((s) => s.state === "disconnected")) {
    assert.ok(s.delay >= 0 && s.delay < Math.min(500, 50 * 2 ** s.attempt), `delay ${s.delay}ms at attempt ${s.attempt}`);
  }
  await waitFor(async () => {
    // The subscribe is restored right after the welcome; publish until its answer has come.
    await publish(g.natsURL, { topic: "live" }, { after: "drain" });
    return r.messages.some((m) => m.channel === "topic.live");
  }, 5000, "a topic notification after the reconnect");
});

test("no pong: a gateway that stops answering is given up, and the client comes back when it does", async (t) => {
  const g = await startGateway(t);
  const c = client(g, { token: () => token("p1"), pingInterval: 200, pongTimeout: 300, connectTimeout: 500 });
  t.after(() => c.close());
  const r = record(c);
  c.connect();
  await c.ready();
  g.proc.kill("SIGSTOP"); // the TCP connection stays, nothing answers
  t.after(() => g.proc.kill("SIGCONT"));
  const closed = await waitFor(() => r.states.find((s) => s.state === "disconnected"), 5000, "the ping timeout");
  assert.equal(closed.reason, "ping timeout");
  assert.equal(closed.code, 4000);
  await sleep(1200); // an attempt or two time out meanwhile
  g.proc.kill("SIGCONT");
  await waitFor(() => r.welcomes.length >= 2 && c.state === "connected", 10000, "the reconnect");
  assert.ok(r.states.some((s) => s.reason === "connect timeout"), "attempts against the stopped gateway timed out");
});

test("401 on every attempt: the client backs off to its maximum instead of hammering", async (t) => {
  const g = await startGateway(t);
  let calls = 0;
  const c = client(g, {
    backoff: { min: 50, max: 400 },
    token: () => {
      calls++;
      return "not-a-jwt";
    },
  });
  t.after(() => c.close());
  const r = record(c);
  c.connect();
  await sleep(2000);
  const ended = r.states.filter((s) => s.state === "disconnected");
  assert.equal(r.welcomes.length, 0);
  assert.ok(ended.length >= 3, `${ended.length} attempts in 2 s`);
  // 50·2^n grows past the maximum at the fourth attempt: then 0-400 ms each,
  // about 200 ms on average, so some 10 attempts in 2 s, never dozens.
  assert.ok(calls <= 20, `${calls} attempts in 2 s`);
  ended.forEach((s, i) => {
    assert.equal(s.code, 1006, "a refused upgrade shows as 1006");
    assert.equal(s.attempt, i + 1, "consecutive failures count");
    assert.ok(s.delay < Math.min(400, 50 * 2 ** i), `delay ${s.delay} at attempt ${i}`);
  });
});

test("a token provider that fails or never answers costs an attempt, not the client", async (t) => {
  const g = await startGateway(t);
  let calls = 0;
  const c = client(g, {
    connectTimeout: 300,
    token: () => {
      calls++;
      if (calls === 1) throw new Error("auth service down");
      if (calls === 2) return new Promise(() => {}); // never answers
      return token("t1");
    },
  });
  t.after(() => c.close());
  const r = record(c);
  c.connect();
  await c.ready();
  assert.equal(calls, 3);
  assert.deepEqual(r.errors.map((e) => e.name), ["TokenError"]);
  assert.match(r.errors[0].message, /auth service down/);
  assert.deepEqual(
    r.states.filter((s) => s.state === "disconnected").map((s) => s.reason),
    ["token provider failed", "connect timeout"],
  );
});

test("the browser's online event brings a waiting client back at once", async (t) => {
  // A browser's window, as far as the client looks: addEventListener.
  const win = new EventTarget();
  globalThis.addEventListener = win.addEventListener.bind(win);
  globalThis.removeEventListener = win.removeEventListener.bind(win);
  const random = Math.random;
  Math.random = () => 0.99; // every backoff at the top of its window
  t.after(() => {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
    Math.random = random;
  });
  const listen = await freeAddr();
  const c = new WsgateClient({ url: `ws://${listen}/ws`, WebSocket, token: () => token("o1"), backoff: { min: 20000, max: 20000 } });
  t.after(() => c.close());
  const r = record(c);
  c.connect(); // nothing listens there yet
  const failed = await waitFor(() => r.states.find((s) => s.state === "disconnected"), 5000, "the failed attempt");
  assert.ok(failed.delay > 15000, `next attempt in ${failed.delay}ms`);
  await startGateway(t, { listen });
  const online = Date.now();
  win.dispatchEvent(new Event("online"));
  await c.ready();
  assert.ok(Date.now() - online < 2000, `connected ${Date.now() - online}ms after online`);
});

test("4002 too many connections: the new client stops, the old one stays", async (t) => {
  const g = await startGateway(t, { flags: ["--max-user-conns", "1"] }); // policy reject-new
  const a = client(g, { token: () => token("m1") });
  const b = client(g, { token: () => token("m1") });
  t.after(() => (a.close(), b.close()));
  const rb = record(b);
  a.connect();
  await a.ready();
  b.connect();
  const err = await b.ready().then(() => null, (e) => e);
  assert.ok(err instanceof ClosedError && err.code === 4002, `ready() rejected with ${err}`);
  const ended = rb.states.filter((s) => s.state === "disconnected");
  assert.deepEqual(ended.map((s) => [s.code, s.willReconnect]), [[4002, false]]);
  await sleep(600);
  assert.equal(rb.states.filter((s) => s.state === "connecting").length, 1, "b did not try again");
  assert.equal(a.state, "connected");
});
