/**
 * WsgateError is the base of every error the client reports, in a
 * rejected promise or on the "error" event.
 */
export class WsgateError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "WsgateError";
  }
}

/**
 * ServerError is the gateway's "error" answer to an op. `code` is the
 * contract (docs/protocol.md, "Error codes"): `forbidden`,
 * `invalid_channel`, `too_many_subscriptions`, `unavailable`,
 * `bad_request`, `unknown_op`, `not_durable`, `resume_pending`,
 * `stale_epoch`, and for `publish` and `request`: `timeout`,
 * `no_responders`, `rejected` (`message` is then the service's text),
 * `bad_reply`, `rate_limited`, `too_many_requests`, `upstream_disabled`;
 * otherwise `message` is for humans and may change.
 *
 * `publish` and `request` check the channel's name before sending, and
 * reject a bad one with a ServerError of code `invalid_channel` too, as the
 * gateway would (`ref` 0: nothing was sent).
 */
export class ServerError extends WsgateError {
  /** The error code the gateway sent, e.g. "forbidden". */
  readonly code: string;
  /** The op that was refused: "subscribe", "unsubscribe", "resume", "ack", "publish", "request", or "" when the answer matched no op (ref 0). */
  readonly op: string;
  /** The channel of the op, when it had one. */
  readonly channel: string | undefined;
  /** The ref of the op, 0 for an op sent without one (acks). */
  readonly ref: number;

  constructor(code: string, message: string, op: string, channel: string | undefined, ref: number) {
    super(`wsgate: ${op || "op"}${channel ? " " + channel : ""}: ${code}: ${message}`);
    this.name = "ServerError";
    this.code = code;
    this.op = op;
    this.channel = channel;
    this.ref = ref;
  }
}

/**
 * ClosedError rejects what cannot complete any more: the client was closed
 * with close(), or it stopped reconnecting after close code 4002, 4003 or
 * 4005 (then `code` says which). It also rejects a `publish` or `request`
 * whose connection ended before the gateway answered (`code`: the close
 * code): such an op is not sent again, since the gateway may or may not
 * have forwarded it.
 */
export class ClosedError extends WsgateError {
  /** The close code that stopped the client, or ended the connection of a publish or request; undefined after close(). */
  readonly code: number | undefined;

  constructor(message = "wsgate: the client is closed", code?: number) {
    super(message);
    this.name = "ClosedError";
    this.code = code;
  }
}

/**
 * CancelledError rejects a subscribe() that unsubscribe() overtook before
 * the gateway answered.
 */
export class CancelledError extends WsgateError {
  constructor(message: string) {
    super(message);
    this.name = "CancelledError";
  }
}

/**
 * NotConnectedError rejects a `publish` or `request` made while the client
 * has no welcomed connection (connecting, or waiting to reconnect): they
 * are not queued, since what they say may be stale by the time a
 * connection comes. Wait for `ready()` and try again if it still matters.
 */
export class NotConnectedError extends WsgateError {
  constructor(message = "wsgate: not connected") {
    super(message);
    this.name = "NotConnectedError";
  }
}

/**
 * TimeoutError rejects a `request` (or an acked `publish`) that the gateway
 * has not answered within the op's timeout plus a grace period (2 s): the
 * gateway answers a request that timed out on its side with a ServerError
 * of code `timeout`, so this one means the answer itself went missing.
 * `code` is "timeout" as well, so that one check covers both.
 */
export class TimeoutError extends WsgateError {
  readonly code = "timeout";
  /** "publish" or "request". */
  readonly op: string;
  readonly channel: string;
  readonly ref: number;

  constructor(op: string, channel: string, ref: number, ms: number) {
    super(`wsgate: ${op} ${channel}: no answer from the gateway within ${ms} ms`);
    this.name = "TimeoutError";
    this.op = op;
    this.channel = channel;
    this.ref = ref;
  }
}

/** TokenError is a failure of the token provider; `cause` is what it threw. */
export class TokenError extends WsgateError {
  constructor(cause: unknown) {
    super(`wsgate: the token provider failed: ${describe(cause)}`, { cause });
    this.name = "TokenError";
  }
}

/**
 * HandlerError is a message handler that threw, or whose promise was
 * rejected; `cause` is what it threw. The notification counts as processed
 * all the same, so that one bad notification does not stop the acks of a
 * channel forever.
 */
export class HandlerError extends WsgateError {
  /** The channel of the notification. */
  readonly channel: string;
  /** The notification's seq, for a durable one. */
  readonly seq: number | undefined;

  constructor(channel: string, seq: number | undefined, cause: unknown) {
    super(`wsgate: a handler of ${channel}${seq !== undefined ? " seq " + seq : ""} failed: ${describe(cause)}`, { cause });
    this.name = "HandlerError";
    this.channel = channel;
    this.seq = seq;
  }
}

/** StorageError is a failure of the position storage; `cause` is what it threw. */
export class StorageError extends WsgateError {
  constructor(op: "get" | "set", key: string, cause: unknown) {
    super(`wsgate: position storage ${op} ${key}: ${describe(cause)}`, { cause });
    this.name = "StorageError";
  }
}

/** ProtocolError is a frame from the gateway that the client could not use. */
export class ProtocolError extends WsgateError {
  constructor(message: string) {
    super(`wsgate: ${message}`);
    this.name = "ProtocolError";
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
