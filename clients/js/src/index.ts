/**
 * @wsgate/client: a browser and Node client for wsgate, the WebSocket
 * notification gateway. See README.md for a quick start and
 * docs/protocol.md in the wsgate repository for the protocol it speaks.
 *
 * @example
 * import { WsgateClient } from "@wsgate/client";
 * const client = new WsgateClient({ url: "wss://notify.example.com/ws", token: () => fetchToken() });
 * client.onChannel("user", (m) => console.log(m.data));
 * client.connect();
 * await client.subscribe("topic.sports");
 */
export { WsgateClient } from "./client.js";
export { backoffDelay } from "./backoff.js";
export { MemoryStorage, WebStorage, defaultStorage } from "./storage.js";
export type { Position, PositionStorage, WebStorageLike } from "./storage.js";
export {
  WsgateError,
  ServerError,
  ClosedError,
  CancelledError,
  NotConnectedError,
  TimeoutError,
  TokenError,
  HandlerError,
  StorageError,
  ProtocolError,
} from "./errors.js";
export type {
  State,
  StateDetail,
  Welcome,
  Message,
  Handler,
  Resumed,
  Lost,
  SubscriptionChange,
  PublishOptions,
  RequestOptions,
  ClientEvents,
  TokenContext,
  TokenProvider,
  WebSocketLike,
  WebSocketConstructor,
  Options,
} from "./types.js";
