// Durable notifications: positions in storage, resume, gaps, duplicates
// and acks, against a real gateway.
import assert from "node:assert/strict";
import { test } from "node:test";
import { WsgateClient, MemoryStorage } from "../dist/index.js";
import { WebSocket, forge, publish, record, seqs, sleep, startGateway, token, waitFor } from "./helpers.js";

function client(g, user, opts = {}) {
  return new WsgateClient({
    url: g.url,
    WebSocket,
    token: () => token(user),
    storage: new MemoryStorage(),
    backoff: { min: 50, max: 500 },
    ackInterval: 100,
    ...opts,
  });
}

const durable = (g, target, n) => publish(g.natsURL, target, { n }, { durable: true });

test("a new client with the same storage resumes from the stored position and gets only what it missed", async (t) => {
  const g = await startGateway(t);
  const storage = new MemoryStorage();
  const a = client(g, "s1", { storage });
  const ra = record(a);
  a.connect();
  await a.subscribe("topic.t");
  const first = [await durable(g, { user: "s1" }, 1), await durable(g, { topic: "t" }, 1)];
  await waitFor(() => ra.messages.length === 2, 5000, "two notifications");
  a.close();

  const missed = [];
  for (let i = 2; i <= 4; i++) missed.push(await durable(g, { user: "s1" }, i));
  const topicMissed = await durable(g, { topic: "t" }, 2);
  await publish(g.natsURL, { user: "s1" }, "volatile, lost while away");

  const b = client(g, "s1", { storage });
  t.after(() => b.close());
  const rb = record(b);
  b.connect();
  await b.subscribe("topic.t");
  await waitFor(() => rb.messages.length === 4, 5000, "the missed notifications");
  assert.deepEqual(seqs(rb, "user.s1"), missed);
  assert.deepEqual(seqs(rb, "topic.t"), [topicMissed]);
  assert.deepEqual(
    rb.resumed.map((r) => [r.channel, r.seq, r.recovered]).sort(),
    [["topic.t", first[1], true], ["user.s1", first[0], true]],
  );
  // The replay's first frame chains from the stored position.
  assert.equal(rb.messages.find((m) => m.channel === "user.s1").prev, first[0]);
  await sleep(100);
  assert.equal(rb.messages.length, 4, "nothing twice");
  assert.deepEqual(rb.lost, []);
});

test("a gap in prev makes the client drop the frame and resume; a repeated seq is dropped", async (t) => {
  const g = await startGateway(t);
  const c = client(g, "g1");
  t.after(() => c.close());
  const r = record(c);
  c.connect();
  await c.ready();
  const s1 = await durable(g, { user: "g1" }, 1);
  await waitFor(() => r.messages.length === 1, 5000, "the first notification");

  // A frame that says something came between: dropped, and a resume from s1
  // finds nothing missing.
  await forge(g.natsURL, "notify.user.g1", { seq: s1 + 1000, prev: s1 + 999 }, { forged: "gap" });
  await waitFor(() => r.resumed.length === 1, 5000, "the resume after the gap");
  assert.deepEqual([r.resumed[0].seq, r.resumed[0].recovered], [s1, true]);
  // A frame whose seq the client has seen: a duplicate, dropped without a resume.
  await forge(g.natsURL, "notify.user.g1", { seq: s1, prev: 0 }, { forged: "duplicate" });

  const s2 = await durable(g, { user: "g1" }, 2);
  await waitFor(() => r.messages.length === 2, 5000, "the next notification");
  assert.deepEqual(seqs(r, "user.g1"), [s1, s2]);
  assert.equal(r.resumed.length, 1);
  assert.deepEqual(r.errors, []);
});

