// Faults: the gateway killed with SIGKILL and started again on the same
// JetStream files while durable notifications are published.
import assert from "node:assert/strict";
import { test } from "node:test";
import { WsgateClient, MemoryStorage } from "../dist/index.js";
import { WebSocket, freeAddr, publishRetries, publishUntilStored, record, seqs, sleep, startGateway, tempDir, token, waitFor } from "./helpers.js";

test("SIGKILL and restart mid-stream: each client ends with every stored seq once, in order", async (t) => {
  const store = tempDir(t);
  const listen = await freeAddr();
  const nats = await freeAddr();
  let g = await startGateway(t, { store, listen, nats });
  const natsURL = g.natsURL;

  const users = ["f1", "f2"];
  const recs = users.map((u) => {
    const c = new WsgateClient({
      url: g.url,
      WebSocket,
      token: () => token(u),
      storage: new MemoryStorage(),
      backoff: { min: 100, max: 1000 },
      ackInterval: 200,
    });
    t.after(() => c.close());
    const r = record(c);
    c.connect();
    return { c, r, user: u, stored: [] };
  });
  await Promise.all(recs.map((x) => x.c.ready()));

  // The publisher goes on throughout, retrying with the same id what the
  // dead gateway's NATS refused; the gateway is killed once a third is stored.
  const rounds = 30;
  let stored = 0;
  const publishing = (async () => {
    for (let i = 0; i < rounds; i++) {
      for (const x of recs) {
        x.stored.push(await publishUntilStored(natsURL, { user: x.user }, { i }, `${x.user}-${i}`));
        stored++;
      }
    }
  })();
  await waitFor(() => stored >= (rounds * users.length) / 3, 20000, "a third published");
  await g.kill("SIGKILL");
  await sleep(300);
  g = await startGateway(t, { store, listen, nats });
  await publishing;
  t.diagnostic(`${publishRetries} publishes retried`);
  assert.ok(publishRetries > 0, "some publishes met the dead gateway");
  for (const x of recs) {
    await waitFor(() => seqs(x.r, `user.${x.user}`).length >= x.stored.length, 20000, `${x.user}'s ${x.stored.length} notifications`);
    await sleep(100);
    assert.deepEqual(seqs(x.r, `user.${x.user}`), x.stored, `${x.user}: every stored seq once, in order`);
    assert.deepEqual(x.r.lost, []);
    assert.ok(x.r.welcomes.length >= 2, `${x.user} reconnected`);
    t.diagnostic(`${x.user}: resumed ${JSON.stringify(x.r.resumed.map((r) => r.seq))}, ${x.r.welcomes.length} welcomes`);
  }
});
