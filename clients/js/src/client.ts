import { backoffDelay } from "./backoff.js";
import {
  CancelledError,
  ClosedError,
  HandlerError,
  NotConnectedError,
  ProtocolError,
  ServerError,
  TimeoutError,
  TokenError,
  WsgateError,
} from "./errors.js";
import { Positions, type Entry } from "./positions.js";
import { defaultStorage, isCount, type Position } from "./storage.js";
import type {
  ClientEvents,
  Handler,
  Message,
  Options,
  PublishOptions,
  RequestOptions,
  State,
  StateDetail,
  SubscriptionChange,
  TokenContext,
  WebSocketConstructor,
  WebSocketLike,
  Welcome,
} from "./types.js";

/** A connection that ends within this many ms of its welcome counts as a failed attempt: the backoff is not reset. */
const STABLE_AFTER = 5000;

/** The client's own close code when it gives up on a socket (connect or ping timeout). */
const CLIENT_TIMEOUT = 4000;

const OPEN = 1;

/** How long past an upstream op's timeout the client waits for the gateway's answer before it gives up by itself. */
const UPSTREAM_GRACE = 2000;

/** The gateway's channel names: dot-separated tokens of [A-Za-z0-9_-], at most 128 bytes (ASCII only, so characters). */
const CHANNEL = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;
const MAX_CHANNEL = 128;

type Timer = ReturnType<typeof setTimeout>;

interface Waiter {
  resolve(): void;
  reject(e: unknown): void;
}

/** Topic is a topic the application wants, subscribed or not yet. */
interface Topic {
  subscribed: boolean; // the gateway answered "subscribed" on this connection
  ref: number; // of the subscribe op in flight, 0 for none
  waiters: Waiter[]; // subscribe() calls waiting for the answer
  retries: number; // consecutive "unavailable" answers
  retry?: Timer;
  server: boolean; // the gateway added it on a service's request: a "forbidden" on restore drops it quietly
}

/** Upstream is a publish or request waiting for the gateway's answer, by ref. */
interface Upstream {
  op: "publish" | "request";
  channel: string;
  resolve(data: unknown): void;
  reject(e: unknown): void;
  timer: Timer;
}

/** Request is an op in flight, by ref. */
interface Request {
  op: "subscribe" | "unsubscribe" | "resume";
  channel: string;
  waiter?: Waiter; // unsubscribe
}

/** Resuming is a channel between its resume op and the answer (or a retry of it). */
interface Resuming {
  ref: number; // 0 while a retry waits
  tries: number;
  retry?: Timer;
}

type Listener = (...args: any[]) => unknown;

/**
 * WsgateClient is one logical connection to a wsgate gateway, kept up
 * across network failures, gateway restarts and token expiry, as
 * docs/protocol.md describes: reconnect with exponential backoff and full
 * jitter, close codes honoured, liveness by the ping op, subscriptions
 * restored, and for durable notifications positions kept, resumed, checked
 * for gaps and duplicates, and acked.
 *
 * Nothing is sent until connect(). Every callback runs on the event loop;
 * the client is not meant to be shared across workers.
 */
export class WsgateClient {
  private readonly opts: Options;
  private readonly WS: WebSocketConstructor;
  private readonly min: number;
  private readonly max: number;
  private readonly autoAck: boolean;
  private readonly ackInterval: number;

  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly channelHandlers = new Map<string, Set<Handler>>();

  private st: State = "disconnected";
  private started = false;
  private closed = false;
  private stopped: ClosedError | null = null; // after 4002/4003, until reconnect()
  private attempts = 0;
  private tokenReason: TokenContext["reason"] = "connect";

  private ws: WebSocketLike | null = null;
  private gen = 0; // changes whenever the socket in use does
  private welcomeInfo: Welcome | null = null;
  private welcomedAt = 0;
  private lastRx = 0;
  private nextRef = 1;
  private readonly requests = new Map<number, Request>();
  private readonly topics = new Map<string, Topic>();
  private readonly upstream = new Map<number, Upstream>();
  private readyWaiters: Array<{ resolve(w: Welcome): void; reject(e: unknown): void }> = [];

  private reconnectTimer: Timer | undefined;
  private connectTimer: Timer | undefined;
  private pingTimer: Timer | undefined;
  private pongTimer: Timer | undefined;
  private ackTimer: Timer | undefined;

  // Durable bookkeeping, all empty for a volatile-only application.
  private readonly durable: Positions;
  private readonly resuming = new Map<string, Resuming>();
  private readonly continuing = new Map<string, number>(); // replayed frames still to come of a replay cut at the gateway's limit
  private hold = 0; // position reads in flight; frames wait in inbox meanwhile
  // The implicit channels whose positions the current attempt gave in its
  // upgrade request (?resume=), and for which user: resumed at the welcome,
  // answered only when something is missing.
  private urlResumed: { user: string; channels: string[] } | null = null;
  private inbox: any[] = [];

  private readonly onOnline = (): void => {
    if (this.reconnectTimer !== undefined && !this.closed && !this.stopped) {
      this.log("online: reconnecting now");
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
      void this.open();
    }
  };

