// Helpers of the Node tests: a real wsgate gateway in a child process,
// tokens, publishes through the binary, and polling.
import { spawn, spawnSync, execFile } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";

export { WebSocket };

/** bin is the wsgate binary: WSGATE_BIN, or the one test/run.js built. */
export const bin = process.env.WSGATE_BIN || fileURLToPath(new URL("../.cache/wsgate", import.meta.url));
if (!existsSync(bin)) throw new Error(`no wsgate binary at ${bin}: run the tests with \`npm test\`, or set WSGATE_BIN`);

/** SECRET is the HS256 key of every gateway the tests start. */
export const SECRET = "wsgate-js-client-test-secret-0123456789";

function b64url(v) {
  return Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
}

/**
 * token signs an HS256 JWT for user sub, valid for ttl seconds (negative:
 * expired that long ago), with the topic patterns channels, and, when
 * given, the upstream patterns and the issue time iat (Unix seconds).
 */
export function token(sub, { ttl = 3600, channels = ["topic.>"], upstream, iat } = {}) {
  const head = b64url({ alg: "HS256", typ: "JWT" });
  const claims = { sub, exp: Math.floor(Date.now() / 1000) + ttl, channels };
  if (upstream) claims.upstream = upstream;
  if (iat !== undefined) claims.iat = iat;
  const body = b64url(claims);
  const sig = createHmac("sha256", SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** tempDir makes a directory removed when the test ends. */
export function tempDir(t) {
  const d = mkdtempSync(join(tmpdir(), "wsgate-js-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** freeAddr returns 127.0.0.1:<a port that was free a moment ago>. */
export async function freeAddr() {
  const srv = createServer();
  await new Promise((res) => srv.listen(0, "127.0.0.1", res));
  const { port } = srv.address();
  await new Promise((res) => srv.close(res));
  return `127.0.0.1:${port}`;
}

/**
 * startGateway runs the binary with JWT auth, durable notifications in a
 * store directory, an embedded NATS, a JSON log, and the given flags after
 * these (a flag given twice: the last wins). It resolves once the gateway
 * listens and its durable stream is ready. The process is killed when the
 * test ends; its log is printed if the test failed.
 */
export async function startGateway(t, { store, listen = "127.0.0.1:0", nats = "127.0.0.1:0", flags = [] } = {}) {
  const args = [
    "--auth=jwt", "--jwt-secret", SECRET,
    "--listen", listen, "--admin", "127.0.0.1:0",
    "--embedded-nats-listen", nats, "--nats-store-dir", store ?? tempDir(t),
    "--log-format", "json", "--drain-delay", "0", "--drain-timeout", "0",
    ...flags,
  ];
  const proc = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  const g = { proc, lines: [], text: "", exited: null };
  g.exited = new Promise((res) => proc.on("exit", (code, signal) => res({ code, signal })));
  let buf = "";
  const onData = (chunk) => {
    g.text += chunk;
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        g.lines.push(JSON.parse(line));
      } catch {
        // not JSON: kept in text only
      }
    }
  };
  proc.stdout.setEncoding("utf8").on("data", onData);
  proc.stderr.setEncoding("utf8").on("data", onData);
  g.find = (msg) => g.lines.find((l) => typeof l.msg === "string" && l.msg.startsWith(msg));
  g.waitLog = async (msg, ms = 20000) => {
    let exited = false;
    g.exited.then(() => (exited = true));
    return waitFor(() => {
      const l = g.find(msg);
      if (l) return l;
      if (exited) throw new Error(`the gateway exited without logging "${msg}":\n${g.text}`);
    }, ms, `the gateway to log "${msg}"`);
  };
  g.kill = async (signal = "SIGKILL") => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    return g.exited;
  };
  t.after(async () => {
    await g.kill("SIGKILL");
  });
  const origin = t;
  t.after(() => {
    // node:test has no t.failed; print the log when asked to.
    if (process.env.WSGATE_TEST_LOG) origin.diagnostic(g.text);
  });
  const l = await g.waitLog("gateway listening");
  g.addr = l.addr;
  g.natsURL = l.nats;
  g.url = `ws://${l.addr}/ws`;
  await g.waitLog("durable stream ready");
  return g;
}

/**
 * publish runs `wsgate publish` and resolves with what it printed; with
 * durable, with the stored seq as a number. target is {user}, {topic} or
 * {broadcast: true}.
 */
export function publish(natsURL, target, payload, { durable = false, id, timeout = "2s" } = {}) {
  const args = ["publish", "--nats-url", natsURL, "--timeout", timeout];
  if (durable) args.push("--durable");
  if (id) args.push("--id", id);
  if (target.user) args.push("--user", target.user);
  else if (target.topic) args.push("--topic", target.topic);
  else args.push("--broadcast");
  args.push(typeof payload === "string" ? payload : JSON.stringify(payload));
  return new Promise((res, rej) => {
    execFile(bin, args, { timeout: 10000 }, (err, stdout, stderr) => {
      if (err) return rej(new Error(`wsgate ${args.join(" ")}: ${err.message}\n${stderr}`));
      if (!durable) return res(stdout);
      const m = /seq (\d+)/.exec(stdout);
      if (!m) return rej(new Error(`wsgate publish printed ${JSON.stringify(stdout)}`));
      res(Number(m[1]));
    });
  });
}

let helpText;

/**
 * hasCommand reports whether `wsgate help` lists the command: tests of
 * commands that have not landed yet skip.
 */
export function hasCommand(name) {
  if (helpText === undefined) {
    const r = spawnSync(bin, ["help"], { encoding: "utf8", timeout: 10000 });
    helpText = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  }
  return new RegExp(`^\\s*wsgate ${name}\\b`, "m").test(helpText);
}

/** needs is the options of a test that needs the commands: a skip with the reason when `wsgate help` does not list one. */
export function needs(...names) {
  const missing = names.filter((n) => !hasCommand(n));
  return missing.length ? { skip: `\`wsgate help\` lists no ${missing.map((n) => `\`wsgate ${n}\``).join(", ")} yet` } : {};
}

/** wsgate runs the binary with args and resolves with what it printed. */
export function wsgate(...args) {
  return new Promise((res, rej) => {
    execFile(bin, args, { timeout: 10000 }, (err, stdout, stderr) => {
      if (err) return rej(new Error(`wsgate ${args.join(" ")}: ${err.message}\n${stdout}${stderr}`));
      res(stdout + stderr);
    });
  });
}

/** publishRetries counts the publishes publishUntilStored retried. */
export let publishRetries = 0;

/** publishUntilStored publishes a durable notification, retrying with the same id until it is stored (or a duplicate of one that was). */
export async function publishUntilStored(natsURL, target, payload, id, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await publish(natsURL, target, payload, { durable: true, id, timeout: "1s" });
    } catch (e) {
      publishRetries++;
      if (Date.now() > deadline) throw e;
      await sleep(100);
    }
  }
}

export const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

/**
 * waitFor polls fn every 20ms until it returns something other than
 * undefined (resolving with it) or throws (rejecting), or ms pass.
 */
export async function waitFor(fn, ms = 10000, what = "the condition") {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`waited ${ms}ms for ${what}${last ? ": " + last : ""}`);
    await sleep(20);
  }
}

/**
 * record follows a client: its states (with details), welcomes, messages
 * and errors, in arrays the test reads.
 */
export function record(client) {
  const r = { states: [], welcomes: [], messages: [], errors: [], lost: [], resumed: [] };
  client.on("state", (s, d) => r.states.push({ state: s, ...d, at: Date.now() }));
  client.on("welcome", (w) => r.welcomes.push(w));
  client.on("message", (m) => r.messages.push(m));
  client.on("error", (e) => r.errors.push(e));
  client.on("lost", (l) => r.lost.push(l));
  client.on("resumed", (x) => r.resumed.push(x));
  return r;
}

/** seqs returns the seqs of the durable messages of channel ch that r recorded. */
export function seqs(r, ch) {
  return r.messages.filter((m) => m.channel === ch && m.durable).map((m) => m.seq);
}

/**
 * forge publishes payload on a volatile subject with stream headers of
 * our own, as the stream's republish would: a durable frame with any
 * position (docs/protocol.md: publishers on the volatile subjects are
 * trusted like the stream). It speaks the NATS text protocol itself.
 */
export async function forge(natsURL, subject, { seq, prev }, payload) {
  const { hostname, port } = new URL(natsURL);
  const sock = connect(Number(port), hostname);
  sock.setEncoding("utf8");
  let got = "";
  const wait = (word) =>
    new Promise((res, rej) => {
      const check = () => {
        if (got.includes(word)) {
          sock.off("data", onData);
          res();
        }
      };
      const onData = (d) => {
        got += d;
        check();
      };
      sock.on("data", onData);
      sock.once("error", rej);
      check();
    });
  try {
    await wait("INFO ");
    const hdr = `NATS/1.0\r\nNats-Stream: NOTIFY\r\nNats-Subject: durable.${subject}\r\nNats-Sequence: ${seq}\r\nNats-Last-Sequence: ${prev}\r\n\r\n`;
    const body = JSON.stringify(payload);
    sock.write(`CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n`);
    sock.write(`HPUB ${subject} ${hdr.length} ${hdr.length + Buffer.byteLength(body)}\r\n${hdr}${body}\r\nPING\r\n`);
    await wait("PONG");
  } finally {
    sock.destroy();
  }
}
