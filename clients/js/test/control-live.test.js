// The control plane against a real gateway, driven by the binary's
// developer commands: `wsgate disconnect`, `wsgate subscribe` and
// `wsgate upstream --echo`. Each test skips, saying why, while `wsgate
// help` does not list its command.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { WsgateClient, MemoryStorage, ServerError } from "../dist/index.js";
import { WebSocket, bin, needs, publish, record, sleep, startGateway, token, waitFor, wsgate } from "./helpers.js";

function client(g, opts = {}) {
  return new WsgateClient({ url: g.url, WebSocket, storage: new MemoryStorage(), backoff: { min: 50, max: 500 }, ...opts });
}

/** upgrade resolves with the HTTP status a WebSocket upgrade with this token gets: 101 when it opens. */
function upgrade(g, jwt) {
  return new Promise((res) => {
    const ws = new WebSocket(`${g.url}?token=${jwt}`);
    ws.on("unexpected-response", (_req, resp) => {
      res(resp.statusCode);
      ws.terminate();
    });
    ws.on("open", () => {
      res(101);
      ws.close();
    });
    ws.on("error", () => res(0));
  });
}

const now = () => Math.floor(Date.now() / 1000);

test("server-side disconnect: reconnect → 4004 and back, logout → 4005 and closed, revoked → 4006 and back only with a new token", needs("disconnect"), async (t) => {
  const g = await startGateway(t);
  const issued = now() - 60; // tokens issued before the revocation
  const users = { reconnect: "dr1", logout: "dl1", revoked: "dv1" };
  const cs = {};
  for (const [reason, user] of Object.entries(users)) {
    const calls = [];
    const c = client(g, {
      token: (ctx) => {
        calls.push(ctx.reason);
        // A new token after a revocation: issued after it (within the gateway's leeway).
        return token(user, { iat: ctx.reason === "revoked" ? now() + 1 : issued });
      },
    });
    t.after(() => c.close());
    cs[reason] = { c, r: record(c), calls };
    c.connect();
  }
  await Promise.all(Object.values(cs).map((x) => x.c.ready()));

  for (const [reason, user] of Object.entries(users)) {
    await wsgate("disconnect", "--nats-url", g.natsURL, "--expect", "1", "--user", user, "--reason", reason);
  }
  const end = (x) => waitFor(() => x.r.states.find((s) => s.state === "disconnected" || s.state === "closed"), 5000, "the close");

  const rc = await end(cs.reconnect);
  assert.deepEqual([rc.state, rc.code, rc.willReconnect], ["disconnected", 4004, true]);
  await waitFor(() => cs.reconnect.r.welcomes.length === 2, 5000, "the reconnect after 4004");
  assert.deepEqual(cs.reconnect.calls, ["connect", "reconnect"]);

  const lo = await end(cs.logout);
  assert.deepEqual([lo.state, lo.code, lo.willReconnect], ["closed", 4005, false]);
  assert.equal(cs.logout.c.state, "closed");

  const rv = await end(cs.revoked);
  assert.deepEqual([rv.state, rv.code, rv.willReconnect], ["disconnected", 4006, true]);
  await waitFor(() => cs.revoked.r.welcomes.length === 2, 5000, "the reconnect with a new token after 4006");
  assert.equal(cs.revoked.calls[1], "revoked");
  assert.equal(await upgrade(g, token(users.revoked, { iat: issued })), 401, "the old token is refused at upgrade");

  await sleep(600); // beyond the maximum backoff
  assert.equal(cs.logout.r.welcomes.length, 1, "no reconnect after 4005");
  assert.deepEqual(cs.logout.calls, ["connect"]);
});

