// reconnect-spread.js: do N clients whose gateway was killed come back
// spread over the backoff window, or in one wave?
//
// It starts the real wsgate binary (development auth, embedded NATS, a
// store directory), connects N WsgateClient instances (?user=u<i>), lets
// the connections age past the client's 5 s "stable" mark, kills the
// gateway with SIGKILL and restarts it at once on the same ports and store
// directory, then times from the kill, for each client, when its first
// retry was due (the delay it drew, from its state event), when it ran, and
// its next welcome; a process of its own counts the upgrades the restarted
// gateway accepts every 50 ms. The same N, the same kill, then again with a
// naive client (plain ws sockets that retry after a fixed 1 s) for the wave
// to compare with. It prints a histogram of all three, the busiest 100 ms
// of each, how late the clients' processes ran their timers, and the
// gateway's wsgate_upgrades_total by result before the kill and once
// everyone is back.
//
// The clients run in --procs P Node processes (child_process.fork of this
// script with --worker), N/P each as users u<offset+i>: one Node process
// spends about 165 µs of CPU per ws socket it opens, and with 10,000 its
// event loop stalls for a second at a time, so the upgrades the gateway
// sees are then paced by the load generator, not by the backoff. The
// default keeps at most 2,000 clients in a process; --procs 1 runs them in
// this process, as the first measurements did. The workers run at nice 10:
// they stand for other hosts, and on a host of two cores five busy workers
// at the same priority starved the sampler (polls 300 ms apart, then none)
// and took the gateway's CPU. Every process records on
// one clock (performance.timeOrigin + performance.now(), one host), and
// this one subtracts the time of the kill and merges.
//
//   node bench/reconnect-spread.js [--n 10000] [--procs P] [--bin ../../wsgate]
//        [--bucket 250] [--naive-delay 1000] [--no-naive] [--out DIR]
//
// make bench-reconnect (at the repository root) builds the gateway and the
// client, then runs it. --out writes reconnect-<n>.txt and .json in DIR.
// N clients need N sockets in the gateway's process and N/P in each
// client process: 10,000 fits a limit of 20,000 open files per process.
import { fork, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, loadavg, cpus, setPriority } from "node:os";
import { join, resolve } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";
import { WsgateClient } from "../dist/index.js";

const SCRIPT = fileURLToPath(import.meta.url);
const WORKER = process.argv[2] === "--worker";
const opts = WORKER ? null : parseArgs(process.argv.slice(2));
const N = opts?.n;
const P = opts?.procs;
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
// clock is ms on a clock every process on this host shares, unlike
// performance.now(), whose origin is each process's start.
const clock = () => performance.timeOrigin + performance.now();

// STABLE_AFTER in src/client.ts: a connection welcomed at least this long
// ago resets the backoff when it ends, as a long-lived one would.
const STABLE_MS = 5000;
// At most this many connects in flight while the clients first connect: the
// initial connect is not what is measured, and a listen backlog of 4,096
// (net.core.somaxconn here) would turn a burst into SYN retransmits.
const CONNECT_WINDOW = 500;
// The default --procs puts at most this many clients in one process: at
// 2,000 one process almost keeps up with its timers (0.1–0.35 s late).
const PER_PROC = 2000;
// The workers' nice value: the gateway and the sampler come first.
const WORKER_NICE = 10;

function parseArgs(argv) {
  const o = {
    n: Number(process.env.N) || 10000,
    bin: process.env.WSGATE_BIN || fileURLToPath(new URL("../../../wsgate", import.meta.url)),
    procs: 0,
    bucket: 250,
    naiveDelay: 1000,
    naive: true,
    timeout: 60000,
    out: "",
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case "--n": o.n = Number(val()); break;
      case "--procs": o.procs = Number(val()); break;
      case "--bin": o.bin = resolve(val()); break;
      case "--bucket": o.bucket = Number(val()); break;
      case "--naive-delay": o.naiveDelay = Number(val()); break;
      case "--no-naive": o.naive = false; break;
      case "--timeout": o.timeout = Number(val()); break;
      case "--out": o.out = resolve(val()); break;
      default:
        throw new Error(`unknown argument ${a} (see the comment at the top of ${SCRIPT})`);
    }
  }
  if (!(o.n > 0) || !(o.bucket > 0) || !(o.naiveDelay >= 0)) throw new Error("--n, --bucket and --naive-delay must be positive numbers");
  if (o.procs === 0) o.procs = Math.ceil(o.n / PER_PROC);
  if (!Number.isInteger(o.procs) || o.procs < 1 || o.procs > o.n) throw new Error("--procs must be a whole number from 1 to --n");
  return o;
}

