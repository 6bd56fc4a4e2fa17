// The control plane as the client sees it, against a scripted gateway:
// close codes 4004/4005/4006, topics the gateway adds and removes, and the
// upstream ops publish and request.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ClosedError,
  MemoryStorage,
  NotConnectedError,
  ServerError,
  TimeoutError,
  WsgateClient,
  WsgateError,
} from "../dist/index.js";
import { scripted, tick, until } from "./scripted.js";

function client(s, opts = {}) {
  const c = new WsgateClient({ url: "ws://gateway.invalid/ws", WebSocket: s.WebSocket, backoff: { min: 20, max: 40 }, ...opts });
  const r = { states: [], errors: [], subs: [], logs: [] };
  c.on("state", (st, d) => r.states.push({ state: st, ...d }));
  c.on("error", (e) => r.errors.push(e));
  c.on("subscription", (x) => r.subs.push(x));
  return { c, r };
}

const ended = (r) => r.states.filter((x) => x.state === "disconnected" || x.state === "closed").map((x) => [x.state, x.code, x.reason, x.willReconnect]);

test("4004 disconnected: the client reconnects after the usual backoff", async () => {
  const s = scripted("c1");
  const reasons = [];
  const { c, r } = client(s, { token: (ctx) => (reasons.push(ctx.reason), "jwt") });
  c.connect();
  await c.ready();
  s.drop(4004, "disconnected by the server");
  assert.deepEqual(ended(r), [["disconnected", 4004, "disconnected by the server", true]]);
  const d = r.states.at(-1).delay;
  assert.ok(d >= 0 && d < 20, `delay ${d}ms, within the first window`);
  await until(() => s.sockets.length === 2 && c.state === "connected", "welcomed again");
  assert.deepEqual(reasons, ["connect", "reconnect"]);
  c.close();
});

test("4005 logout: the client goes to closed with the code and reason, stays there, and comes back only on reconnect()", async () => {
  const s = scripted("c2");
  const { c, r } = client(s, { token: () => "jwt" });
  c.connect();
  await c.ready();
  const pending = c.request("rpc.x", {}).then(() => null, (e) => e);
  s.drop(4005, "logged out");
  assert.equal(c.state, "closed");
  assert.deepEqual(ended(r), [["closed", 4005, "logged out", false]]);
  const err = await c.ready().then(() => null, (e) => e);
  assert.ok(err instanceof ClosedError && err.code === 4005, `ready() rejected with ${err}`);
  assert.ok((await pending) instanceof ClosedError, "the request in flight");
  const refused = await c.publish("chat.x", 1).then(() => null, (e) => e);
  assert.ok(refused instanceof ClosedError && refused.code === 4005, `publish while logged out: ${refused}`);
  await tick(100); // beyond the maximum backoff
  assert.equal(s.sockets.length, 1, "no reconnect");

  c.reconnect(); // the user logged in again
  await c.ready();
  assert.equal(s.sockets.length, 2);
  c.close();

  // reconnectOnLogout: back with the backoff.
  const s2 = scripted("c2");
  const o = client(s2, { reconnectOnLogout: true });
  o.c.connect();
  await o.c.ready();
  s2.drop(4005, "logged out");
  assert.deepEqual(ended(o.r), [["disconnected", 4005, "logged out", true]]);
  await until(() => s2.sockets.length === 2 && o.c.state === "connected", "reconnected");
  o.c.close();
});

test('4006 revoked: the provider is asked with reason "revoked" before each attempt until a welcome', async () => {
  // The second socket is refused (the gateway's 401 shows as 1006), the third welcomed.
  const s = scripted("c3", { accept: (n) => (n === 2 ? 1006 : true) });
  const calls = [];
  const { c, r } = client(s, {
    token: (ctx) => {
      calls.push(ctx.reason);
      return `jwt-${calls.length}`;
    },
  });
  c.connect();
  await c.ready();
  s.drop(4006, "credentials revoked");
  assert.deepEqual(ended(r), [["disconnected", 4006, "credentials revoked", true]]);
  await until(() => s.sockets.length === 3 && c.state === "connected", "welcomed with a new token");
  assert.deepEqual(calls, ["connect", "revoked", "revoked"]);
  assert.deepEqual(s.urls.map((u) => new URL(u).searchParams.get("token")), ["jwt-1", "jwt-2", "jwt-3"]);
  s.drop(1006);
  await until(() => s.sockets.length === 4 && c.state === "connected", "an ordinary reconnect");
  assert.deepEqual(calls, ["connect", "revoked", "revoked", "reconnect"]);
  c.close();
});

