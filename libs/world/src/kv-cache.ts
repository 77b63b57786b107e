import type { KV } from "@steward/platform/bus";

type WatchEntry = Awaited<ReturnType<KV["watch"]>> extends AsyncIterable<infer E> ? E : never;

/** A record as a reader saw it: parsed, or why it could not be. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; detail: string };

/** What one applied header changed: the header itself and the item names written or removed since the last one. */
export interface CacheChange<H> {
  header: H;
  changed: readonly string[];
  removed: readonly string[];
}

export interface KvCacheOptions<H, V> {
  kv: KV;
  /** Watch filter, e.g. `world.>`. */
  filter: string;
  headerKey: string;
  /** Key prefix of the items, e.g. `world.node.`; the rest of the key is the item's name. */
  itemPrefix: string;
  parseHeader(text: string): Parsed<H>;
  parseItem(text: string, name: string): Parsed<V>;
  /** Called after a header was applied (with the items it covers), from the watch loop. */
  onChange?: (change: CacheChange<H>) => void;
  onError?: (err: Error) => void;
  /** Wait before re-watching after the watch ended with an error. */
  retryMs?: number;
  /** How often the watch is checked for a stall (one small get of the header); 0: never. Default WATCH_CHECK_MS. */
  checkMs?: number;
  /** Called when a stalled watch was stopped and started again from the last record it delivered. */
  onRestart?: (r: WatchRestart) => void;
}

/**
 * Why a watch was restarted: a bounded set (a metric label). `stalled`: the store's header is newer than anything the
 * watch delivered, and it delivered nothing for a whole check interval (its consumer was lost: deleted, or on a NATS
 * server that died; nats.js only re-creates it after two missed 30 s heartbeats).
 */
export type WatchRestartReason = "stalled";

export interface WatchRestart {
  reason: WatchRestartReason;
  /** Watch filter, e.g. `world.>`. */
  filter: string;
  /** KV revision the new watch starts after (the last record delivered). */
  resumeAfter: number;
  /** Revision of the header KV holds. */
  stored: number;
}

/** Default stall-check interval: a lost consumer is noticed after one to two of these. */
export const WATCH_CHECK_MS = 3_000;

/** One stall check: the header revision KV holds, and the last revision the watch delivered, at that moment. */
export interface WatchProbe {
  stored: number;
  seen: number;
}

/**
 * Whether a watch is stalled, from two consecutive checks one interval apart: KV held a header newer than what the
 * watch had delivered at the earlier check, still does, and the watch delivered nothing in between. A watch that is
 * merely busy (a big write arriving) moves `seen`; one that is current has `seen >= stored`.
 */
export function watchStalled(prev: WatchProbe | undefined, now: WatchProbe): boolean {
  return prev !== undefined && prev.stored > prev.seen && now.stored > now.seen && now.seen === prev.seen;
}

export type CacheState<H, V> =
  | { status: "loading" }
  | { status: "broken"; detail: string }
  /** Loaded, but known to be behind KV (a stalled watch being restarted): what it holds is older than the store. */
  | { status: "behind"; detail: string }
  | { status: "ready"; header: Parsed<H> | undefined; items: ReadonlyMap<string, Parsed<V>>; revision: number };

/** What a reader can tell of writers from the records it was delivered (times are the server's). */
export interface CacheActivity {
  /** Item records delivered after the last applied header: a write in progress, or one whose header never came. */
  staged: number;
  /** Every record present when the watch started has been delivered (the first load is whole, staged included). */
  caughtUp: boolean;
  /** Server time (ms) of the newest record delivered, header or item; 0 before any. */
  lastWriteAt: number;
}

export interface KvCache<H, V> {
  /** Resolves once the first load finished (every record present when the watch started has been seen). */
  ready(): Promise<void>;
  state(): CacheState<H, V>;
  item(name: string): Parsed<V> | undefined;
  /** Counts applied headers: changes whenever readers would see something new. */
  revision(): number;
  /**
   * KV revision (stream sequence) of the last record the watch delivered, header or item, 0 before any: a writer that
   * knows the revision of its put can wait until the cache has taken it in (staged or applied) instead of sleeping.
   */
  seen(): number;
  activity(): CacheActivity;
  /**
   * Read-your-writes: resolves once the cache has applied the header KV holds now (one small get), or false
   * after `timeoutMs`. For request/response readers; watch-driven readers do not need it.
   */
  sync(timeoutMs?: number): Promise<boolean>;
  stop(): Promise<void>;
}

/**
 * A local copy of one header-plus-items family of KV records, kept current by a KV watch, like an informer: the
 * watch first delivers every current record, then each change. Item writes are staged until the header written
 * after them arrives, so a reader sees whole writes only (never half of one writer's batch), and a header that
 * arrives tells the reader exactly which items changed.
 */
