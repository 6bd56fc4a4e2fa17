import { StorageError, type WsgateError } from "./errors.js";
import { isCount, type Position, type PositionStorage } from "./storage.js";

/** Verdict is what the rule of docs/protocol.md says of a durable frame. */
export type Verdict = "apply" | "duplicate" | "gap";

/** Entry is a durable notification, or a resume answer, on its way to being processed, in channel order. */
export interface Entry {
  readonly pos: Position;
  readonly ack: boolean; // a notification (acked), not a resume answer (only stored)
  done: boolean;
}

/**
 * Positions is a client's durable bookkeeping for one user, the same rule
 * as internal/wstest.Positions in Go: per channel the position last
 * applied, the one last stored, the notifications being processed, and the
 * acks waiting to go out. All of it stays empty for a volatile-only
 * application. The client owns the socket and the resumes; this owns the
 * numbers and the storage.
 */
export class Positions {
  private readonly storage: PositionStorage;
  private readonly prefix: string;
  private readonly fail: (e: WsgateError) => void;

  private owner: string | null = null; // whose positions these are
  private readonly last = new Map<string, Position>(); // last applied
  private readonly looked = new Set<string>(); // channels whose storage was read
  private readonly stored = new Map<string, Position>(); // last written
  private readonly pending = new Map<string, Entry[]>(); // being processed, in order
  private readonly acks = new Map<string, Position>(); // to send

  constructor(storage: PositionStorage, prefix: string, fail: (e: WsgateError) => void) {
    this.storage = storage;
    this.prefix = prefix;
    this.fail = fail;
  }

  /** user is whose positions these are, null before the first welcome. */
  get user(): string | null {
    return this.owner;
  }

  /** forUser takes the positions of user from now on; another user's are forgotten. */
  forUser(user: string): void {
    if (this.owner === user) return;
    this.owner = user;
    this.last.clear();
    this.looked.clear();
    this.stored.clear();
    this.pending.clear();
    this.acks.clear();
  }

  /** get returns the position last applied on ch. */
  get(ch: string): Position | undefined {
    return this.last.get(ch);
  }

  /**
   * load reads from storage the positions of those channels that have none
   * in memory and were not read yet for this user. It returns a promise
   * when the storage answers with one, and undefined when all is loaded.
   */
  load(channels: readonly string[]): Promise<void> | undefined {
    const user = this.owner;
    const reads: Array<Promise<void>> = [];
    for (const ch of channels) {
      if (this.last.has(ch) || this.looked.has(ch)) continue;
      const key = this.key(ch);
      let v: ReturnType<PositionStorage["get"]>;
      try {
        v = this.storage.get(key);
      } catch (e) {
        this.fail(new StorageError("get", key, e));
        this.looked.add(ch);
        continue;
      }
      if (v && typeof (v as Promise<unknown>).then === "function") {
        reads.push(
          (v as Promise<Position | null | undefined>).then(
            (p) => this.found(user, ch, p),
            (e) => {
              this.fail(new StorageError("get", key, e));
              this.found(user, ch, undefined);
            },
          ),
        );
      } else {
        this.found(user, ch, v as Position | null | undefined);
      }
    }
    return reads.length > 0 ? Promise.all(reads).then(() => undefined) : undefined;
  }

  private found(user: string | null, ch: string, p: Position | null | undefined): void {
    if (user !== this.owner) return; // read for a user that is gone
    this.looked.add(ch);
    if (p && isCount(p.seq) && isCount(p.epoch) && !this.last.has(ch)) {
      this.last.set(ch, { seq: p.seq, epoch: p.epoch });
      this.stored.set(ch, { seq: p.seq, epoch: p.epoch });
    }
  }

