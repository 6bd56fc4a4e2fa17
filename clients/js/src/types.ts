import type { PositionStorage } from "./storage.js";
import type { WsgateError } from "./errors.js";

/**
 * State is where the client's connection stands:
 *  - "connecting": getting a token, opening a socket, waiting for the welcome;
 *  - "connected": the welcome arrived, frames flow;
 *  - "disconnected": the connection ended; `willReconnect` in the detail
 *    says whether a new attempt is scheduled (not after 4002 or 4003, see
 *    Options), and `delay` after how long;
 *  - "closed": close() was called, and nothing happens any more; or the
 *    gateway closed the connection with 4005 (the user logged out: the
 *    detail has the code and reason), and nothing happens until
 *    reconnect().
 */
export type State = "connecting" | "connected" | "disconnected" | "closed";

/** StateDetail comes with each "state" event. */
export interface StateDetail {
  /** The close code that ended the connection ("disconnected", and "closed" after 4005). 4000 is the client's own: a connect or ping timeout. */
  code?: number;
  /** The close reason, e.g. "token expired", "ping timeout". */
  reason?: string;
  /** Whether another attempt is scheduled ("disconnected" only). */
  willReconnect?: boolean;
  /** Milliseconds until that attempt. */
  delay?: number;
  /** Consecutive failed attempts so far: the backoff's exponent. */
  attempt: number;
}

/** Welcome is the gateway's first frame on a connection. */
export interface Welcome {
  /** The connection's id, for logs and support requests. */
  conn: string;
  /** The user id from the token. */
  user: string;
  /** The gateway's ping interval in seconds; 0 when it sends no pings. */
  pingInterval: number;
}

/**
 * Message is a notification. A durable one has `seq`, `prev` and `epoch`;
 * `durable` tells the two apart.
 */
export interface Message<T = unknown> {
  /** The channel: "user.<id>", "broadcast" or "topic.<name>". */
  readonly channel: string;
  /** The payload: the JSON the publisher sent, or a string for anything else. */
  readonly data: T;
  readonly durable: boolean;
  readonly seq?: number;
  readonly prev?: number;
  readonly epoch?: number;
  /**
   * ack acks this notification and every earlier one of its channel
   * (acks are cumulative), batched like automatic acks. Only needed with
   * `autoAck: false`; a no-op for a volatile notification.
   */
  ack(): void;
}

/**
 * Handler receives notifications. Its return value may be a promise: for a
 * durable notification the client then waits for it before it counts the
 * notification as processed (stores its position and, with autoAck, acks
 * it). Handlers run in the order notifications arrive; a promise does not
 * hold back the next notification, only its ack.
 */
export type Handler = (message: Message) => unknown;

/** Resumed is the gateway's answer to a resume. */
export interface Resumed {
  channel: string;
  recovered: boolean;
  /** The position the replay continues from; the client's position is now this. */
  seq: number;
  epoch: number;
  /** Why not recovered: "evicted", "epoch" or "limit". */
  reason?: string;
  /**
   * Present when more is stored than the gateway's --replay-limit: the
   * replay stops after this many notifications, and the client resumes
   * again from the last of them by itself.
   */
  count?: number;
}

/**
 * Lost says that durable notifications of a channel are gone for good
 * (resumed with recovered: false, reason "evicted" or "epoch"): fetch the
 * channel's state from the application. A "limit" answer is not lost: the
 * client resumes again by itself for the rest.
 */
export interface Lost {
  channel: string;
  reason: string;
  seq: number;
  epoch: number;
}

/**
 * SubscriptionChange says that the gateway added a topic to the connection,
 * or removed one, on a service's request (`server: true`): the client
 * delivers the topic's notifications to the handlers of its channel and
 * the "message" listeners, and subscribes it again after every reconnect
 * until the gateway removes it (or refuses it on a reconnect: the token no
 * longer allows it).
 */
export interface SubscriptionChange {
  channel: string;
  subscribed: boolean;
  /** Always true for now: the change came from the gateway, not from subscribe() or unsubscribe(). */
  server: boolean;
}

/** PublishOptions are the options of WsgateClient.publish. */
export interface PublishOptions {
  /**
   * Wait for the gateway's "published" answer (true, the default), or
   * resolve once the op is handed to the socket (false: ref 0, the gateway
   * answers nothing, and an error it sends comes out as an "error" event).
   */
  ack?: boolean;
  /** With ack: give up after this many ms without an answer (then plus 2 s of grace). Default: the requestTimeout option. */
  timeout?: number;
}