export function createKvCache<H, V>(o: KvCacheOptions<H, V>): KvCache<H, V> {
  let header: Parsed<H> | undefined;
  const items = new Map<string, Parsed<V>>();
  /** Item writes (null: deleted) not yet covered by a header. */
  const staged = new Map<string, Parsed<V> | null>();
  let initialized = false;
  let broken: string | undefined;
  let revision = 0;
  /** KV revision (stream sequence) of the last header record applied, deletions included. */
  let headerSeq = 0;
  /** KV revision of the last record of any kind the watch delivered. */
  let seenSeq = 0;
  let caughtUp = false;
  let lastWriteAt = 0;
  let waiters: { seq: number; resolve: (ok: boolean) => void }[] = [];
  let stopped = false;
  let stopWatch: (() => void) | undefined;
  let resolveReady!: () => void;
  const readyP = new Promise<void>((r) => (resolveReady = r));

  function applyStaged(): { changed: string[]; removed: string[] } {
    const changed: string[] = [];
    const removed: string[] = [];
    for (const [name, v] of staged) {
      if (v === null) {
        if (items.delete(name)) removed.push(name);
      } else {
        items.set(name, v);
        changed.push(name);
      }
    }
    staged.clear();
    return { changed, removed };
  }

  function markReady(): void {
    if (initialized) return;
    initialized = true;
    broken = undefined;
    resolveReady();
    wake();
  }

  function wake(): void {
    const due = waiters.filter((w) => w.seq <= headerSeq);
    waiters = waiters.filter((w) => w.seq > headerSeq);
    for (const w of due) w.resolve(true);
  }

  /** Header revision KV held when the first load started: the load is whole once it is applied. */
  let loadedAt = 0;
  /** A stall check found the watch behind and restarts it: why, until it has delivered `behindUntil`. */
  let behind: string | undefined;
  let behindUntil = 0;
  let restartAsked: WatchRestart | undefined;

  /**
   * One watch. `resumeAfter` > 0 continues a stopped watch after the last record it delivered: every record written
   * since is delivered in order (the newest of each key: KV keeps one), so the cache ends where a fresh load would,
   * with nothing lost or applied twice, and readers keep the copy they have meanwhile.
   */
  async function watchOnce(resumeAfter: number): Promise<void> {
    // The first load is complete once the header KV held when we started (or a newer one) has been applied: the
    // watch delivers in write order and the header is written after the items it covers. A missing header means
    // nothing complete was ever written: the first load is then empty (the watch may deliver nothing at all).
    if (resumeAfter === 0) {
      const head = await o.kv.get(o.headerKey);
      loadedAt = head && head.operation === "PUT" ? head.revision : 0;
    }
    const iter = await o.kv.watch(resumeAfter > 0 ? { key: o.filter, resumeFromRevision: resumeAfter + 1 } : { key: o.filter });
    stopWatch = () => iter.stop();
    try {
      await consume(iter, resumeAfter);
    } finally {
      stopWatch = undefined;
    }
  }

  async function consume(iter: AsyncIterable<WatchEntry>, resumeAfter: number): Promise<void> {
    if (loadedAt === 0) markReady();
    for await (const e of iter) {
      // A record from before the resume point (never expected): already applied.
      if (e.revision <= seenSeq && resumeAfter > 0) continue;
      if (e.key === o.headerKey) {
        header = e.operation === "PUT" ? o.parseHeader(e.string()) : undefined;
        const { changed, removed } = applyStaged();
        revision++;
        headerSeq = e.revision;
        if (waiters.length > 0 && initialized) wake();
        if (header?.ok && initialized) o.onChange?.({ header: header.value, changed, removed });
      } else if (e.key.startsWith(o.itemPrefix)) {
        const name = e.key.slice(o.itemPrefix.length);
        staged.set(name, e.operation === "PUT" ? o.parseItem(e.string(), name) : null);
      }
      if (!initialized && e.key === o.headerKey && e.revision >= loadedAt) {
        markReady();
        if (header?.ok) o.onChange?.({ header: header.value, changed: [...items.keys()], removed: [] });
      }
      seenSeq = e.revision;
      if (behind && seenSeq >= behindUntil) behind = undefined;
      lastWriteAt = Math.max(lastWriteAt, e.created.getTime());
      // The watch marks the last record of its initial set (and every later one) as an update.
      if (e.isUpdate) caughtUp = true;
    }
  }

  const loop = (async () => {
    let resumeAfter = 0;
    while (!stopped) {
      try {
        await watchOnce(resumeAfter);
        if (stopped) break;
        const r = restartAsked;
        if (r) {
          // Stopped by the stall check: continue after the last record delivered, keeping everything applied.
          restartAsked = undefined;
          resumeAfter = seenSeq;
          o.onRestart?.({ ...r, resumeAfter });
          continue;
        }
        throw new Error("watch ended");
      } catch (err) {
        restartAsked = undefined;
        if (stopped) break;
        broken = `watch of ${o.filter} failed: ${(err as Error).message}`;
        o.onError?.(err as Error);
      }
      // Re-list from scratch: the next watch delivers every current record again.
      resumeAfter = 0;
      initialized = false;
      caughtUp = false;
      behind = undefined;
      header = undefined;
      items.clear();
      staged.clear();
      await new Promise((r) => setTimeout(r, o.retryMs ?? 500));
    }
  })();

  // The stall check: nats.js gives a KV watch no way to notice its consumer is gone sooner than two missed 30 s
  // heartbeats (the watch options set no heartbeat and report no status), so compare what it delivered with the
  // header KV holds, and restart it when it stopped moving while behind.
  const checkMs = o.checkMs ?? WATCH_CHECK_MS;
  let prevProbe: WatchProbe | undefined;
  let checking = false;
  const checker =
    checkMs > 0
      ? setInterval(() => {
          if (checking || stopped || restartAsked || !stopWatch) return;
          checking = true;
          o.kv
            .get(o.headerKey)
            .then((head) => {
              const probe = { stored: head?.revision ?? 0, seen: seenSeq };
              const stalled = watchStalled(prevProbe, probe);
              prevProbe = stalled ? undefined : probe;
              if (!stalled || stopped || restartAsked) return;
              behind = `watch of ${o.filter} stalled at revision ${seenSeq}, KV holds ${probe.stored}: restarting it`;
              behindUntil = probe.stored;
              restartAsked = { reason: "stalled", filter: o.filter, resumeAfter: seenSeq, stored: probe.stored };
              stopWatch?.();
            })
            .catch(() => {
              // KV unreachable: the watch's own error path (or the next check) handles it.
              prevProbe = undefined;
            })
            .finally(() => (checking = false));
        }, checkMs)
      : undefined;
  checker?.unref();

  return {
    ready: () => readyP,
    state() {
      if (broken && !initialized) return { status: "broken", detail: broken };
      if (!initialized) return { status: "loading" };
      if (behind) return { status: "behind", detail: behind };
      return { status: "ready", header, items, revision };
    },
    item: (name) => (initialized && !behind ? items.get(name) : undefined),
    revision: () => revision,
    seen: () => seenSeq,
    activity: () => ({ staged: staged.size, caughtUp, lastWriteAt }),
    async sync(timeoutMs = 5_000) {
      const e = await o.kv.get(o.headerKey);
      const seq = e?.revision ?? 0;
      if (initialized && headerSeq >= seq) return true;
      return new Promise<boolean>((resolve) => {
        const w = { seq, resolve };
        waiters.push(w);
        setTimeout(() => {
          waiters = waiters.filter((x) => x !== w);
          resolve(false);
        }, timeoutMs).unref();
      });
    },
    async stop() {
      stopped = true;
      if (checker) clearInterval(checker);
      for (const w of waiters) w.resolve(false);
      waiters = [];
      stopWatch?.();
      prevProbe = undefined;
      resolveReady();
      await loop;
    },
  };
}

