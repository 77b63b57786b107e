import type { KV } from "@steward/platform/bus";

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
  /**
   * A load that landed inside a writer's batch (item records newer than the last header) waits this long for the
   * header that completes it (default 5 s). A first load then settles for what it has, which reads as incomplete:
   * no writer finished the batch (it died), which is the truth. A reload keeps serving the last complete view.
   */
  settleMs?: number;
}

export type CacheState<H, V> =
  | { status: "loading" }
  | { status: "broken"; detail: string }
  | { status: "ready"; header: Parsed<H> | undefined; items: ReadonlyMap<string, Parsed<V>>; revision: number };

export interface KvCache<H, V> {
  /** Resolves once the first view is there: complete, or settled after `settleMs` inside an unfinished batch. */
  ready(): Promise<void>;
  state(): CacheState<H, V>;
  item(name: string): Parsed<V> | undefined;
  /** Counts applied headers: changes whenever readers would see something new. */
  revision(): number;
  /** Item records this watch saw after the last header: a writer's batch in progress (or left unfinished). */
  pending(): number;
  /**
   * Read-your-writes: resolves once the cache has applied the header KV holds now (one small get), or false
   * after `timeoutMs`. For request/response readers; watch-driven readers do not need it.
   */
  sync(timeoutMs?: number): Promise<boolean>;
  stop(): Promise<void>;
}

/** Header plus items as of one header: what readers see. */
interface View<H, V> {
  header: Parsed<H> | undefined;
  items: Map<string, Parsed<V>>;
  /** KV revision of each item's record, to tell a reload which items changed. */
  revs: Map<string, number>;
  /** KV revision of the last header record applied (0: none). */
  headerSeq: number;
}

/**
 * A local copy of one header-plus-items family of KV records, kept current by a KV watch, like an informer: the
 * watch first delivers every current record, then each change. Item writes are staged until the header written
 * after them arrives, so a reader sees whole writes only (never half of one writer's batch), and a header that
 * arrives tells the reader exactly which items changed.
 *
 * The watch delivers only the newest record of each key, so a load that lands inside a writer's batch has no older
 * record of an item rewritten after the last header: that load is not served until the header completing the batch
 * arrives. Readers keep the last complete view meanwhile (after a re-watch too); only a first load waits, at most
 * `settleMs`.
 */
export function createKvCache<H, V>(o: KvCacheOptions<H, V>): KvCache<H, V> {
  const settleMs = o.settleMs ?? 5_000;
  let served: View<H, V> | undefined;
  let broken: string | undefined;
  let revision = 0;
  let waiters: { seq: number; resolve: (ok: boolean) => void }[] = [];
  let stopped = false;
  let stopWatch: (() => void) | undefined;
  let staging: ReadonlyMap<string, unknown> = new Map();
  let resolveReady!: () => void;
  const readyP = new Promise<void>((r) => (resolveReady = r));

  function wake(): void {
    const at = served?.headerSeq ?? 0;
    const due = waiters.filter((w) => w.seq <= at);
    waiters = waiters.filter((w) => w.seq > at);
    for (const w of due) w.resolve(true);
  }

  /** Readers switch to `next` (a first load, or a reload that reached a complete view). */
  function adopt(next: View<H, V>): void {
    const before = served;
    served = next;
    broken = undefined;
    revision++;
    resolveReady();
    wake();
    if (!next.header?.ok) return;
    const changed = [...next.revs].filter(([n, rev]) => before?.revs.get(n) !== rev).map(([n]) => n);
    const removed = before ? [...before.items.keys()].filter((n) => !next.items.has(n)) : [];
    o.onChange?.({ header: next.header.value, changed, removed });
  }

  async function watchOnce(): Promise<void> {
    // A missing header means nothing complete was ever written: the first view is then empty (the watch may
    // deliver nothing at all). Otherwise the load is done once the watch caught up with the stream (delta 0).
    const head = await o.kv.get(o.headerKey);
    const iter = await o.kv.watch({ key: o.filter });
    stopWatch = () => iter.stop();
    const live: View<H, V> = { header: undefined, items: new Map(), revs: new Map(), headerSeq: 0 };
    /** Item writes (null: deleted) not yet covered by a header. */
    const staged = new Map<string, { parsed: Parsed<V>; rev: number } | null>();
    staging = staged;
    let listed = !(head && head.operation === "PUT");
    let settle: NodeJS.Timeout | undefined;
    const take = () => {
      clearTimeout(settle);
      if (!stopped && served !== live) adopt(live);
    };
    if (listed) take();
    try {
      for await (const e of iter) {
        if (e.key === o.headerKey) {
          live.header = e.operation === "PUT" ? o.parseHeader(e.string()) : undefined;
          live.headerSeq = e.revision;
          const changed: string[] = [];
          const removed: string[] = [];
          for (const [name, v] of staged) {
            if (v === null) {
              live.revs.delete(name);
              if (live.items.delete(name)) removed.push(name);
            } else {
              live.items.set(name, v.parsed);
              live.revs.set(name, v.rev);
              changed.push(name);
            }
          }
          staged.clear();
          if (served === live) {
            revision++;
            wake();
            if (live.header?.ok) o.onChange?.({ header: live.header.value, changed, removed });
          }
        } else if (e.key.startsWith(o.itemPrefix)) {
          const name = e.key.slice(o.itemPrefix.length);
          staged.set(name, e.operation === "PUT" ? { parsed: o.parseItem(e.string(), name), rev: e.revision } : null);
        }
        if (served === live) continue;
        if (e.delta === 0) listed = true;
        if (!listed) continue;
        // Caught up: complete unless an item was written after the last header (a batch in progress).
        if (staged.size === 0) take();
        else if (!served && !settle) settle = setTimeout(take, settleMs);
      }
    } finally {
      clearTimeout(settle);
    }
  }

  const loop = (async () => {
    while (!stopped) {
      try {
        await watchOnce();
        if (stopped) break;
        throw new Error("watch ended");
      } catch (err) {
        if (stopped) break;
        // Readers keep the last complete view; the next watch delivers every current record again.
        broken = `watch of ${o.filter} failed: ${(err as Error).message}`;
        o.onError?.(err as Error);
      }
      await new Promise((r) => setTimeout(r, o.retryMs ?? 500));
    }
  })();

  return {
    ready: () => readyP,
    state() {
      if (!served) return broken ? { status: "broken", detail: broken } : { status: "loading" };
      return { status: "ready", header: served.header, items: served.items, revision };
    },
    item: (name) => served?.items.get(name),
    revision: () => revision,
    pending: () => staging.size,
    async sync(timeoutMs = 5_000) {
      const e = await o.kv.get(o.headerKey);
      const seq = e?.revision ?? 0;
      if (served && served.headerSeq >= seq) return true;
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
      for (const w of waiters) w.resolve(false);
      waiters = [];
      stopWatch?.();
      resolveReady();
      await loop;
    },
  };
}
