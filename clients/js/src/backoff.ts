/**
 * backoffDelay is the wait before reconnect attempt `attempt` (0 for the
 * first after a connection ended): exponential backoff with full jitter, a
 * random time in [0, min(max, min·2^attempt)) milliseconds. With the
 * defaults (1 s, 30 s) that is 0–1 s, 0–2 s, 0–4 s … 0–30 s, as
 * docs/protocol.md's "Reconnecting" asks, so that clients that lost their
 * gateway together do not come back together.
 */
export function backoffDelay(attempt: number, min: number, max: number, random: () => number = Math.random): number {
  const window = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * window);
}