test("a client without a position resumes from what the user acked, automatically or by hand", async (t) => {
  const g = await startGateway(t);

  // Automatic acks: all three processed, acked (close() sends what is queued).
  const a = client(g, "k1");
  const ra = record(a);
  a.connect();
  await a.ready();
  for (let i = 1; i <= 3; i++) await durable(g, { user: "k1" }, i);
  await waitFor(() => ra.messages.length === 3, 5000, "three notifications");
  a.close();
  const later = [await durable(g, { user: "k1" }, 4), await durable(g, { user: "k1" }, 5)];

  const b = client(g, "k1", { catchUp: true }); // a new device: empty storage
  const rb = record(b);
  b.connect();
  await waitFor(() => rb.messages.length === 2, 5000, "what k1 had not acked");
  assert.deepEqual(seqs(rb, "user.k1"), later);
  assert.equal(rb.resumed[0].recovered, true);
  b.close();

  // Manual acks: of three, the second acked (and with it the first).
  const got = [];
  for (let i = 1; i <= 3; i++) got.push(await durable(g, { user: "k2" }, i));
  const m = client(g, "k2", { autoAck: false, catchUp: true });
  const rm = record(m);
  m.onChannel("user", (msg) => {
    if (msg.seq === got[1]) msg.ack();
  });
  m.connect();
  await waitFor(() => rm.messages.length === 3, 5000, "k2's three, replayed from the oldest");
  m.close();
  const s4 = await durable(g, { user: "k2" }, 4);
  const n = client(g, "k2", { catchUp: ["user"] });
  t.after(() => n.close());
  const rn = record(n);
  n.connect();
  await waitFor(() => rn.messages.length === 2, 5000, "what k2 had not acked");
  assert.deepEqual(seqs(rn, "user.k2"), [got[2], s4]);
  await sleep(100);
  assert.equal(rn.messages.length, 2);
});

test("a volatile-only client never resumes, acks or writes a position", async (t) => {
  const g = await startGateway(t);
  const writes = [];
  const storage = { get: () => undefined, set: (k, p) => writes.push([k, p]) };
  const sent = [];
  class Spy extends WebSocket {
    send(data) {
      sent.push(JSON.parse(data).op);
      super.send(data);
    }
  }
  const c = new WsgateClient({ url: g.url, WebSocket: Spy, token: () => token("v1"), storage, ackInterval: 50 });
  t.after(() => c.close());
  const r = record(c);
  c.connect();
  await c.subscribe("topic.v");
  await publish(g.natsURL, { user: "v1" }, { v: 1 });
  await publish(g.natsURL, { topic: "v" }, { v: 2 });
  await waitFor(() => r.messages.length === 2, 5000, "two volatile notifications");
  await sleep(150);
  assert.deepEqual(sent, ["subscribe"]);
  assert.deepEqual(writes, []);
});

test("a storage that answers with a promise: frames wait for the position, then the resume", async (t) => {
  const g = await startGateway(t);
  const a = client(g, "as1");
  const ra = record(a);
  a.connect();
  await a.ready();
  const s1 = await durable(g, { user: "as1" }, 1);
  await waitFor(() => ra.messages.length === 1, 5000, "the first notification");
  const epoch = ra.messages[0].epoch;
  a.close();
  const s2 = await durable(g, { user: "as1" }, 2);

  const reads = [];
  const storage = {
    get: async (key) => {
      reads.push(key);
      await sleep(200);
      return key === "wsgate:as1:user.as1" ? { seq: s1, epoch } : undefined;
    },
    set: async () => {},
  };
  const b = client(g, "as1", { storage });
  t.after(() => b.close());
  const rb = record(b);
  b.connect();
  await b.ready();
  const s3 = await durable(g, { user: "as1" }, 3); // live, while the position is read
  await waitFor(() => rb.messages.length === 2, 5000, "the missed one and the live one");
  assert.deepEqual(seqs(rb, "user.as1"), [s2, s3]);
  assert.deepEqual(reads.sort(), ["wsgate:as1:broadcast", "wsgate:as1:user.as1"]);
});