test("a topic the gateway adds is delivered, resumed from its position, restored after a reconnect, and dropped quietly when refused", async () => {
  const epoch = 1764650000000;
  const s = scripted("c4");
  const storage = new MemoryStorage();
  storage.set("wsgate:c4:topic.team-7", { seq: 40, epoch });
  const { c, r } = client(s, { storage, debug: (...a) => r.logs.push(a.join(" ")) });
  const team = [];
  c.onChannel("topic.team-7", (m) => team.push(m.data));
  const all = [];
  c.on("message", (m) => all.push(m.channel));
  c.connect();
  await c.ready();

  s.push({ type: "subscribed", channel: "topic.team-7", server: true });
  assert.deepEqual(r.subs, [{ channel: "topic.team-7", subscribed: true, server: true }]);
  assert.deepEqual(c.topicList(), ["topic.team-7"]);
  await until(() => s.ops("resume").length === 1, "the topic's resume");
  const resume = s.ops("resume")[0];
  assert.deepEqual(resume, { op: "resume", channel: "topic.team-7", seq: 40, epoch, ref: resume.ref });
  s.push({ type: "resumed", channel: "topic.team-7", ref: resume.ref, recovered: true, seq: 40, epoch });
  s.push({ type: "message", channel: "topic.team-7", seq: 41, prev: 40, epoch, data: { n: 41 } });
  s.push({ type: "message", channel: "topic.team-7", data: "volatile" });
  assert.deepEqual(team, [{ n: 41 }, "volatile"]);
  assert.deepEqual(all, ["topic.team-7", "topic.team-7"]);
  assert.deepEqual(c.position("topic.team-7"), { seq: 41, epoch });
  assert.equal(await c.subscribe("topic.team-7"), undefined, "subscribe() of a topic the gateway added resolves at once");

  // After a reconnect the client subscribes it again itself.
  s.drop(1006);
  await until(() => s.sockets.length === 2 && s.ops("subscribe").length === 1, "the restore");
  const sub = s.ops("subscribe")[0];
  assert.equal(sub.channel, "topic.team-7");
  s.push({ type: "subscribed", channel: "topic.team-7", ref: sub.ref });
  await until(() => s.ops("resume").length === 2, "resumed from its position after the restore");
  assert.deepEqual([s.ops("resume")[1].seq, s.ops("resume")[1].epoch], [41, epoch]);
  assert.equal(r.subs.length, 1, "the event is for the gateway's changes only");

  // The token no longer allows it: dropped without an error event.
  s.drop(1006);
  await until(() => s.sockets.length === 3 && s.ops("subscribe").length === 2, "the second restore");
  s.push({ type: "error", ref: s.ops("subscribe")[1].ref, code: "forbidden", message: "the token does not allow this channel" });
  assert.deepEqual(c.topicList(), []);
  assert.deepEqual(r.errors, []);
  assert.ok(r.logs.some((l) => /topic\.team-7.*forbidden/.test(l)), "a debug line says so");
  s.drop(1006);
  await until(() => s.sockets.length === 4 && c.state === "connected", "a third connection");
  await tick(20);
  assert.equal(s.ops("subscribe").length, 2, "not restored any more");
  c.close();
});

test("a topic the gateway removes is not restored, even one the app subscribed itself", async () => {
  const s = scripted("c5");
  const { c, r } = client(s);
  c.connect();
  await c.ready();
  const subscribing = c.subscribe("topic.mine");
  await until(() => s.ops("subscribe").length === 1, "the subscribe");
  s.push({ type: "subscribed", channel: "topic.mine", ref: s.ops("subscribe")[0].ref });
  await subscribing;
  s.push({ type: "subscribed", channel: "topic.theirs", ref: 0, server: true });
  assert.deepEqual(c.topicList().sort(), ["topic.mine", "topic.theirs"]);

  s.push({ type: "unsubscribed", channel: "topic.mine", server: true });
  s.push({ type: "unsubscribed", channel: "topic.theirs" }); // no ref: the gateway's own too
  assert.deepEqual(r.subs.map((x) => [x.channel, x.subscribed]), [["topic.theirs", true], ["topic.mine", false], ["topic.theirs", false]]);
  assert.deepEqual(c.topicList(), []);
  s.drop(1006);
  await until(() => s.sockets.length === 2 && c.state === "connected", "reconnected");
  await tick(20);
  assert.equal(s.ops("subscribe").length, 1, "nothing restored");
  assert.deepEqual(r.errors, []);
  c.close();
});