  constructor(options: Options) {
    if (!options || typeof options.url !== "string") throw new TypeError("wsgate: options.url is required");
    this.opts = options;
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) {
      throw new TypeError('wsgate: no WebSocket implementation here: pass options.WebSocket (in Node 20, (await import("ws")).WebSocket)');
    }
    this.WS = WS;
    this.durable = new Positions(options.storage ?? defaultStorage(), options.storagePrefix ?? "wsgate:", (e) => this.fail(e));
    this.min = positive(options.backoff?.min, 1000);
    this.max = Math.max(this.min, positive(options.backoff?.max, 30000));
    this.autoAck = options.autoAck ?? true;
    this.ackInterval = positive(options.ackInterval, 1000);
  }

  /** state is where the connection stands now. */
  get state(): State {
    return this.st;
  }

  /** welcome is the current connection's welcome, or null while not connected. */
  get welcome(): Welcome | null {
    return this.welcomeInfo;
  }

  /** position returns the client's position on a channel (the last durable notification applied), or undefined. */
  position(channel: string): Position | undefined {
    return this.durable.get(this.resolve(channel));
  }

  /**
   * connect starts connecting, and keeps the connection up until close().
   * Calling it again does nothing.
   */
  connect(): void {
    if (this.closed) throw new ClosedError();
    if (this.started) return;
    this.started = true;
    const g = globalThis as { addEventListener?: (type: string, fn: () => void) => void };
    if (typeof g.addEventListener === "function") g.addEventListener("online", this.onOnline);
    void this.open();
  }

  /**
   * reconnect connects again now: after the client stopped on 4002 or 4003
   * (on a user action, say), or to replace a connection that works. The
   * backoff starts over.
   */
  reconnect(): void {
    if (this.closed) throw new ClosedError();
    this.stopped = null;
    this.started = true;
    this.attempts = 0;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const ws = this.ws;
    this.teardown(1000);
    if (ws) closeQuietly(ws, 1000);
    void this.open();
  }

  /**
   * ready resolves with the welcome of the current connection, or of the
   * next one. It rejects with ClosedError when the client is closed, or
   * stops on 4002 or 4003.
   */
  ready(): Promise<Welcome> {
    if (this.welcomeInfo) return Promise.resolve(this.welcomeInfo);
    if (this.closed) return Promise.reject(new ClosedError());
    if (this.stopped) return Promise.reject(this.stopped);
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /**
   * close ends the client for good: pending acks are sent, the socket is
   * closed with 1000, and every promise still waiting is rejected with
   * ClosedError.
   */
  close(): void {
    if (this.closed) return;
    if (this.welcomeInfo) this.flushAcks();
    this.closed = true;
    const g = globalThis as { removeEventListener?: (type: string, fn: () => void) => void };
    if (typeof g.removeEventListener === "function") g.removeEventListener("online", this.onOnline);
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    const ws = this.ws;
    this.teardown();
    if (ws) closeQuietly(ws, 1000);
    const err = new ClosedError();
    for (const t of this.topics.values()) {
      clearTimeout(t.retry);
      for (const w of t.waiters) w.reject(err);
    }
    this.topics.clear();
    this.rejectReady(err);
    this.setState("closed", { attempt: this.attempts });
  }

  /**
   * subscribe subscribes a topic ("topic.<name>") and resolves once the
   * gateway answered "subscribed"; it is restored after every reconnect
   * until unsubscribe(). It rejects with a ServerError carrying the
   * gateway's code (`forbidden`, `invalid_channel`,
   * `too_many_subscriptions`); on `unavailable` the client retries with
   * backoff and the promise waits. Called while disconnected, it waits for
   * the connection.
   */
  subscribe(topic: string): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError());
    let t = this.topics.get(topic);
    if (!t) {
      t = { subscribed: false, ref: 0, waiters: [], retries: 0, server: false };
      this.topics.set(topic, t);
    }
    if (t.subscribed) return Promise.resolve();
    const tp = t;
    const p = new Promise<void>((resolve, reject) => tp.waiters.push({ resolve, reject }));
    if (this.welcomeInfo && !t.ref && t.retry === undefined) this.sendSubscribe(topic, t);
    return p;
  }

  /**
   * unsubscribe leaves a topic; it resolves once the gateway answered, or at
   * once while disconnected. A subscribe() still waiting is rejected with
   * CancelledError. The topic's durable position is kept: subscribing again
   * later resumes from it.
   */
  unsubscribe(topic: string): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError());
    const t = this.topics.get(topic);
    this.topics.delete(topic);
    if (t) {
      clearTimeout(t.retry);
      const err = new CancelledError(`wsgate: unsubscribe ${topic} came before the gateway answered the subscribe`);
      for (const w of t.waiters) w.reject(err);
    }
    this.stopResuming(topic);
    if (!this.welcomeInfo) return Promise.resolve();
    // Its ack goes out before the gateway forgets that the connection was in it.
    for (const [ch, pos] of this.durable.takeAcks((ch) => (ch !== topic ? "keep" : t?.subscribed ? "send" : "drop"))) {
      this.send({ op: "ack", channel: ch, seq: pos.seq, epoch: pos.epoch });
    }
    const ref = this.ref();
    const p = new Promise<void>((resolve, reject) => this.requests.set(ref, { op: "unsubscribe", channel: topic, waiter: { resolve, reject } }));
    this.send({ op: "unsubscribe", channel: topic, ref });
    return p;
  }

  /** topicList returns the topics subscribed or being subscribed, those the gateway added included. */
  topicList(): string[] {
    return [...this.topics.keys()];
  }

  /**
   * publish sends data (any JSON value) up to the services listening on
   * channel, through the gateway, which stamps the user id from the token
   * on it. It resolves once the gateway answered "published" or, with
   * `{ack: false}`, once the op is handed to the socket (the gateway then
   * answers nothing, and an error it sends comes out as an "error" event).
   *
   * It rejects with NotConnectedError at once while the client has no
   * connection (nothing is queued), with ServerError for the gateway's
   * refusal (`forbidden`, `rate_limited`, `unavailable`,
   * `upstream_disabled`, `invalid_channel` …), and with ClosedError when
   * the connection ends before the answer: the publish is not sent again,
   * since the gateway may or may not have forwarded it.
   */
  publish(channel: string, data: unknown, options: PublishOptions = {}): Promise<void> {
    return this.sendUpstream("publish", channel, data, options.ack ?? true, options.timeout).then(noop);
  }

  /**
   * request sends data (any JSON value) to the service that answers on
   * channel, through the gateway, and resolves with the service's reply
   * (its JSON). It rejects like publish, and with ServerError `timeout`
   * (no reply in `timeout` ms), `no_responders` (no service listens),
   * `rejected` (the service refused: `message` is its text), `bad_reply`,
   * `too_many_requests`; with TimeoutError when no answer at all came 2 s
   * after the timeout.
   */
  request(channel: string, data: unknown, options: RequestOptions = {}): Promise<unknown> {
    return this.sendUpstream("request", channel, data, true, options.timeout);
  }

  /**
   * onChannel calls handler with the notifications of one channel ("user"
   * stands for the user channel, whose id is known only from the welcome).
   * It returns a function that removes the handler.
   */
  onChannel(channel: string, handler: Handler): () => void {
    let set = this.channelHandlers.get(channel);
    if (!set) this.channelHandlers.set(channel, (set = new Set()));
    set.add(handler);
    return () => {
      set.delete(handler);
      if (set.size === 0 && this.channelHandlers.get(channel) === set) this.channelHandlers.delete(channel);
    };
  }

  /** on adds a listener of an event and returns a function that removes it. */
  on<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener);
    return () => this.off(event, listener);
  }

  /** off removes a listener added with on. */
  off<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): void {
    this.listeners.get(event)?.delete(listener as Listener);
  }

  // --- connection ---

  private async open(): Promise<void> {
    if (this.closed || this.stopped) return;
    const gen = ++this.gen;
    this.setState("connecting", { attempt: this.attempts });
    // The timeout covers the token provider too: one that never answers must not stall the client.
    this.connectTimer = setTimeout(() => this.attemptTimedOut(gen), positive(this.opts.connectTimeout, 10000));
    let url = this.opts.url;
    if (this.opts.token) {
      let token: string;
      try {
        token = await this.opts.token({ reason: this.tokenReason });
      } catch (e) {
        if (gen !== this.gen || this.closed) return;
        this.fail(new TokenError(e));
        this.teardown();
        this.ended(CLIENT_TIMEOUT, "token provider failed", false);
        return;
      }
      if (gen !== this.gen || this.closed) return;
      url = withToken(url, String(token));
    }
    url = this.withPositions(url);
    let ws: WebSocketLike;
    try {
      ws = new this.WS(url);
    } catch (e) {
      this.fail(new WsgateError(`wsgate: cannot open ${this.opts.url}`, { cause: e }));
      this.teardown();
      this.ended(CLIENT_TIMEOUT, "cannot open", false);
      return;
    }
    this.ws = ws;
    this.log("connecting, attempt", this.attempts);
    ws.onopen = null;
    ws.onmessage = (e) => this.onFrame(ws, e.data);
    ws.onclose = (e) => this.onSocketClose(ws, e.code, e.reason);
    ws.onerror = () => this.log("socket error");
  }

  /**
   * withPositions adds to url the positions of the implicit channels this
   * client holds in memory (its user is known from an earlier welcome), so
   * that the gateway resumes them at the welcome without an op or, when
   * nothing was missed, an answer (protocol.md, "Positions in the upgrade
   * request").
   */
  private withPositions(url: string): string {
    this.urlResumed = null;
    const user = this.durable.user;
    if (user === null) return url;
    const entries: string[] = [];
    const channels: string[] = [];
    for (const ch of ["user." + user, "broadcast"]) {
      const p = this.durable.get(ch);
      if (p && p.epoch > 0) {
        entries.push(`${ch}:${p.seq}:${p.epoch}`);
        channels.push(ch);
      }
    }
    if (entries.length === 0) return url;
    this.urlResumed = { user, channels };
    return withParam(url, "resume", entries.join(","));
  }

  /** attemptTimedOut gives up on an attempt that has not been welcomed within connectTimeout. */
  private attemptTimedOut(gen: number): void {
    if (gen !== this.gen || this.welcomeInfo) return;
    this.log("connect timeout");
    const ws = this.ws;
    this.teardown();
    if (ws) closeQuietly(ws, CLIENT_TIMEOUT, "connect timeout");
    this.ended(CLIENT_TIMEOUT, "connect timeout", false);
  }

  /** giveUp drops a connection whose gateway stopped answering, and reconnects. */
  private giveUp(ws: WebSocketLike, reason: string): void {
    if (ws !== this.ws) return;
    this.log(reason);
    this.teardown(CLIENT_TIMEOUT);
    closeQuietly(ws, CLIENT_TIMEOUT, reason);
    this.ended(CLIENT_TIMEOUT, reason, true);
  }

  private onSocketClose(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.log("closed", code, reason);
    const welcomed = this.welcomeInfo !== null;
    this.teardown(code);
    this.ended(code, reason, welcomed);
  }

  /**
   * ended decides what follows a connection's end, by its close code, as
   * docs/protocol.md's "Reconnecting" says.
   */
  private ended(code: number, reason: string, welcomed: boolean): void {
    if (this.closed) return;
    if (welcomed && Date.now() - this.welcomedAt >= STABLE_AFTER) this.attempts = 0;
    let delay: number;
    let stop = false;
    switch (true) {
      case code === 4003:
        stop = !this.opts.reconnectOnReplaced;
        delay = this.backoff();
        break;
      case code === 4005:
        // The user logged out: the app decides when (and as whom) to come back.
        stop = !this.opts.reconnectOnLogout;
        delay = this.backoff();
        break;
      case code === 4006:
        // The credentials were revoked: the gateway refuses every token
        // issued until now, so the provider must make a new one.
        this.tokenReason = "revoked";
        delay = this.backoff();
        break;
      case code === 4002:
        stop = !this.opts.reconnectOnTooManyConnections;
        delay = Math.floor(this.max / 2 + Math.random() * (this.max / 2));
        this.attempts++;
        break;
      case code === 1008 && reason === "token expired":
        this.tokenReason = "expired";
        delay = this.attempts === 0 ? 0 : this.backoff();
        if (this.attempts === 0) this.attempts++;
        break;
      case code === 1002 || code === 1003 || code === 1007 || code === 1008 || code === 1009:
        // A client bug (or a rate limit): come back, but not soon.
        this.attempts = Math.max(this.attempts, 3);
        delay = this.backoff();
        break;
      default:
        delay = this.backoff();
    }
    if (stop) {
      this.stopped = new ClosedError(`wsgate: stopped reconnecting after close ${code} ${reason}`, code);
      this.rejectReady(this.stopped);
      this.setState(code === 4005 ? "closed" : "disconnected", { code, reason, willReconnect: false, attempt: this.attempts });
      return;
    }
    this.setState("disconnected", { code, reason, willReconnect: true, delay, attempt: this.attempts });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.open();
    }, delay);
  }

  /** backoff returns the next attempt's delay and counts the attempt. */
  private backoff(): number {
    return backoffDelay(this.attempts++, this.min, this.max);
  }

  /**
   * teardown forgets the current socket and everything tied to it;
   * positions, topics and acks stay. Publishes and requests still waiting
   * are rejected with ClosedError (code: the close code, when known): they
   * are not sent again, since the gateway may have forwarded them.
   */
  private teardown(code?: number): void {
    this.gen++;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
      ws.onerror = noop; // the ws package throws on an error event nobody listens to
    }
    this.welcomeInfo = null;
    clearTimeout(this.connectTimer);
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.connectTimer = this.pingTimer = this.pongTimer = undefined;
    for (const req of this.requests.values()) req.waiter?.resolve(); // an unsubscribe: the connection's subscriptions are gone
    this.requests.clear();
    if (this.upstream.size > 0) {
      const err = new ClosedError(
        `wsgate: the connection ended${code !== undefined ? ` (${code})` : ""} before the gateway answered; the op may or may not have reached the service`,
        code,
      );
      const pending = [...this.upstream.values()];
      this.upstream.clear();
      for (const u of pending) {
        clearTimeout(u.timer);
        u.reject(err);
      }
    }
    for (const t of this.topics.values()) {
      t.subscribed = false;
      t.ref = 0;
      clearTimeout(t.retry);
      t.retry = undefined;
    }
    for (const r of this.resuming.values()) clearTimeout(r.retry);
    this.resuming.clear();
    this.continuing.clear();
    this.hold = 0;
    this.inbox = [];
  }

  // --- frames ---

  private onFrame(ws: WebSocketLike, raw: unknown): void {
    if (ws !== this.ws) return;
    this.lastRx = Date.now();
    if (this.pongTimer !== undefined) {
      clearTimeout(this.pongTimer);
      this.pongTimer = undefined;
    }
    let m: any;
    try {
      m = JSON.parse(typeof raw === "string" ? raw : String(raw));
    } catch {
      this.fail(new ProtocolError("a frame that is not JSON"));
      return;
    }
    if (m === null || typeof m !== "object") return;
    if (this.hold > 0) {
      this.inbox.push(m);
      return;
    }
    this.dispatch(m);
  }

  private dispatch(m: any): void {
    if (!this.welcomeInfo) {
      if (m.type === "welcome") this.onWelcome(m);
      else this.fail(new ProtocolError(`a ${String(m.type)} frame before the welcome`));
      return;
    }
    switch (m.type) {
      case "message":
        return this.onMessage(m);
      case "subscribed":
        if (serverSide(m)) return this.onServerSubscribed(m);
        return this.onSubscribed(m);
      case "unsubscribed": {
        if (serverSide(m)) return this.onServerUnsubscribed(m);
        const req = this.take(m.ref, "unsubscribe");
        req?.waiter?.resolve();
        return;
      }
      case "published":
        return this.onUpstreamAnswer(m, "publish");
      case "reply":
        return this.onUpstreamAnswer(m, "request");
      case "resumed":
        return this.onResumed(m);
      case "missed":
        // The gateway was away from NATS: every channel with a position
        // may have a gap that no later frame will show.
        return this.resumeChannels(this.joinedChannels());
      case "error":
        return this.onError(m);
      case "pong":
        return;
      default:
        this.log("unknown frame type", m.type);
    }
  }

  private onWelcome(m: any): void {
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    const w: Welcome = { conn: String(m.conn), user: String(m.user), pingInterval: isCount(m.ping_interval) ? m.ping_interval : 0 };
    this.welcomeInfo = w;
    this.welcomedAt = Date.now();
    this.tokenReason = "reconnect";
    this.durable.forUser(w.user); // another user's positions are not ours
    this.log("welcome", w.conn, "user", w.user);
    this.setState("connected", { attempt: this.attempts });
    const ready = this.readyWaiters;
    this.readyWaiters = [];
    for (const r of ready) r.resolve(w);
    this.emit("welcome", w);
    if (this.ws === null || this.welcomeInfo !== w) return; // a listener closed it
    this.armPing();
    for (const [name, t] of this.topics) this.sendSubscribe(name, t);
    const viaURL = this.urlResumed?.user === w.user ? this.urlResumed.channels : [];
    this.resumeChannels(["user." + w.user, "broadcast"].filter((ch) => !viaURL.includes(ch)));
    if (this.durable.hasAcks && this.ackTimer === undefined) this.ackTimer = setTimeout(() => this.flushAcks(), this.ackInterval);
  }

  private onSubscribed(m: any): void {
    const req = this.take(m.ref, "subscribe");
    const t = req && this.topics.get(req.channel);
    if (!req || !t || t.ref !== m.ref) return;
    t.ref = 0;
    t.retries = 0;
    const was = t.subscribed; // the gateway added it meanwhile, and it was resumed then
    t.subscribed = true;
    const waiters = t.waiters;
    t.waiters = [];
    for (const w of waiters) w.resolve();
    if (!was) this.resumeChannels([req.channel]);
  }

  /**
   * onServerSubscribed takes a topic the gateway added on a service's
   * request: it is delivered like any subscribed topic, resumed if it has
   * a position, and subscribed again after every reconnect.
   */
  private onServerSubscribed(m: any): void {
    const ch = m.channel;
    if (typeof ch !== "string" || ch === "") return;
    let t = this.topics.get(ch);
    const was = t?.subscribed === true;
    if (!t) {
      t = { subscribed: true, ref: 0, waiters: [], retries: 0, server: true };
      this.topics.set(ch, t);
    }
    t.server = true;
    t.subscribed = true;
    if (!t.ref) {
      // No subscribe of the app's in flight (perhaps one waiting to retry
      // after "unavailable"): the connection is in the topic now.
      clearTimeout(t.retry);
      t.retry = undefined;
      t.retries = 0;
      const waiters = t.waiters;
      t.waiters = [];
      for (const w of waiters) w.resolve();
    }
    this.log("the gateway subscribed", ch);
    this.emit("subscription", { channel: ch, subscribed: true, server: true } satisfies SubscriptionChange);
    if (!was) this.resumeChannels([ch]);
  }

  /** onServerUnsubscribed drops a topic the gateway removed on a service's request, even one the app subscribed itself. */
  private onServerUnsubscribed(m: any): void {
    const ch = m.channel;
    if (typeof ch !== "string" || ch === "") return;
    const t = this.topics.get(ch);
    this.topics.delete(ch);
    if (t) {
      clearTimeout(t.retry);
      const err = new CancelledError(`wsgate: the gateway unsubscribed ${ch} before it answered the subscribe`);
      for (const w of t.waiters) w.reject(err);
    }
    this.stopResuming(ch);
    this.log("the gateway unsubscribed", ch);
    this.emit("subscription", { channel: ch, subscribed: false, server: true } satisfies SubscriptionChange);
  }

  private onUpstreamAnswer(m: any, op: Upstream["op"]): void {
    const u = typeof m.ref === "number" && m.ref > 0 ? this.upstream.get(m.ref) : undefined;
    if (!u || u.op !== op) {
      this.log("an answer to no", op, "waiting:", m.ref); // given up on by its local timeout
      return;
    }
    this.upstream.delete(m.ref);
    clearTimeout(u.timer);
    u.resolve(op === "request" ? m.data : undefined);
  }

  private onError(m: any): void {
    if (m.ref === 0 && m.code === "unavailable" && this.urlResumed?.channels.includes(m.channel)) {
      // The resume of ?resume= failed: resume by op later, dropping the
      // channel's frames meanwhile (they would look like gaps).
      const ch = String(m.channel);
      const r: Resuming = { ref: 0, tries: 1 };
      this.resuming.set(ch, r);
      const delay = backoffDelay(0, this.min, this.max);
      r.retry = setTimeout(() => {
        r.retry = undefined;
        if (this.welcomeInfo && this.resuming.get(ch) === r) this.sendResume(ch, this.durable.get(ch), r.tries);
      }, delay);
      return;
    }
    const ref = typeof m.ref === "number" ? m.ref : 0;
    const up = ref ? this.upstream.get(ref) : undefined;
    if (up) {
      this.upstream.delete(ref);
      clearTimeout(up.timer);
      up.reject(new ServerError(String(m.code), String(m.message ?? ""), up.op, up.channel, ref));
      return;
    }
    const req = ref ? this.requests.get(ref) : undefined;
    if (req) this.requests.delete(ref);
    const code = String(m.code);
    const err = new ServerError(code, String(m.message ?? ""), req?.op ?? "", req?.channel, ref);
    if (!req) {
      this.fail(err); // a refused ack, or an op the client did not send
      return;
    }
    switch (req.op) {
      case "subscribe": {
        const t = this.topics.get(req.channel);
        if (!t || t.ref !== ref) return;
        t.ref = 0;
        if (t.server && t.subscribed) {
          // The gateway added the topic while the app's own subscribe was
          // on its way: the connection is in it all the same, whatever
          // the answer to the subscribe (an "unavailable" is moot).
          for (const w of t.waiters.splice(0)) code === "unavailable" ? w.resolve() : w.reject(err);
          return;
        }
        if (code === "unavailable") {
          const delay = backoffDelay(t.retries++, this.min, this.max);
          this.log("subscribe", req.channel, "unavailable; again in", delay, "ms");
          t.retry = setTimeout(() => {
            t.retry = undefined;
            if (this.welcomeInfo && this.topics.get(req.channel) === t) this.sendSubscribe(req.channel, t);
          }, delay);
          return;
        }
        this.topics.delete(req.channel);
        if (t.waiters.length === 0) {
          // A topic the gateway added, refused on a reconnect: the token
          // no longer allows it, which is no error of the app's.
          if (t.server && code === "forbidden") this.log("subscribe", req.channel, "(added by the gateway) forbidden now: dropped");
          else this.fail(err);
        }
        for (const w of t.waiters) w.reject(err);
        return;
      }
      case "unsubscribe":
        req.waiter?.reject(err);
        return;
      case "resume": {
        const r = this.resuming.get(req.channel);
        if (!r || r.ref !== ref) return;
        if (code === "unavailable" || code === "resume_pending") {
          // Frames stay dropped until the retry is answered: its replay covers them.
          const delay = backoffDelay(r.tries++, this.min, this.max);
          this.log("resume", req.channel, code, "; again in", delay, "ms");
          r.ref = 0;
          r.retry = setTimeout(() => {
            r.retry = undefined;
            if (this.welcomeInfo && this.resuming.get(req.channel) === r) this.sendResume(req.channel, this.durable.get(req.channel), r.tries);
          }, delay);
          return;
        }
        this.resuming.delete(req.channel);
        this.fail(err);
      }
    }
  }

  private onMessage(m: any): void {
    const ch = String(m.channel);
    if (m.seq === undefined) {
      this.deliver(ch, m, undefined);
      return;
    }
    if (!isCount(m.seq) || !isCount(m.prev) || !isCount(m.epoch)) {
      this.fail(new ProtocolError(`a durable frame of ${ch} with a malformed position`));
      return;
    }
    if (this.resuming.has(ch)) return; // the replay that follows the answer covers it
    const cut = this.countDown(ch);
    switch (this.durable.judge(ch, m.seq, m.prev, m.epoch)) {
      case "duplicate":
        this.log(ch, "duplicate seq", m.seq);
        break;
      case "gap":
        this.log(ch, "gap: prev", m.prev, "after seq", this.durable.get(ch)?.seq, "; resuming");
        this.sendResume(ch, this.durable.get(ch), 0);
        return;
      default:
        this.deliver(ch, m, this.durable.apply(ch, m.seq, m.epoch));
    }
    // The last frame of a replay cut at the gateway's limit: the rest
    // follows it, and the live frames held meanwhile were dropped.
    if (cut && this.isIn(ch) && !this.resuming.has(ch)) this.sendResume(ch, this.durable.get(ch), 0);
  }

  /**
   * countDown counts a frame of ch against the replay cut at the gateway's
   * limit, if one runs, and reports whether it was its last (the
   * answer's count-th).
   */
  private countDown(ch: string): boolean {
    const left = this.continuing.get(ch);
    if (left === undefined) return false;
    if (left > 1) {
      this.continuing.set(ch, left - 1);
      return false;
    }
    this.continuing.delete(ch);
    return true;
  }

  /** deliver calls the handlers; a durable notification then counts as processed once they are done. */
  private deliver(ch: string, m: any, entry: Entry | undefined): void {
    const durable = entry !== undefined;
    const msg: Message = {
      channel: ch,
      data: m.data,
      durable,
      ...(durable ? { seq: m.seq, prev: m.prev, epoch: m.epoch } : {}),
      ack: durable ? () => this.queueAck(ch, entry.pos) : noop,
    };
    const waits: Array<Promise<unknown>> = [];
    const call = (h: Listener): void => {
      try {
        const r = h(msg) as { then?: unknown } | undefined;
        if (r && typeof r.then === "function") {
          waits.push(Promise.resolve(r).catch((e) => this.fail(new HandlerError(ch, msg.seq, e))));
        }
      } catch (e) {
        this.fail(new HandlerError(ch, msg.seq, e));
      }
    };
    for (const h of this.channelHandlers.get(ch) ?? []) call(h);
    if (this.welcomeInfo && ch === "user." + this.welcomeInfo.user) for (const h of this.channelHandlers.get("user") ?? []) call(h);
    for (const h of this.listeners.get("message") ?? []) call(h);
    if (!entry) return;
    const e = entry;
    if (waits.length === 0) this.processed(ch, e);
    else void Promise.all(waits).then(() => this.processed(ch, e));
  }

  /** processed marks a notification processed; with autoAck, what the channel has processed in order is acked. */
  private processed(ch: string, entry: Entry): void {
    const ack = this.durable.done(ch, entry);
    if (ack && this.autoAck) this.queueAck(ch, ack);
  }

  private onResumed(m: any): void {
    let ch: string;
    if (m.ref === 0 && this.urlResumed?.channels.includes(m.channel)) {
      ch = m.channel; // a resume of ?resume=: something is missing
    } else {
      const req = this.take(m.ref, "resume");
      if (!req) return;
      ch = req.channel;
      const r = this.resuming.get(ch);
      if (!r || r.ref !== m.ref) return;
      this.resuming.delete(ch);
    }
    if (!isCount(m.seq) || !isCount(m.epoch)) {
      this.fail(new ProtocolError(`a resumed answer of ${ch} with a malformed position`));
      return;
    }
    const pos = { seq: m.seq as number, epoch: m.epoch as number };
    this.durable.resumed(ch, pos);
    const recovered = m.recovered === true;
    const reason = typeof m.reason === "string" ? m.reason : undefined;
    // With count, the replay stops after that many frames: onMessage
    // resumes again after the last. (A gateway without count shows the cut
    // by the gap of the channel's next live frame, which resumes too.)
    const count = isCount(m.count) && m.count > 0 ? m.count : 0;
    if (count > 0) this.continuing.set(ch, count);
    this.log("resumed", ch, "from", pos.seq, recovered ? "recovered" : "not recovered: " + reason, count ? `, cut after ${count}` : "");
    this.emit("resumed", { channel: ch, recovered, seq: pos.seq, epoch: pos.epoch, ...(reason ? { reason } : {}), ...(count ? { count } : {}) });
    if (!recovered && reason !== "limit") this.emit("lost", { channel: ch, reason: reason ?? "", seq: pos.seq, epoch: pos.epoch });
  }

  // --- ops ---

  private sendUpstream(op: Upstream["op"], channel: string, data: unknown, answered: boolean, timeout: number | undefined): Promise<unknown> {
    if (this.closed) return Promise.reject(new ClosedError());
    if (!validChannel(channel)) {
      return Promise.reject(
        new ServerError("invalid_channel", "a channel is dot-separated tokens of [A-Za-z0-9_-], at most 128 bytes, without wildcards (checked by the client)", op, String(channel), 0),
      );
    }
    const ws = this.ws;
    if (!this.welcomeInfo || !ws || ws.readyState !== OPEN) {
      return Promise.reject(this.stopped ?? new NotConnectedError(`wsgate: ${op} ${channel}: not connected (${this.st})`));
    }
    const ms = positive(timeout, positive(this.opts.requestTimeout, 5000));
    const ref = answered ? this.ref() : 0;
    const frame: Record<string, unknown> = { op, channel, data: data === undefined ? null : data };
    if (ref) frame["ref"] = ref;
    if (op === "request") frame["timeout"] = Math.ceil(ms);
    let text: string;
    try {
      text = JSON.stringify(frame);
    } catch (e) {
      return Promise.reject(new WsgateError(`wsgate: ${op} ${channel}: the data is not JSON: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
    }
    const limit = this.opts.maxMessageSize ?? 4096;
    if (limit > 0 && text.length > limit / 3) {
      const size = new TextEncoder().encode(text).length;
      if (size > limit) {
        // The gateway would close the connection with 1009.
        return Promise.reject(new WsgateError(`wsgate: ${op} ${channel}: ${size} bytes, over the ${limit} bytes a client message may have (maxMessageSize)`));
      }
    }
    try {
      ws.send(text);
    } catch (e) {
      return Promise.reject(new NotConnectedError(`wsgate: ${op} ${channel}: the socket refused it: ${e instanceof Error ? e.message : String(e)}`));
    }
    if (!answered) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.upstream.get(ref)?.timer !== timer) return;
        this.upstream.delete(ref);
        reject(new TimeoutError(op, channel, ref, ms + UPSTREAM_GRACE));
      }, ms + UPSTREAM_GRACE);
      this.upstream.set(ref, { op, channel, resolve, reject, timer });
    });
  }

  private send(op: object): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    try {
      ws.send(JSON.stringify(op));
    } catch (e) {
      this.log("send failed", e);
    }
  }

  private ref(): number {
    return this.nextRef++;
  }

  private take(ref: unknown, op: Request["op"]): Request | undefined {
    if (typeof ref !== "number") return undefined;
    const req = this.requests.get(ref);
    if (!req || req.op !== op) return undefined;
    this.requests.delete(ref);
    return req;
  }

  private sendSubscribe(topic: string, t: Topic): void {
    t.ref = this.ref();
    this.requests.set(t.ref, { op: "subscribe", channel: topic });
    this.send({ op: "subscribe", channel: topic, ref: t.ref });
  }

  private sendResume(ch: string, pos: Position | undefined, tries: number): void {
    const ref = this.ref();
    const old = this.resuming.get(ch);
    clearTimeout(old?.retry);
    this.continuing.delete(ch); // the new answer says where this replay stops
    this.resuming.set(ch, { ref, tries });
    this.requests.set(ref, { op: "resume", channel: ch });
    // A seq needs its epoch: a position of an unknown epoch resumes from the
    // user's acked watermark instead. Seq 0 in a known epoch is a position
    // too (from the oldest stored), not the watermark, which another device
    // may have moved past what this one has.
    if (pos && pos.epoch > 0) this.send({ op: "resume", channel: ch, seq: pos.seq, epoch: pos.epoch, ref });
    else this.send({ op: "resume", channel: ch, ref });
  }

  private stopResuming(ch: string): void {
    const r = this.resuming.get(ch);
    if (r) {
      clearTimeout(r.retry);
      this.resuming.delete(ch);
    }
    this.continuing.delete(ch);
  }

  /**
   * resumeChannels resumes each channel that has a position (in memory, or
   * in storage: read once per user), or that catchUp names.
   */
  private resumeChannels(channels: string[]): void {
    const go = (): void => {
      for (const ch of channels) {
        if (this.resuming.has(ch) || !this.isIn(ch)) continue;
        const p = this.durable.get(ch);
        if (p || this.wantsCatchUp(ch)) this.sendResume(ch, p, 0);
      }
    };
    const reads = this.durable.load(channels);
    if (!reads) {
      go();
      return;
    }
    const gen = this.gen;
    this.hold++; // frames wait: a durable one must meet its channel's position
    void reads.then(() => {
      if (gen !== this.gen) return;
      go();
      this.hold--;
      while (this.hold === 0 && this.inbox.length > 0 && gen === this.gen) this.dispatch(this.inbox.shift());
    });
  }

  private wantsCatchUp(ch: string): boolean {
    const c = this.opts.catchUp;
    if (!c) return false;
    const userCh = "user." + this.durable.user;
    if (c === true) return ch === userCh;
    return c.some((name) => name === ch || (name === "user" && ch === userCh));
  }

  /** joinedChannels lists the channels the current connection is in. */
  private joinedChannels(): string[] {
    if (!this.welcomeInfo) return [];
    const chans = ["user." + this.welcomeInfo.user, "broadcast"];
    for (const [name, t] of this.topics) if (t.subscribed) chans.push(name);
    return chans;
  }

  /** isIn reports whether the current connection is in ch. */
  private isIn(ch: string): boolean {
    if (!this.welcomeInfo) return false;
    if (ch === "broadcast" || ch === "user." + this.welcomeInfo.user) return true;
    return this.topics.get(ch)?.subscribed === true;
  }

  private queueAck(ch: string, pos: Position): void {
    if (this.closed) return;
    this.durable.queueAck(ch, pos);
    if (this.ackTimer === undefined) this.ackTimer = setTimeout(() => this.flushAcks(), this.ackInterval);
  }

  /** flushAcks sends the acks queued for the channels this connection is in; the others wait for theirs. */
  private flushAcks(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    if (!this.welcomeInfo) return; // the welcome arms the timer again
    const ready = (ch: string): "send" | "keep" | "drop" => {
      if (ch.startsWith("topic.") && !this.topics.has(ch)) return "drop"; // left: the gateway would refuse it
      return this.isIn(ch) ? "send" : "keep"; // a topic not subscribed again yet waits
    };
    for (const [ch, pos] of this.durable.takeAcks(ready)) this.send({ op: "ack", channel: ch, seq: pos.seq, epoch: pos.epoch });
  }

  // --- liveness ---

  /** armPing sends the ping op once nothing has been read for the ping interval, and gives up if nothing answers. */
  private armPing(): void {
    const w = this.welcomeInfo;
    if (!w) return;
    const interval = positive(this.opts.pingInterval, w.pingInterval > 0 ? w.pingInterval * 1000 : 25000);
    const ws = this.ws;
    const tick = (): void => {
      if (ws !== this.ws || !ws) return;
      const idle = Date.now() - this.lastRx;
      if (idle < interval) {
        this.pingTimer = setTimeout(tick, interval - idle);
        return;
      }
      this.send({ op: "ping", ref: this.ref() });
      this.pongTimer = setTimeout(() => this.giveUp(ws, "ping timeout"), positive(this.opts.pongTimeout, 5000));
      this.pingTimer = setTimeout(tick, interval);
    };
    this.pingTimer = setTimeout(tick, interval);
  }

  // --- events ---

  private setState(s: State, detail: StateDetail): void {
    if (s === this.st && s !== "disconnected") return;
    this.st = s;
    this.emit("state", s, detail);
  }

  private emit(event: keyof ClientEvents, ...args: unknown[]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const l of [...set]) {
      try {
        l(...args);
      } catch (e) {
        if (event !== "error") this.fail(new HandlerError(`"${event}" event`, undefined, e));
        else this.log("an error listener threw", e);
      }
    }
  }

  /** fail reports an error that belongs to no promise: to the error listeners, or to the debug log. */
  private fail(err: WsgateError): void {
    if ((this.listeners.get("error")?.size ?? 0) > 0) this.emit("error", err);
    else this.log(err);
  }

  private rejectReady(err: ClosedError): void {
    const ready = this.readyWaiters;
    this.readyWaiters = [];
    for (const r of ready) r.reject(err);
  }

  private resolve(channel: string): string {
    const user = this.durable.user;
    return channel === "user" && user !== null ? "user." + user : channel;
  }

  private log(...args: unknown[]): void {
    const d = this.opts.debug;
    if (!d) return;
    if (typeof d === "function") d(...args);
    else console.debug("[wsgate]", ...args);
  }
}

function noop(): void {}

/** serverSide reports whether a subscribed or unsubscribed frame is the gateway's own (a service's request), not an answer to an op of the client's, which always have a ref. */
function serverSide(m: any): boolean {
  return m.server === true || !(typeof m.ref === "number" && m.ref > 0);
}

function validChannel(ch: unknown): ch is string {
  return typeof ch === "string" && ch.length <= MAX_CHANNEL && CHANNEL.test(ch);
}

function positive(v: number | undefined, dflt: number): number {
  return typeof v === "number" && v > 0 && Number.isFinite(v) ? v : dflt;
}

function withToken(url: string, token: string): string {
  return withParam(url, "token", token);
}

function withParam(url: string, name: string, value: string): string {
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  const u = base ? new URL(url, base) : new URL(url);
  u.searchParams.set(name, value);
  return u.toString();
}

function closeQuietly(ws: WebSocketLike, code: number, reason?: string): void {
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = noop;
  try {
    ws.close(code, reason);
  } catch {
    // already closing
  }
}
