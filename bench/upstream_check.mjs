#!/usr/bin/env node
// bench/upstream_check.mjs — a second client for wsbench's upstream figure,
// written apart from wsbench (Node, the `ws` package of clients/js): it opens
// --conns connections as users chk0, chk1, … (?user=, a gateway with
// --auth=none), waits for every welcome, then sends request ops at --rate in
// total for --duration seconds, round-robin over the connections, each
// {"op":"request","channel":<channel>,"ref":N,"data":{"seq":N,"t":<ms>}}. A
// responder of one's own must answer on NATS (`wsgate upstream --echo`). It
// matches each reply by ref, and prints one JSON line: sent, replies,
// replies/s (first send → last reply), latency p50/p90/p99/max in ms (send →
// reply, performance.now()), error frames by code, and its own CPU.
//
//   node bench/upstream_check.mjs --url ws://127.0.0.1:18081/ws --conns 1000 --rate 5000 --duration 10
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

const require = createRequire(new URL('../clients/js/package.json', import.meta.url));
const WebSocket = require('ws');

const opts = { url: 'ws://127.0.0.1:8080/ws', conns: 100, rate: 500, duration: 10, channel: 'rpc.bench', drain: 3 };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in opts)) { console.error(`unknown flag --${k}`); process.exit(2); }
  opts[k] = typeof opts[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}

const sockets = [];
const sentAt = new Map(); // ref → performance.now() at send
const latencies = [];
const errors = {};
let replies = 0, sent = 0, firstSend = 0, lastReply = 0;

function open(i) {
  return new Promise((resolve, reject) => {
    const sep = opts.url.includes('?') ? '&' : '?';
    const ws = new WebSocket(`${opts.url}${sep}user=chk${i}`, { perMessageDeflate: false });
    let welcomed = false;
    ws.on('message', (buf) => {
      const now = performance.now();
      const m = JSON.parse(buf.toString());
      if (!welcomed) {
        if (m.type === 'welcome') { welcomed = true; resolve(ws); }
        return;
      }
      if (m.type === 'reply') {
        const t = sentAt.get(m.ref);
        if (t !== undefined) { sentAt.delete(m.ref); latencies.push(now - t); }
        replies++;
        lastReply = now;
      } else if (m.type === 'error') {
        errors[m.code] = (errors[m.code] || 0) + 1;
        sentAt.delete(m.ref);
      }
    });
    ws.on('error', reject);
    ws.on('close', (code) => { if (!welcomed) reject(new Error(`closed ${code} before the welcome`)); });
  });
}

const cpu0 = process.cpuUsage();
for (let i = 0; i < opts.conns; i += 100) {
  const batch = [];
  for (let j = i; j < Math.min(i + 100, opts.conns); j++) batch.push(open(j));
  sockets.push(...await Promise.all(batch));
}

const total = Math.round(opts.rate * opts.duration);
const start = performance.now();
firstSend = start;
let ref = 0;
await new Promise((resolve) => {
  const tick = setInterval(() => {
    const due = Math.min(total, Math.floor((performance.now() - start) / 1000 * opts.rate) + 1);
    while (ref < due) {
      ref++;
      const ws = sockets[ref % sockets.length];
      const t = performance.now();
      sentAt.set(ref, t);
      ws.send(`{"op":"request","channel":"${opts.channel}","ref":${ref},"data":{"seq":${ref},"t":${t}}}`);
      sent++;
    }
    if (ref >= total) { clearInterval(tick); resolve(); }
  }, 2);
});
const sendEnd = performance.now();
const drainUntil = sendEnd + opts.drain * 1000;
while (replies + Object.values(errors).reduce((a, b) => a + b, 0) < sent && performance.now() < drainUntil) {
  await new Promise((r) => setTimeout(r, 20));
}
const cpu = process.cpuUsage(cpu0);
for (const ws of sockets) ws.close(1000);

latencies.sort((a, b) => a - b);
const q = (p) => latencies.length ? +latencies[Math.min(latencies.length - 1, Math.floor(p / 100 * latencies.length))].toFixed(3) : null;
const span = (lastReply - firstSend) / 1000;
console.log(JSON.stringify({
  client: 'bench/upstream_check.mjs (node ' + process.version + ', ws ' + require('ws/package.json').version + ')',
  url: opts.url, conns: opts.conns, rate: opts.rate, duration_s: opts.duration,
  sent, sent_per_s: +(sent / ((sendEnd - start) / 1000)).toFixed(1),
  replies, replies_per_s: span > 0 ? +(replies / span).toFixed(1) : 0, unanswered: sentAt.size,
  errors,
  latency_ms: { p50: q(50), p90: q(90), p99: q(99), max: latencies.length ? +latencies[latencies.length - 1].toFixed(3) : null, n: latencies.length },
  cpu_s: +((cpu.user + cpu.system) / 1e6).toFixed(3),
}));
setTimeout(() => process.exit(0), 200);