  /**
   * judge applies the protocol's rule to a durable frame of ch: a seq at
   * or below the position (same epoch) is a duplicate; a prev that is not
   * the position, or another epoch, is a gap; anything else, or any frame
   * on a channel without a position, is applied. Epoch 0 (unknown to the
   * gateway) is not compared.
   */
  judge(ch: string, seq: number, prev: number, epoch: number): Verdict {
    const last = this.last.get(ch);
    if (!last) return "apply";
    const sameEpoch = epoch === last.epoch || epoch === 0 || last.epoch === 0;
    if (sameEpoch && seq <= last.seq) return "duplicate";
    if (!sameEpoch || prev !== last.seq) return "gap";
    return "apply";
  }

  /**
   * apply sets ch's position to a frame's and returns the entry that
   * follows it until processed. A known epoch is kept over an unknown one.
   */
  apply(ch: string, seq: number, epoch: number): Entry {
    const pos = { seq, epoch: epoch || this.last.get(ch)?.epoch || 0 };
    this.last.set(ch, pos);
    return this.track(ch, pos, true);
  }

  /**
   * resumed sets ch's position to a resume answer's. When it moved, it is
   * stored in its turn, after the notifications still being processed.
   */
  resumed(ch: string, pos: Position): void {
    const prev = this.last.get(ch);
    this.last.set(ch, pos);
    if (!prev || prev.seq !== pos.seq || prev.epoch !== pos.epoch) this.done(ch, this.track(ch, pos, false));
  }

  private track(ch: string, pos: Position, ack: boolean): Entry {
    const entry: Entry = { pos, ack, done: false };
    let q = this.pending.get(ch);
    if (!q) this.pending.set(ch, (q = []));
    q.push(entry);
    return entry;
  }

  /**
   * done marks entry processed. Once the entries before it are done too,
   * the channel's stored position moves to the last of them, and done
   * returns the position to ack: the last notification among them.
   */
  done(ch: string, entry: Entry): Position | undefined {
    entry.done = true;
    const q = this.pending.get(ch);
    if (!q) return undefined;
    let top: Entry | undefined;
    let acked: Entry | undefined;
    while (q.length > 0 && q[0]!.done) {
      top = q.shift()!;
      if (top.ack) acked = top;
    }
    if (q.length === 0) this.pending.delete(ch);
    if (top) this.store(ch, top.pos);
    return acked?.pos;
  }

  private store(ch: string, pos: Position): void {
    const s = this.stored.get(ch);
    if (s && s.seq === pos.seq && s.epoch === pos.epoch) return;
    this.stored.set(ch, pos);
    const key = this.key(ch);
    try {
      const r = this.storage.set(key, pos);
      if (r && typeof (r as Promise<void>).then === "function") (r as Promise<void>).catch((e) => this.fail(new StorageError("set", key, e)));
    } catch (e) {
      this.fail(new StorageError("set", key, e));
    }
  }

  /** queueAck records an ack of ch up to pos (cumulative: the newest wins). */
  queueAck(ch: string, pos: Position): void {
    const cur = this.acks.get(ch);
    if (!cur || cur.epoch !== pos.epoch || pos.seq > cur.seq) this.acks.set(ch, pos);
  }

  /** hasAcks reports whether acks wait to go out. */
  get hasAcks(): boolean {
    return this.acks.size > 0;
  }

  /**
   * takeAcks removes and returns the acks that can go out now: those of
   * the channels for which ready says "send". "drop" forgets a channel's
   * ack, "keep" leaves it for later. An ack without an epoch is dropped:
   * the gateway would refuse it.
   */
  takeAcks(ready: (ch: string) => "send" | "keep" | "drop"): Array<[string, Position]> {
    const out: Array<[string, Position]> = [];
    for (const [ch, pos] of this.acks) {
      const r = ready(ch);
      if (r === "keep") continue;
      this.acks.delete(ch);
      if (r === "send" && pos.epoch > 0 && pos.seq > 0) out.push([ch, pos]);
    }
    return out;
  }

  private key(ch: string): string {
    return this.prefix + this.owner + ":" + ch;
  }
}