test("more missed than the gateway's replay limit: after the answer's count of frames the client resumes from the last, and nothing is lost", async (t) => {
  const g = await startGateway(t, { flags: ["--replay-limit", "5"] });
  const storage = new MemoryStorage();
  const a = client(g, "l1", { storage });
  const ra = record(a);
  a.connect();
  await a.ready();
  await durable(g, { user: "l1" }, 0);
  await waitFor(() => ra.messages.length === 1, 5000, "the first notification");
  a.close();
  const missed = [];
  for (let i = 1; i <= 12; i++) missed.push(await durable(g, { user: "l1" }, i));

  const sent = [];
  class Spy extends WebSocket {
    send(data) {
      sent.push(JSON.parse(data));
      super.send(data);
    }
  }
  const b = client(g, "l1", { storage, WebSocket: Spy });
  t.after(() => b.close());
  const rb = record(b);
  b.connect();
  await waitFor(() => rb.messages.length === 12, 10000, "all twelve");
  assert.deepEqual(seqs(rb, "user.l1"), missed);
  assert.deepEqual(
    rb.resumed.map((r) => [r.recovered, r.reason ?? "", r.count ?? 0]),
    [[false, "limit", 5], [false, "limit", 5], [true, "", 0]],
  );
  // Each continuation starts from the count-th frame of the replay before it.
  const resumes = sent.filter((op) => op.op === "resume" && op.channel === "user.l1").map((op) => op.seq);
  assert.deepEqual(resumes, [ra.messages[0].seq, missed[4], missed[9]]);
  assert.deepEqual(rb.lost, [], "a limit is not a loss");
});

test("a position of seq 0 in a known epoch is sent as it is: the replay starts from the oldest stored, not from what the user acked", async (t) => {
  const g = await startGateway(t, { flags: ["--ack-interval", "50ms"] });
  const a = client(g, "z1");
  const ra = record(a);
  a.connect();
  await a.ready();
  const stored = [];
  for (let i = 1; i <= 3; i++) stored.push(await durable(g, { user: "z1" }, i));
  await waitFor(() => ra.messages.length === 3, 5000, "three notifications");
  const epoch = ra.messages[0].epoch;
  a.close(); // acks all three

  // Another device whose position is seq 0 of this epoch (the answer to a
  // resume that found nothing, say) has applied none of the three.
  await sleep(300); // the gateway writes the watermark
  const sent = [];
  class Spy extends WebSocket {
    send(data) {
      sent.push(JSON.parse(data));
      super.send(data);
    }
  }
  const storage = new MemoryStorage();
  storage.set("wsgate:z1:user.z1", { seq: 0, epoch });
  const b = client(g, "z1", { storage, WebSocket: Spy });
  t.after(() => b.close());
  const rb = record(b);
  b.connect();
  await waitFor(() => rb.messages.length === 3, 5000, "the three, from the oldest");
  assert.deepEqual(seqs(rb, "user.z1"), stored);
  const resume = sent.find((op) => op.op === "resume" && op.channel === "user.z1");
  assert.deepEqual([resume.seq, resume.epoch], [0, epoch]);
  assert.deepEqual(rb.resumed.map((r) => [r.seq, r.recovered]), [[0, true]]);
});

test("a handler's promise holds back its notification's stored position and ack, in channel order", async (t) => {
  const g = await startGateway(t);
  const sets = [];
  const storage = { get: () => undefined, set: (k, p) => sets.push(p.seq) };
  const c = client(g, "h1", { storage });
  t.after(() => c.close());
  const r = record(c);
  const release = [];
  c.onChannel("user", () => new Promise((res) => release.push(res)));
  c.connect();
  await c.ready();
  const s = [await durable(g, { user: "h1" }, 1), await durable(g, { user: "h1" }, 2)];
  await waitFor(() => release.length === 2, 5000, "both handlers called");
  assert.deepEqual(sets, [], "nothing processed yet");
  release[1](); // the second finishes first: still waits for the first
  await sleep(20);
  assert.deepEqual(sets, []);
  release[0]();
  await waitFor(() => sets.length > 0, 1000, "the stored position");
  assert.deepEqual(sets, [s[1]], "one write, for the last of the done prefix");
  assert.deepEqual(r.errors, []);
});