/**
 * A one-shot read right after the first load can land inside a writer's batch: the watch delivers the newest record
 * of each key, so an item rewritten after the last header has no older value to show and the view reads as
 * incomplete until the next header arrives (a moment later while a writer is busy). Read again after each new header,
 * for at most `settleMs`; an answer that stays unusable that long is the real answer (no writer, or a broken record).
 */
/**
 * How long a one-shot reader whose view reads as incomplete (records newer than the last header hide the older ones
 * it needs) should wait for the header that completes it, from what it was delivered: while its first load is still
 * arriving, or while a writer wrote within `graceMs` (records keep arriving during a write, however big), it waits
 * (at most until `deadline`); once the writer has been silent that long, no header is coming (it died between
 * its records and its header) and the answer is "incomplete" now. A reader's clock ahead of the server's by more
 * than `graceMs` only makes it answer sooner. Returns the milliseconds to wait, 0 to answer now.
 */
export function inBatchWait(a: CacheActivity, now: number, deadline: number, graceMs: number): number {
  if (now >= deadline) return 0;
  if (!a.caughtUp) return deadline - now;
  if (a.staged === 0) return 0;
  const quietFor = now - a.lastWriteAt;
  return quietFor >= graceMs ? 0 : Math.min(deadline, a.lastWriteAt + graceMs) - now;
}

export async function readSettled<R extends { ok: boolean }>(cache: { revision(): number }, read: () => R, settleMs = 5_000): Promise<R> {
  const deadline = Date.now() + settleMs;
  let r = read();
  let seen = cache.revision();
  while (!r.ok && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 25));
    if (cache.revision() === seen) continue;
    seen = cache.revision();
    r = read();
  }
  return r;
}