test("the gateway adds a topic while the app's own subscribe of it is on its way: the topic stays, whatever the answer", async () => {
  const s = scripted("c11");
  const { c, r } = client(s);
  c.connect();
  await c.ready();
  const mine = c.subscribe("topic.race").then(() => null, (e) => e);
  await until(() => s.ops("subscribe").length === 1, "the subscribe");
  s.push({ type: "subscribed", channel: "topic.race", server: true });
  s.push({ type: "error", ref: s.ops("subscribe")[0].ref, code: "forbidden", message: "the token does not allow this channel" });
  const e = await mine;
  assert.ok(e instanceof ServerError && e.code === "forbidden", "the app's subscribe gets the gateway's answer");
  assert.deepEqual(c.topicList(), ["topic.race"], "the connection is in the topic all the same");
  assert.deepEqual(r.errors, []);
  c.close();
});

test("publish: acked by the gateway's published, or fire-and-forget with ack: false", async () => {
  const s = scripted("c6");
  const { c, r } = client(s);
  c.connect();
  await c.ready();
  let done = false;
  const p = c.publish("chat.room-7", { text: "hi" }).then(() => (done = true));
  const op = s.ops("publish")[0];
  assert.deepEqual(op, { op: "publish", channel: "chat.room-7", data: { text: "hi" }, ref: op.ref });
  assert.ok(op.ref > 0);
  await tick(5);
  assert.equal(done, false, "waits for the answer");
  s.push({ type: "published", channel: "chat.room-7", ref: op.ref });
  await p;

  assert.equal(await c.publish("chat.room-7", "fire", { ack: false }), undefined);
  assert.deepEqual(s.ops("publish")[1], { op: "publish", channel: "chat.room-7", data: "fire" }, "no ref: nothing is answered");
  await c.publish("chat.room-7", undefined, { ack: false });
  assert.deepEqual(s.ops("publish")[2].data, null, "undefined goes as null: the gateway needs a JSON value");

  const refused = c.publish("chat.room-7", 1);
  s.push({ type: "error", ref: s.ops("publish")[3].ref, code: "rate_limited", message: "too many messages sent upstream; slow down" });
  const err = await refused.then(() => null, (e) => e);
  assert.ok(err instanceof ServerError);
  assert.deepEqual([err.code, err.op, err.channel, err.ref], ["rate_limited", "publish", "chat.room-7", s.ops("publish")[3].ref]);
  assert.equal(c.state, "connected", "the connection stays");

  // An error for a fire-and-forget publish belongs to no promise: an error event.
  s.push({ type: "error", ref: 0, code: "forbidden", message: "the token does not allow sending on this channel" });
  assert.deepEqual(r.errors.map((e) => e.code), ["forbidden"]);
  c.close();
});

test("request: resolves with the reply's data, rejects with the gateway's error codes", async () => {
  const s = scripted("c7");
  const { c } = client(s, { requestTimeout: 3000 });
  c.connect();
  await c.ready();
  const p = c.request("rpc.profile", { id: 7 }, { timeout: 1500 });
  const op = s.ops("request")[0];
  assert.deepEqual(op, { op: "request", channel: "rpc.profile", data: { id: 7 }, ref: op.ref, timeout: 1500 });
  s.push({ type: "reply", channel: "rpc.profile", ref: op.ref, data: { name: "Ada" } });
  assert.deepEqual(await p, { name: "Ada" });

  const q = c.request("rpc.profile", null);
  assert.equal(s.ops("request")[1].timeout, 3000, "the requestTimeout option by default");
  s.push({ type: "reply", channel: "rpc.profile", ref: s.ops("request")[1].ref, data: null });
  assert.equal(await q, null);

  const codes = ["timeout", "no_responders", "rejected", "bad_reply", "rate_limited", "too_many_requests", "forbidden", "upstream_disabled", "unavailable", "bad_request"];
  const waits = codes.map(() => c.request("rpc.profile", 1).then(() => null, (e) => e));
  const ops = s.ops("request").slice(2);
  assert.equal(new Set(ops.map((o) => o.ref)).size, codes.length, "one ref each");
  // Answered out of order: matched by ref.
  for (let i = codes.length - 1; i >= 0; i--) {
    s.push({ type: "error", ref: ops[i].ref, code: codes[i], message: codes[i] === "rejected" ? "profile is private" : "x" });
  }
  const errs = await Promise.all(waits);
  errs.forEach((e, i) => {
    assert.ok(e instanceof ServerError, `${codes[i]}: ${e}`);
    assert.deepEqual([e.code, e.op, e.channel], [codes[i], "request", "rpc.profile"]);
  });
  assert.match(errs[2].message, /profile is private/, "rejected carries the service's text");
  c.close();
});

