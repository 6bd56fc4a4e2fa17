// Connecting, channels and delivery against a real gateway.
import assert from "node:assert/strict";
import { test } from "node:test";
import { WsgateClient, ServerError, ClosedError, MemoryStorage } from "../dist/index.js";
import { WebSocket, publish, record, startGateway, token, waitFor, sleep } from "./helpers.js";

function client(g, opts = {}) {
  const c = new WsgateClient({ url: g.url, WebSocket, storage: new MemoryStorage(), backoff: { min: 50, max: 500 }, ...opts });
  return c;
}

test("connects with a token from the provider, is welcomed, and close() ends it for good", async (t) => {
  const g = await startGateway(t);
  const calls = [];
  const c = client(g, {
    token: async (ctx) => {
      calls.push(ctx.reason);
      return token("u1");
    },
  });
  const r = record(c);
  c.connect();
  const w = await c.ready();
  assert.equal(w.user, "u1");
  assert.match(w.conn, /-/);
  assert.equal(w.pingInterval, 25);
  assert.deepEqual(calls, ["connect"]);
  assert.equal(c.state, "connected");
  assert.deepEqual(c.welcome, w);

  c.close();
  assert.equal(c.state, "closed");
  await assert.rejects(c.subscribe("topic.a"), ClosedError);
  await assert.rejects(c.ready(), ClosedError);
  await sleep(200);
  assert.deepEqual(r.states.map((s) => s.state), ["connecting", "connected", "closed"]);
  assert.deepEqual(calls, ["connect"], "no reconnect after close()");
});

test("subscribe and unsubscribe resolve with the gateway's answers; a forbidden topic is rejected with its code", async (t) => {
  const g = await startGateway(t);
  const c = client(g, { token: () => token("u2", { channels: ["topic.news.*"] }) });
  t.after(() => c.close());
  const r = record(c);
  const perChannel = [];
  c.onChannel("topic.news.eu", (m) => perChannel.push(m));
  const user = [];
  c.onChannel("user", (m) => user.push(m));

  const early = c.subscribe("topic.news.eu"); // before connect: waits for the connection
  c.connect();
  await early;
  assert.deepEqual(c.topicList(), ["topic.news.eu"]);

  for (const [topic, code] of [
    ["topic.sports", "forbidden"], // not in the token's channels
    ["user.9", "forbidden"], // not a topic
    ["topic..x", "invalid_channel"],
  ]) {
    const err = await c.subscribe(topic).then(() => null, (e) => e);
    assert.ok(err instanceof ServerError, `subscribe ${topic}: ${err}`);
    assert.equal(err.code, code, `subscribe ${topic}`);
    assert.equal(err.op, "subscribe");
    assert.equal(err.channel, topic);
  }
  assert.deepEqual(c.topicList(), ["topic.news.eu"], "refused topics are not kept");

  await publish(g.natsURL, { topic: "news.eu" }, { n: 1 });
  await publish(g.natsURL, { user: "u2" }, "plain text");
  await publish(g.natsURL, { broadcast: true }, [1, 2]);
  await waitFor(() => r.messages.length === 3, 5000, "three notifications");
  const byChannel = Object.fromEntries(r.messages.map((m) => [m.channel, m]));
  assert.deepEqual(byChannel["topic.news.eu"].data, { n: 1 });
  assert.equal(byChannel["user.u2"].data, "plain text");
  assert.deepEqual(byChannel["broadcast"].data, [1, 2]);
  for (const m of r.messages) assert.equal(m.durable, false);
  assert.equal(perChannel.length, 1, "the channel's own handler");
  assert.equal(user.length, 1, '"user" stands for user.u2');

  await c.unsubscribe("topic.news.eu");
  assert.deepEqual(c.topicList(), []);
  await publish(g.natsURL, { topic: "news.eu" }, { n: 2 });
  await publish(g.natsURL, { user: "u2" }, { after: true });
  await waitFor(() => r.messages.length === 4, 5000, "the user notification");
  await sleep(100);
  assert.equal(r.messages.length, 4, "nothing from the topic left");
  assert.deepEqual(r.errors, []);
});

test("durable notifications carry their position, and the client keeps it", async (t) => {
  const g = await startGateway(t);
  const storage = new MemoryStorage();
  const c = client(g, { token: () => token("u3"), storage });
  t.after(() => c.close());
  const r = record(c);
  c.connect();
  await c.ready();
  const s1 = await publish(g.natsURL, { user: "u3" }, { n: 1 }, { durable: true });
  await publish(g.natsURL, { user: "u3" }, { v: 1 }); // volatile, between
  const s2 = await publish(g.natsURL, { user: "u3" }, { n: 2 }, { durable: true });
  await waitFor(() => r.messages.length === 3, 5000, "three notifications");
  const [m1, v, m2] = r.messages;
  assert.equal(m1.durable, true);
  assert.deepEqual([m1.seq, m1.prev, m1.data], [s1, 0, { n: 1 }]);
  assert.equal(v.durable, false);
  assert.equal(v.seq, undefined);
  assert.deepEqual([m2.seq, m2.prev], [s2, s1]);
  assert.ok(m1.epoch > 0 && m2.epoch === m1.epoch, "the stream's epoch");
  assert.deepEqual(c.position("user"), { seq: s2, epoch: m1.epoch });
  assert.deepEqual(storage.get("wsgate:u3:user.u3"), { seq: s2, epoch: m1.epoch });
  assert.deepEqual(r.resumed, [], "nothing to resume on a fresh client");
});
