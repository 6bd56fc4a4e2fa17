/**
 * Position is where a client stands on a channel of durable
 * notifications: the seq of the last one it processed, and the epoch of
 * the stream that seq belongs to (docs/protocol.md, "Durable message
 * frames"). Positions from different epochs are not comparable.
 */
export interface Position {
  readonly seq: number;
  readonly epoch: number;
}

/**
 * PositionStorage keeps positions across reloads. Keys are
 * `<prefix><user id>:<channel>` (prefix "wsgate:" by default), so that two
 * users of one browser never share a position. get may answer at once or
 * with a promise (IndexedDB); frames that arrive meanwhile wait.
 *
 * The client reads a channel's position once per user, when it first needs
 * it (after a welcome, or a "subscribed"), and writes one only when a
 * durable notification has been processed or a resume has moved it: a
 * volatile-only application never writes.
 */
export interface PositionStorage {
  get(key: string): Position | null | undefined | Promise<Position | null | undefined>;
  set(key: string, position: Position): void | Promise<void>;
}

/** MemoryStorage keeps positions for the life of the page or process. */
export class MemoryStorage implements PositionStorage {
  private readonly m = new Map<string, Position>();

  get(key: string): Position | undefined {
    return this.m.get(key);
  }

  set(key: string, position: Position): void {
    this.m.set(key, { seq: position.seq, epoch: position.epoch });
  }
}

/** WebStorageLike is the part of the Web Storage API (localStorage) that WebStorage uses. */
export interface WebStorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/**
 * WebStorage keeps positions in a Web Storage area, localStorage by
 * default, as JSON `{"seq":…,"epoch":…}`. A value that does not parse is
 * taken as no position.
 */
export class WebStorage implements PositionStorage {
  private readonly area: WebStorageLike;

  constructor(area: WebStorageLike) {
    this.area = area;
  }

  get(key: string): Position | undefined {
    const v = this.area.getItem(key);
    if (v === null) return undefined;
    try {
      const p = JSON.parse(v) as Position;
      if (isCount(p?.seq) && isCount(p?.epoch)) return { seq: p.seq, epoch: p.epoch };
    } catch {
      // not ours, or damaged: no position
    }
    return undefined;
  }

  set(key: string, position: Position): void {
    this.area.setItem(key, JSON.stringify({ seq: position.seq, epoch: position.epoch }));
  }
}

/**
 * defaultStorage is localStorage in a browser that allows it, and memory
 * elsewhere (Node, workers, a browser that refuses storage).
 */
export function defaultStorage(): PositionStorage {
  const g = globalThis as { process?: { versions?: { node?: string } }; localStorage?: WebStorageLike };
  if (g.process?.versions?.node === undefined) {
    try {
      const ls = g.localStorage;
      if (ls) {
        ls.getItem("wsgate:probe"); // throws where storage is disabled
        return new WebStorage(ls);
      }
    } catch {
      // storage disabled (privacy settings, sandboxed frame)
    }
  }
  return new MemoryStorage();
}

export function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}