async function freePort() {
  const srv = createServer();
  await new Promise((res) => srv.listen(0, "127.0.0.1", res));
  const { port } = srv.address();
  await new Promise((res) => srv.close(res));
  return port;
}

/**
 * Gateway is the wsgate binary on fixed ports and a store directory, so
 * that it can be killed and started again where its clients look for it.
 */
class Gateway {
  constructor(bin, store, ports) {
    this.bin = bin;
    this.store = store;
    this.ports = ports;
    this.url = `ws://127.0.0.1:${ports.ws}/ws`;
    this.metricsURL = `http://127.0.0.1:${ports.admin}/metrics`;
    this.proc = null;
    this.log = "";
  }

  /** start runs the binary and resolves with the ms (from now) when it logged "gateway listening". */
  async start() {
    const t0 = performance.now();
    const p = this.ports;
    const proc = spawn(this.bin, [
      "--auth=none",
      "--listen", `127.0.0.1:${p.ws}`,
      "--admin", `127.0.0.1:${p.admin}`,
      "--embedded-nats-listen", `127.0.0.1:${p.nats}`,
      "--nats-store-dir", this.store,
      "--log-format", "json", "--drain-delay=0", "--drain-timeout=0",
    ], { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    this.exited = new Promise((res) => proc.on("exit", (code, signal) => res({ code, signal })));
    let listening = null;
    let buf = "";
    const onData = (chunk) => {
      this.log += chunk;
      if (this.log.length > 1 << 20) this.log = this.log.slice(-(1 << 19));
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (listening === null && line.includes('"gateway listening"')) listening = performance.now() - t0;
      }
    };
    proc.stdout.setEncoding("utf8").on("data", onData);
    proc.stderr.setEncoding("utf8").on("data", onData);
    let gone = false;
    this.exited.then(() => (gone = true));
    const deadline = Date.now() + 30000;
    while (listening === null) {
      if (gone) throw new Error(`wsgate exited before listening:\n${this.log.slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`wsgate did not log "gateway listening" within 30 s:\n${this.log.slice(-4000)}`);
      await sleep(5);
    }
    return listening;
  }

  async kill() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
    return this.exited;
  }

  /** upgrades scrapes wsgate_upgrades_total by result. */
  async upgrades() {
    const text = await (await fetch(this.metricsURL)).text();
    const out = {};
    for (const m of text.matchAll(/^wsgate_upgrades_total\{result="([^"]+)"\} (\S+)$/gm)) out[m[1]] = Number(m[2]);
    return out;
  }
}

/**
 * wsgateFleet is WsgateClient instances, each recording once armed (arm(),
 * just before the kill) its disconnect, its first retry's delay and start,
 * its attempts and its next welcome, on clock().
 */
function wsgateFleet(url) {
  const recs = [];
  let armed = false;
  return {
    recs,
    async open(i) {
      const r = { welcomedAt: 0, down: null, delay: null, firstTry: null, tries: 0, back: null };
      recs.push(r);
      const c = new WsgateClient({ url: `${url}?user=u${i}`, WebSocket });
      r.client = c;
      c.on("state", (s, d) => {
        if (!armed) return;
        if (s === "disconnected" && r.down === null) {
          r.down = clock();
          r.delay = d.delay ?? null;
        } else if (s === "connecting" && r.back === null) {
          r.tries++;
          if (r.firstTry === null) r.firstTry = clock();
        } else if (s === "connected" && r.back === null && r.down !== null) {
          r.back = clock();
        }
      });
      c.on("welcome", () => (r.welcomedAt = clock()));
      c.connect();
      await c.ready();
    },
    arm() {
      armed = true;
    },
    close() {
      for (const r of recs) r.client.close();
    },
  };
}

/**
 * naiveFleet is plain ws sockets that reconnect a fixed delay after any
 * close or failed connect: no jitter, no backoff, the wave to compare with.
 */
function naiveFleet(url, delay) {
  const recs = [];
  let armed = false;
  let closing = false;
  return {
    recs,
    open(i) {
      const r = { welcomedAt: 0, down: null, delay, firstTry: null, tries: 0, back: null };
      recs.push(r);
      return new Promise((first) => {
        const dial = () => {
          if (closing) return;
          if (armed && r.back === null) {
            r.tries++;
            if (r.firstTry === null) r.firstTry = clock();
          }
          const ws = new WebSocket(`${url}?user=u${i}`);
          r.ws = ws;
          ws.on("message", (data) => {
            if (!String(data).includes('"welcome"')) return;
            r.welcomedAt = clock();
            if (armed && r.back === null && r.down !== null) r.back = clock();
            first();
          });
          ws.on("error", () => {});
          ws.on("close", () => {
            if (closing) return;
            if (armed && r.down === null) r.down = clock();
            setTimeout(dial, delay);
          });
        };
        dial();
      });
    },
    arm() {
      armed = true;
    },
    close() {
      closing = true;
      for (const r of recs) r.ws?.terminate();
    },
  };
}

/**
 * localGroup is the clients u<offset>…u<offset+count-1> of one fleet kind
 * ("wsgate" or "naive") in this process, and this process's event loop
 * watched from arm() to collect(). A worker process runs one.
 */
function localGroup({ kind, url, offset, count, naiveDelay, window }) {
  const fleet = kind === "naive" ? naiveFleet(url, naiveDelay) : wsgateFleet(url);
  let loop = null;
  let ticker = null;
  // stalls: the times this process's event loop was away over 100 ms,
  // when every timer and socket event here waits ([clock, length]).
  const stalls = [];
  return {
    /** open connects every client, at most window at once, and resolves with the clock() of the last welcome. */
    async open() {
      let next = 0;
      const worker = async () => {
        while (next < count) await fleet.open(offset + next++);
      };
      await Promise.all(Array.from({ length: Math.min(window, count) }, worker));
      return Math.max(...fleet.recs.map((r) => r.welcomedAt));
    },
    arm() {
      loop = monitorEventLoopDelay({ resolution: 10 });
      loop.enable();
      let tick = clock();
      ticker = setInterval(() => {
        const t = clock();
        if (t - tick > 100) stalls.push([tick, t - tick]);
        tick = t;
      }, 10);
      fleet.arm();
    },
    isBack: () => fleet.recs.every((r) => r.back !== null),
    /** collect stops watching and returns the records and stalls in ms from t0, the clock() of the kill. */
    collect(t0) {
      loop.disable();
      clearInterval(ticker);
      const rel = (v) => (v === null ? null : v - t0);
      return {
        recs: fleet.recs.map((r) => ({ down: rel(r.down), delay: r.delay, firstTry: rel(r.firstTry), tries: r.tries, back: rel(r.back) })),
        stalls: stalls.filter(([at, len]) => at + len > t0).map(([at, len]) => [at - t0, len]),
        loopMaxMs: loop.max / 1e6,
      };
    },
    close() {
      fleet.close();
    },
  };
}

/**
 * remoteGroup is a localGroup in a forked worker process (this script with
 * --worker), with the same methods; isBack() turns true when the worker
 * says all its clients are back.
 */
function remoteGroup(spec) {
  const proc = fork(SCRIPT, ["--worker"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const pending = new Map();
  let seq = 0;
  let back = false;
  let gone = null;
  proc.on("message", (m) => {
    if (m.event === "back") back = true;
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(new Error(`worker u${spec.offset}…: ${m.error}`));
    else p.resolve(m.result);
  });
  proc.on("exit", (code, signal) => {
    gone = { code, signal };
    for (const p of pending.values()) p.reject(new Error(`worker u${spec.offset}… exited (${code ?? signal})`));
    pending.clear();
  });
  const call = (op, arg) =>
    new Promise((res, rej) => {
      if (gone) return rej(new Error(`worker u${spec.offset}… exited (${gone.code ?? gone.signal})`));
      const id = ++seq;
      pending.set(id, { resolve: res, reject: rej });
      proc.send({ id, op, arg });
    });
  return {
    open: () => call("open", spec),
    arm: () => call("arm"),
    isBack: () => back,
    collect: (t0) => call("collect", t0),
    async close() {
      if (!gone) await call("close").catch(() => {});
    },
    kill() {
      if (!gone) proc.kill("SIGKILL");
    },
  };
}

/** worker serves one localGroup to the process that forked it, until "close". */
function worker() {
  setPriority(WORKER_NICE);
  let g = null;
  let watch = null;
  process.on("message", async ({ id, op, arg }) => {
    try {
      let result = true;
      if (op === "open") {
        g = localGroup(arg);
        result = await g.open();
      } else if (op === "arm") {
        g.arm();
        watch = setInterval(() => {
          if (!g.isBack()) return;
          clearInterval(watch);
          process.send({ event: "back" });
        }, 50);
      } else if (op === "collect") {
        clearInterval(watch);
        result = g.collect(arg);
      } else if (op === "close") {
        g?.close();
        process.send({ id, result }, () => process.exit(0));
        return;
      }
      process.send({ id, result });
    } catch (e) {
      process.send({ id, error: String(e?.stack ?? e) });
    }
  });
  // The parent gone (killed, or its IPC channel closed) ends this worker.
  process.on("disconnect", () => process.exit(0));
}

/**
 * runPhase connects N clients of a fleet kind over P groups (in this
 * process when P is 1), kills and restarts the gateway, and waits for
 * everyone's welcome.
 */
async function runPhase(kind) {
  const store = mkdtempSync(join(tmpdir(), "wsgate-spread-"));
  const ports = { ws: await freePort(), admin: await freePort(), nats: await freePort() };
  const gw = new Gateway(opts.bin, store, ports);
  const groups = [];
  for (let k = 0, offset = 0; k < P; k++) {
    const count = Math.floor(N / P) + (k < N % P ? 1 : 0);
    const spec = { kind, url: gw.url, offset, count, naiveDelay: opts.naiveDelay, window: Math.ceil(CONNECT_WINDOW / P) };
    groups.push(P === 1 ? localGroup(spec) : remoteGroup(spec));
    offset += count;
  }
  let sampler = null;
  try {
    await gw.start();
    const c0 = performance.now();
    const lastWelcome = Math.max(...(await Promise.all(groups.map((g) => g.open()))));
    const connectMs = performance.now() - c0;
    const before = await gw.upgrades();
    // Every connection older than STABLE_MS: the kill then finds clients
    // that were connected for a while, whose backoff starts at 0–1 s.
    const wait = lastWelcome + STABLE_MS + 500 - clock();
    if (wait > 0) await sleep(wait);

    await Promise.all(groups.map((g) => g.arm()));
    sampler = startSampler(gw.metricsURL);
    await sleep(300); // its first polls see the gateway before the kill
    const wallT0 = Date.now();
    const t0 = clock();
    gw.proc.kill("SIGKILL");
    await gw.exited;
    const exitedMs = clock() - t0;
    const listeningMs = exitedMs + (await gw.start());
    const deadline = clock() + opts.timeout;
    while (!groups.every((g) => g.isBack()) && clock() < deadline) await sleep(50);
    const parts = await Promise.all(groups.map((g) => g.collect(t0)));
    await sleep(200);
    const after = await gw.upgrades();
    await Promise.all(groups.map((g) => g.close()));
    return {
      name: kind === "naive" ? `naive (fixed ${opts.naiveDelay} ms)` : "@wsgate/client",
      naive: kind === "naive",
      procs: P,
      connectMs,
      exitedMs,
      listeningMs,
      before,
      after,
      // stalls: [from the kill, length, process] of every process's event loop.
      stalls: parts.flatMap((p, k) => p.stalls.map(([at, len]) => [Math.round(at), Math.round(len), k])).sort((a, b) => a[0] - b[0]),
      gatewaySide: gatewaySide(await sampler.stop(), wallT0, exitedMs),
      loopMaxMs: Math.max(...parts.map((p) => p.loopMaxMs)),
      ...summarize(parts.flatMap((p) => p.recs)),
    };
  } finally {
    await sampler?.stop();
    for (const g of groups) g.kill?.();
    await gw.kill();
    rmSync(store, { recursive: true, force: true });
  }
}

// SAMPLER runs in a process of its own, so that its clock is not the event
// loop of a process its clients keep busy: it reads the
// gateway's wsgate_upgrades_total{result="ok"} every 50 ms and prints
// "<wall ms> <count>", -1 while the gateway is away.
const SAMPLER = `
const url = process.argv[1];
for (;;) {
  let n = -1;
  try {
    const t = await (await fetch(url, { signal: AbortSignal.timeout(200) })).text();
    const m = /^wsgate_upgrades_total\\{result="ok"\\} (\\S+)$/m.exec(t);
    if (m) n = Number(m[1]);
  } catch {}
  process.stdout.write(Date.now() + " " + n + "\\n");
  await new Promise((r) => setTimeout(r, 50));
}`;

/** startSampler starts SAMPLER on the gateway's metrics; stop() kills it and returns its [wall ms, count] samples. */
function startSampler(metricsURL) {
  const proc = spawn(process.execPath, ["--input-type=module", "-e", SAMPLER, metricsURL], { stdio: ["ignore", "pipe", "inherit"] });
  let text = "";
  proc.stdout.setEncoding("utf8").on("data", (c) => (text += c));
  const exited = new Promise((res) => proc.on("exit", res));
  return {
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill();
      await exited;
      return text.split("\n").filter(Boolean).map((l) => l.split(" ").map(Number));
    },
  };
}

/**
 * gatewaySide turns the sampler's counts into the upgrades the restarted
 * gateway accepted per 100 ms from the kill (each sample's increase put in
 * the bucket of its time: ±50 ms while the sampler keeps to its 50 ms;
 * maxGapMs says whether it did).
 */
function gatewaySide(samples, wallT0, exitedMs) {
  const per100 = [];
  let prev = null;
  let polls = 0;
  let last = null;
  let maxGapMs = 0;
  for (const [at, n] of samples) {
    const t = at - wallT0;
    if (t < exitedMs) continue; // the killed gateway's counter
    polls++;
    if (last !== null) maxGapMs = Math.max(maxGapMs, at - last);
    last = at;
    if (n < 0) continue;
    const inc = n - (prev ?? 0);
    prev = n;
    const b = Math.floor(t / 100);
    while (per100.length <= b) per100.push(0);
    per100[b] += inc;
  }
  const peakAt = per100.indexOf(Math.max(...per100));
  return { polls, maxGapMs, total: prev ?? 0, peak100ms: Math.max(0, ...per100), peakAtMs: peakAt * 100, per100ms: per100 };
}

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** peak is the most values of sorted within any window of ms (sliding), and where that window starts. */
function peak(sorted, ms) {
  let best = 0;
  let at = 0;
  for (let i = 0, j = 0; j < sorted.length; j++) {
    while (sorted[j] - sorted[i] >= ms) i++;
    if (j - i + 1 > best) {
      best = j - i + 1;
      at = sorted[i];
    }
  }
  return { count: best, atMs: Math.round(at) };
}

function histogram(values, width, upTo) {
  const h = new Array(Math.max(1, Math.ceil(upTo / width))).fill(0);
  for (const v of values) h[Math.min(h.length - 1, Math.floor(v / width))]++;
  return h;
}

function summarize(recs) {
  const back = recs.filter((r) => r.back !== null).map((r) => r.back).sort((a, b) => a - b);
  const first = recs.filter((r) => r.firstTry !== null).map((r) => r.firstTry).sort((a, b) => a - b);
  const down = recs.filter((r) => r.down !== null).map((r) => r.down).sort((a, b) => a - b);
  const delays = recs.filter((r) => r.delay !== null).map((r) => r.delay).sort((a, b) => a - b);
  const tries = recs.filter((r) => r.back !== null).map((r) => r.tries);
  // How late each first attempt ran after its timer was due: its
  // process's event loop, not the client, when it is more than a few ms.
  const lag = recs.filter((r) => r.firstTry !== null && r.down !== null && r.delay !== null).map((r) => r.firstTry - r.down - r.delay).sort((a, b) => a - b);
  // When each first retry was due (disconnect seen + the delay the client
  // chose): what a fleet of separate browsers would send, which the
  // clients' processes cannot when their event loops fall behind.
  const due = recs.filter((r) => r.down !== null && r.delay !== null).map((r) => r.down + r.delay).sort((a, b) => a - b);
  const byTries = {};
  for (const t of tries) byTries[t] = (byTries[t] ?? 0) + 1;
  const q = (s) => ({ p50: round(quantile(s, 0.5)), p90: round(quantile(s, 0.9)), p99: round(quantile(s, 0.99)), max: round(s.at(-1) ?? null) });
  return {
    clients: recs.length,
    reconnected: back.length,
    notReconnected: recs.length - back.length,
    welcomeMs: { min: round(back[0] ?? null), ...q(back) },
    firstTryMs: { min: round(first[0] ?? null), ...q(first) },
    disconnectSeenMs: { min: round(down[0] ?? null), max: round(down.at(-1) ?? null) },
    firstDelayMs: { min: round(delays[0] ?? null), ...q(delays) },
    timerLagMs: q(lag),
    dueMs: { min: round(due[0] ?? null), ...q(due) },
    duePeak100ms: peak(due, 100),
    attemptsToWelcome: byTries,
    peak100ms: peak(back, 100),
    peak1s: peak(back, 1000),
    attemptsPeak100ms: peak(allTries(recs), 100),
    welcomes100ms: histogram(back, 100, Math.max(back.at(-1) ?? 0, 1) + 1),
    _back: back,
    _due: due,
  };
}

// allTries is every attempt start the records saw (first attempt only, for
// lack of more: later attempts are counted, not timed).
function allTries(recs) {
  return recs.filter((r) => r.firstTry !== null).map((r) => r.firstTry).sort((a, b) => a - b);
}

/** rebin sums 100 ms counts into buckets of width ms (a bucket gets the 100 ms bins that start in it). */
function rebin(per100, width, n) {
  const out = new Array(n).fill(0);
  per100.forEach((c, i) => {
    const b = Math.floor((i * 100) / width);
    if (b < n) out[b] += c;
  });
  return out;
}

function round(v) {
  return v === null ? null : Math.round(v);
}

function fmtUpgrades(u) {
  const nonzero = Object.keys(u).sort().filter((k) => u[k] !== 0);
  return nonzero.map((k) => `${k}=${u[k]}`).join(" ") + (nonzero.length < Object.keys(u).length ? "  (every other result 0)" : "");
}

function report(res, env) {
  const L = [];
  const p = (s = "") => L.push(s);
  p(`reconnect spread of ${N} clients after a SIGKILLed gateway, restarted at once on the same ports and store`);
  p(`${env.date}, node ${process.version}, ${cpus().length} cores, load before ${env.load}`);
  p(P === 1 ? `the clients in one Node process (--procs 1), the one that kills and restarts the gateway` : `the clients in ${P} Node processes of ${Math.ceil(N / P)} at most (--procs ${P}), forked by the one that kills and restarts the gateway`);
  for (const r of res) {
    p();
    p(`== ${r.name}`);
    p(`connected ${r.clients} in ${(r.connectMs / 1000).toFixed(2)}s (at most ${CONNECT_WINDOW} connecting at once); kill after every connection was ${STABLE_MS / 1000}s old`);
    p(`gateway exited ${ms(r.exitedMs)} after SIGKILL, listening again at ${ms(r.listeningMs)}`);
    p(`disconnect seen   ${ms(r.disconnectSeenMs.min)} – ${ms(r.disconnectSeenMs.max)}`);
    if (r.firstDelayMs.p50 !== null) {
      p(`first retry delay p50 ${ms(r.firstDelayMs.p50)}  p90 ${ms(r.firstDelayMs.p90)}  p99 ${ms(r.firstDelayMs.p99)}  max ${ms(r.firstDelayMs.max)}  (${r.naive ? "fixed" : "the client's own figure, from its state event"})`);
    }
    p(`first retry due   p50 ${ms(r.dueMs.p50)}  p90 ${ms(r.dueMs.p90)}  p99 ${ms(r.dueMs.p99)}  max ${ms(r.dueMs.max)}  from the kill (disconnect seen + delay); peak ${r.duePeak100ms.count} due in 100 ms`);
    p(`first attempt     p50 ${ms(r.firstTryMs.p50)}  p90 ${ms(r.firstTryMs.p90)}  p99 ${ms(r.firstTryMs.p99)}  max ${ms(r.firstTryMs.max)}  from the kill; peak ${r.attemptsPeak100ms.count} first attempts in 100 ms`);
    p(`reconnected       ${r.reconnected} of ${r.clients}${r.notReconnected ? `  (${r.notReconnected} not within ${opts.timeout / 1000}s)` : ""}`);
    p(`welcome           min ${ms(r.welcomeMs.min)}  p50 ${ms(r.welcomeMs.p50)}  p90 ${ms(r.welcomeMs.p90)}  p99 ${ms(r.welcomeMs.p99)}  max ${ms(r.welcomeMs.max)}  from the kill`);
    p(`peak welcomes     ${r.peak100ms.count} in 100 ms (from ${ms(r.peak100ms.atMs)}), ${r.peak1s.count} in 1 s (from ${ms(r.peak1s.atMs)})`);
    p(`attempts to welcome ${Object.entries(r.attemptsToWelcome).map(([k, v]) => `${k}: ${v}`).join(", ")}`);
    p(`first attempt's lag behind its timer p50 ${ms(r.timerLagMs.p50)}  p99 ${ms(r.timerLagMs.p99)}  max ${ms(r.timerLagMs.max)}  (${P === 1 ? "this process" : "the clients' processes"} busy, not the client)`);
    const stalls = r.stalls.map(([a, b, k]) => `${P === 1 ? "" : `p${k}:`}${ms(a)}+${ms(b)}`).join(" ") || "none";
    p(`node event loop: max delay ${r.loopMaxMs.toFixed(0)} ms${P === 1 ? "" : ` (the most of ${P})`}; stalls over 100 ms (${P === 1 ? "" : "process:"}from+length) ${stalls}`);
    const g = r.gatewaySide;
    p(`gateway side      ${g.total} upgrades ok after the restart; peak ${g.peak100ms} in 100 ms (at ${ms(g.peakAtMs)}), from /metrics every 50 ms in another process (${g.polls} polls, at most ${ms(g.maxGapMs)} apart)`);
    p(`wsgate_upgrades_total before the kill  ${fmtUpgrades(r.before)}`);
    p(`wsgate_upgrades_total after (restarted) ${fmtUpgrades(r.after)}`);
  }
  const upTo = Math.max(...res.map((r) => Math.max(r.welcomeMs.max ?? 0, r.dueMs.max ?? 0, r.gatewaySide.per100ms.length * 100))) + 1;
  const hs = res.map((r) => histogram(r._back, opts.bucket, upTo));
  const ds = res.map((r) => histogram(r._due, opts.bucket, upTo));
  const gs = res.map((r) => rebin(r.gatewaySide.per100ms, opts.bucket, hs[0].length));
  const top = Math.max(1, ...gs.flat());
  const W = 25;
  p();
  p(`per ${opts.bucket} ms after the kill: first retries due by the client's timers, upgrades the restarted gateway`);
  p(`accepted (bar: # = ${(top / W).toFixed(0)}), and welcomes the clients saw`);
  p(`${"from".padStart(7)}  ${res.map((r) => `${(r.naive ? "naive" : "@wsgate/client").padEnd(W)} ${"due".padStart(5)} ${"gateway".padStart(7)} ${"welcome".padStart(7)}`).join("   ")}`);
  let last = 0;
  for (let b = 0; b < hs[0].length; b++) if (hs.some((h) => h[b]) || gs.some((g) => g[b]) || ds.some((d) => d[b])) last = b;
  for (let b = 0; b <= last; b++) {
    const cols = res.map((_, i) => `${"#".repeat(Math.round((gs[i][b] / top) * W)).padEnd(W)} ${String(ds[i][b]).padStart(5)} ${String(gs[i][b]).padStart(7)} ${String(hs[i][b]).padStart(7)}`);
    p(`${((b * opts.bucket) / 1000).toFixed(2).padStart(6)}s  ${cols.join("   ")}`);
  }
  return L.join("\n");
}

function ms(v) {
  if (v === null || v === undefined) return "-";
  return v >= 1000 ? `${(v / 1000).toFixed(2)}s` : `${Math.round(v)}ms`;
}

async function main() {
  const env = { date: new Date().toISOString(), load: loadavg().map((x) => x.toFixed(2)).join(" ") };
  const res = [await runPhase("wsgate")];
  if (opts.naive) res.push(await runPhase("naive"));
  const text = report(res, env);
  console.log(text);
  if (opts.out) {
    mkdirSync(opts.out, { recursive: true });
    const base = join(opts.out, `reconnect-${N === 10000 ? "10k" : N}`);
    writeFileSync(`${base}.txt`, text + "\n");
    const json = {
      date: env.date,
      node: process.version,
      loadBefore: env.load,
      n: N,
      procs: P,
      bucketMs: opts.bucket,
      naiveDelayMs: opts.naiveDelay,
      runs: res.map(({ _back, _due, ...r }) => r),
    };
    writeFileSync(`${base}.json`, JSON.stringify(json, null, 1) + "\n");
    console.error(`wrote ${base}.txt and ${base}.json`);
  }
}

if (WORKER) {
  worker();
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