/** RequestOptions are the options of WsgateClient.request. */
export interface RequestOptions {
  /**
   * How long the service has to reply, in ms; sent to the gateway, which
   * caps it at its own maximum and answers `timeout` after it. The client
   * gives up by itself 2 s later if no answer came at all. Default: the
   * requestTimeout option.
   */
  timeout?: number;
}

/** ClientEvents are the events of WsgateClient.on. */
export interface ClientEvents {
  state: (state: State, detail: StateDetail) => void;
  welcome: (welcome: Welcome) => void;
  /** Every notification of every channel, after the channel's own handlers. */
  message: Handler;
  resumed: (resumed: Resumed) => void;
  lost: (lost: Lost) => void;
  /** The gateway added or removed a topic on a service's request. */
  subscription: (change: SubscriptionChange) => void;
  /** Errors that belong to no promise: a handler or storage failure, a refused ack or resume, a failed token provider. */
  error: (error: WsgateError) => void;
}

/** TokenContext tells the token provider why it is called. */
export interface TokenContext {
  /**
   * "connect" for the first attempt; "expired" after close 1008 "token
   * expired", and "revoked" after close 4006 (the user's credentials were
   * revoked: the gateway refuses every token issued until then), until
   * the next welcome: a cached token must not be reused then; "reconnect"
   * otherwise.
   */
  reason: "connect" | "reconnect" | "expired" | "revoked";
}

/** TokenProvider returns the JWT for the next connection attempt. */
export type TokenProvider = (context: TokenContext) => string | Promise<string>;

/** WebSocketLike is the part of the WHATWG WebSocket that the client uses; the `ws` package's WebSocket has it too. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onclose: ((event: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((event: any) => void) | null;
}

/** WebSocketConstructor makes a WebSocketLike for a URL. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Options configure a WsgateClient; only url is required. */
export interface Options {
  /** The gateway's WebSocket URL, e.g. "wss://notify.example.com/ws". A `?token=` is added to it when a token provider is given. */
  url: string;
  /** Called before every connection attempt for the JWT, which goes in `?token=`. Without it the URL is used as it is (development mode: `?user=42`). */
  token?: TokenProvider;
  /** The WebSocket implementation; globalThis.WebSocket by default. In Node 20, pass `(await import("ws")).WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** Backoff between attempts, in milliseconds: attempt n waits a random time in [0, min(max, min·2^n)). Defaults: min 1000, max 30000. */
  backoff?: { min?: number; max?: number };
  /** How long an attempt may take from the token to the welcome, in ms. Default 10000. */
  connectTimeout?: number;
  /** Send the ping op after this many ms without a frame from the gateway. Default: the welcome's ping_interval, or 25000 when that is 0. */
  pingInterval?: number;
  /** Give up on the connection when no frame arrives this many ms after a ping op, and reconnect. Default 5000. */
  pongTimeout?: number;
  /** Reconnect after close 4003 (a newer connection of the same user replaced this one). Default false: the client stops until reconnect() is called. */
  reconnectOnReplaced?: boolean;
  /** Reconnect after close 4002 (too many connections of the user), with the maximum backoff. Default false: the client stops until reconnect() is called. */
  reconnectOnTooManyConnections?: boolean;
  /** Reconnect (with backoff) after close 4005 (the user logged out). Default false: the client goes to state "closed" until reconnect() is called. */
  reconnectOnLogout?: boolean;
  /** The default timeout of request() and of an acked publish(), in ms. Default 5000, the gateway's default maximum. */
  requestTimeout?: number;
  /**
   * The largest op the client sends, in bytes of JSON: a publish or
   * request over it is rejected before it is sent, since the gateway
   * closes a connection with 1009 for a message over its
   * --max-message-size. Default 4096, the gateway's default; 0: no check.
   */
  maxMessageSize?: number;
  /** Where durable positions are kept. Default: localStorage in browsers, memory elsewhere. */
  storage?: PositionStorage;
  /** The prefix of storage keys. Default "wsgate:". */
  storagePrefix?: string;
  /** Ack durable notifications once their handlers have returned (or their promises settled). Default true; with false, call message.ack(). */
  autoAck?: boolean;
  /** At most one ack per channel per this many ms. Default 1000. */
  ackInterval?: number;
  /**
   * Channels to resume without a position of their own, so that a new
   * device (or one that lost its storage) gets what the user has not acked:
   * true means the user channel; a list names channels, "user" standing for
   * the user channel. Default: none, so that a volatile-only application
   * never resumes.
   */
  catchUp?: boolean | readonly string[];
  /** Log what the client does: true for console.debug, or a function of your own. Default: silent. */
  debug?: boolean | ((...args: unknown[]) => void);
}