test("server-side subscribe: the topic reaches the client and its notifications are delivered, restored after a reconnect while the token allows it, until the gateway removes it", needs("subscribe", "unsubscribe"), async (t) => {
  const g = await startGateway(t);
  const topic = "topic.team-7";
  // a's token allows the topic, b's does not (the gateway adds it whatever the token says).
  const mk = (user, channels) => {
    const c = client(g, { token: () => token(user, { channels }) });
    t.after(() => c.close());
    const x = { c, r: record(c), subs: [], got: [] };
    c.on("subscription", (s) => x.subs.push(s));
    c.onChannel(topic, (m) => x.got.push(m.data));
    c.connect();
    return x;
  };
  const a = mk("ss1", ["topic.>"]);
  const b = mk("ss2", ["topic.other"]);
  await Promise.all([a.c.ready(), b.c.ready()]);
  for (const user of ["ss1", "ss2"]) await wsgate("subscribe", "--nats-url", g.natsURL, "--expect", "1", "--user", user, "--topic", topic);
  for (const x of [a, b]) {
    await waitFor(() => x.subs.length === 1, 5000, "the subscribed frame");
    assert.deepEqual(x.subs, [{ channel: topic, subscribed: true, server: true }]);
    assert.deepEqual(x.c.topicList(), [topic]);
  }
  await publish(g.natsURL, { topic: "team-7" }, { n: 1 });
  await waitFor(() => a.got.length === 1 && b.got.length === 1, 5000, "the topic's notification");
  assert.deepEqual([a.got[0], b.got[0]], [{ n: 1 }, { n: 1 }]);

  a.c.reconnect();
  b.c.reconnect();
  await waitFor(() => a.r.welcomes.length === 2 && b.r.welcomes.length === 2, 5000, "the reconnects");
  await waitFor(() => b.c.topicList().length === 0, 5000, "b's restore refused");
  await waitFor(async () => {
    await publish(g.natsURL, { topic: "team-7" }, { n: 2 });
    return a.got.some((d) => d.n === 2);
  }, 5000, "a notification after a's restore");
  assert.deepEqual(a.c.topicList(), [topic]);
  assert.ok(!b.got.some((d) => d.n === 2), "b is out of the topic");
  assert.deepEqual([a.r.errors, b.r.errors], [[], []], "b's refusal is quiet");

  await wsgate("unsubscribe", "--nats-url", g.natsURL, "--expect", "1", "--user", "ss1", "--topic", topic);
  await waitFor(() => a.subs.length === 2, 5000, "the unsubscribed frame");
  assert.deepEqual(a.subs[1], { channel: topic, subscribed: false, server: true });
  assert.deepEqual(a.c.topicList(), []);
  a.c.reconnect();
  await waitFor(() => a.r.welcomes.length === 3, 5000, "another reconnect");
  await publish(g.natsURL, { topic: "team-7" }, { n: 3 });
  await publish(g.natsURL, { user: "ss1" }, "after");
  await waitFor(() => a.r.messages.some((m) => m.data === "after"), 5000, "the user notification");
  assert.ok(!a.got.some((d) => d.n === 3), "not restored");
});

test("upstream: a request answered by `wsgate upstream --echo` carries the user the gateway stamped, not the client's word", needs("upstream"), async (t) => {
  const g = await startGateway(t);
  const echo = spawn(bin, ["upstream", "--nats-url", g.natsURL, "--channel", "rpc.>", "--echo"], { stdio: ["ignore", "pipe", "pipe"] });
  let printed = "";
  echo.stdout.setEncoding("utf8").on("data", (d) => (printed += d));
  echo.stderr.setEncoding("utf8").on("data", (d) => (printed += d));
  t.after(() => echo.kill("SIGKILL"));
  const c = client(g, { token: () => token("up1", { upstream: ["rpc.>", "chat.>"] }) });
  t.after(() => c.close());
  c.connect();
  await c.ready();

  const data = { hello: "world", user: "mallory" };
  const reply = await waitFor(async () => {
    try {
      return await c.request("rpc.echo", data, { timeout: 2000 });
    } catch (e) {
      if (e instanceof ServerError && e.code === "upstream_disabled") {
        throw new Error("the gateway answered upstream_disabled: start it with the flag that enables upstream");
      }
      if (e instanceof ServerError && e.code === "no_responders") return undefined; // the echo is not listening yet
      throw e;
    }
  }, 5000, "an echo");
  assert.deepEqual(reply, { echo: data, user: "up1" });

  await c.publish("rpc.note", { text: "up we go" });
  await waitFor(() => printed.includes("up we go"), 5000, "the echo tool printing the publish");

  for (const [channel, code] of [["chat.room-7", "no_responders"], ["admin.x", "forbidden"]]) {
    const err = await c.request(channel, 1).then(() => null, (e) => e);
    assert.ok(err instanceof ServerError && err.code === code, `${channel}: ${err}`);
    assert.deepEqual([err.op, err.channel], ["request", channel]);
  }
  assert.equal(c.state, "connected");
});