test("a request whose answer never comes times out locally 2 s after its timeout", async () => {
  const s = scripted("c8");
  const { c } = client(s);
  c.connect();
  await c.ready();
  const t0 = Date.now();
  const err = await c.request("rpc.slow", {}, { timeout: 50 }).then(() => null, (e) => e);
  const took = Date.now() - t0;
  assert.ok(err instanceof TimeoutError, `${err}`);
  assert.equal(err.code, "timeout", "the same code as the gateway's timeout");
  assert.deepEqual([err.op, err.channel], ["request", "rpc.slow"]);
  assert.ok(took >= 2040 && took < 3000, `gave up after ${took}ms`);
  // A late reply is ignored.
  s.push({ type: "reply", channel: "rpc.slow", ref: s.ops("request")[0].ref, data: 1 });
  assert.equal(c.state, "connected");
  c.close();
});

test("publishes and requests in flight are rejected with ClosedError when the socket closes, and not sent again", async () => {
  const s = scripted("c9");
  const { c } = client(s);
  c.connect();
  await c.ready();
  const p = c.publish("chat.a", 1).then(() => null, (e) => e);
  const q = c.request("rpc.a", 2).then(() => null, (e) => e);
  s.drop(1006);
  for (const e of await Promise.all([p, q])) {
    assert.ok(e instanceof ClosedError, `${e}`);
    assert.equal(e.code, 1006);
    assert.match(e.message, /may or may not/);
  }
  await until(() => c.state === "connected" && s.sockets.length === 2, "reconnected");
  await tick(20);
  assert.equal(s.ops("publish").length + s.ops("request").length, 2, "nothing sent again");

  const r2 = c.request("rpc.b", 3).then(() => null, (e) => e);
  c.close();
  const e2 = await r2;
  assert.ok(e2 instanceof ClosedError && e2.code === undefined, `close(): ${e2}`);
  await assert.rejects(c.publish("chat.a", 1), ClosedError, "after close()");
});

test("publish and request reject at once while not connected, on a bad channel, and over the message size", async () => {
  const s = scripted("c10", { accept: (n) => (n === 2 ? 1006 : true) });
  const { c } = client(s, { backoff: { min: 200, max: 200 } });
  await assert.rejects(c.publish("chat.a", 1), NotConnectedError, "before connect()");
  c.connect();
  await assert.rejects(c.request("rpc.a", 1), NotConnectedError, "before the welcome");
  await c.ready();
  s.drop(1006);
  await assert.rejects(c.publish("chat.a", 1), NotConnectedError, "waiting to reconnect");

  await until(() => c.state === "connected", "reconnected");
  const before = s.sent.length;
  for (const ch of ["", "chat..a", "chat.*", "chat.>", ".chat", "chat.", "chat a", "chät", "x".repeat(129), 7]) {
    const e = await c.publish(ch, 1).then(() => null, (e) => e);
    assert.ok(e instanceof ServerError && e.code === "invalid_channel" && e.ref === 0, `${JSON.stringify(ch)}: ${e}`);
  }
  await c.publish("a-b_c.D9", 1, { ack: false });
  await c.publish("x".repeat(128), 1, { ack: false });
  const big = await c.request("rpc.big", "é".repeat(2100)).then(() => null, (e) => e);
  assert.ok(big instanceof WsgateError && /maxMessageSize/.test(big.message), `${big}`);
  const cyclic = {};
  cyclic.self = cyclic;
  await assert.rejects(c.publish("chat.a", cyclic), WsgateError);
  assert.equal(s.sent.length - before, 2, "only the two valid ones went out");
  c.close();

  // 4003: the stop's ClosedError.
  const s2 = scripted("c10");
  const o = client(s2);
  o.c.connect();
  await o.c.ready();
  s2.drop(4003, "replaced by a newer connection");
  const e = await o.c.publish("chat.a", 1).then(() => null, (x) => x);
  assert.ok(e instanceof ClosedError && e.code === 4003, `${e}`);
  o.c.close();
});
