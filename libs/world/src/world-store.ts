import { LEGACY_WORLD_KEY, NODE_NAME_PATTERN, WORLD_HEADER_KEY, WORLD_KEYS, WORLD_NODE_PREFIX, worldNodeKey } from "@steward/contracts/subjects";
import { NodeState, WorldHeader, type Snapshot, type WorldState } from "@steward/contracts/world-state";
import type { KV } from "@steward/platform/bus";
import { createKvCache, inBatchWait, type CacheActivity, type CacheChange, type KvCache, type Parsed, type WatchRestart } from "./kv-cache.js";
import type { Loaded } from "./read.js";
import { chooseLivenessWrites, firstUnwrittenSeq, livenessOnly, type LivenessBudget, type PositionLog, type WorldPosition } from "./liveness.js";
import { parseRecord, writeAll, type RecordWrite, type WriteFailure } from "./records.js";

const parseHeader = (text: string): Parsed<WorldHeader> => parseRecord(text, WorldHeader, `kv ${WORLD_HEADER_KEY}`);
const parseNode = (text: string, name: string): Parsed<NodeState> => {
  const p = parseRecord(text, NodeState, `kv ${WORLD_NODE_PREFIX}${name}`);
  if (p.ok && p.value.name !== name) return { ok: false, detail: `kv ${WORLD_NODE_PREFIX}${name}: holds node '${p.value.name}'` };
  return p;
};

const incomplete = (h: WorldHeader, why: string): Loaded<Snapshot> => ({
  ok: false,
  reason: "snapshot_incomplete",
  detail: `world store incomplete: ${why} (the last header, revision ${h.revision} of ${h.written_at} by ${h.observer_id}, is older than node records written after it: a write in progress, or the observer died between its node records and its header; whole again at its next write)`,
});

/**
 * Builds a snapshot from a header and the node records as of that header. Records newer than the header hide the
 * older ones a view needs: fewer nodes than the header counts (or an asked node among the hidden) is an incomplete
 * view, never a smaller world. `hidden`: asked names whose record is known to be newer than the header (a reader of
 * single records, which knows each record's revision); without it (`hidden` undefined: a watch's whole copy), an
 * asked node missing while fewer nodes than the header counts are readable may be one of the hidden ones.
 */
function assemble(header: Parsed<WorldHeader> | undefined, items: ReadonlyMap<string, Parsed<NodeState>>, only?: readonly string[], hidden?: readonly string[]): Loaded<Snapshot> {
  if (!header) return { ok: false, reason: "snapshot_missing", detail: `kv ${WORLD_HEADER_KEY}: no world written yet` };
  if (!header.ok) return { ok: false, reason: "snapshot_invalid", detail: header.detail };
  const h = header.value;
  if (hidden && hidden.length > 0) return incomplete(h, `${hidden.length} asked node record(s) newer than the header (${hidden.slice(0, 3).join(", ")})`);
  const nodes: Record<string, NodeState> = {};
  const names = only ?? [...items.keys()];
  const short = !hidden && items.size < h.node_count;
  for (const name of names) {
    const n = items.get(name);
    if (!n) {
      // An asked node this view lacks while others are hidden too may be one of them: not "never reported".
      if (short) return incomplete(h, `node '${name}' is not among the ${items.size} of ${h.node_count} nodes readable as of the header`);
      continue;
    }
    if (!n.ok) return { ok: false, reason: "snapshot_invalid", detail: n.detail };
    nodes[name] = n.value;
  }
  if (!only && short) return incomplete(h, `the header counts ${h.node_count} nodes, ${items.size} are readable as of it`);
  return {
    ok: true,
    value: {
      world: { version: h.version, last_seq: h.last_seq, events_applied: h.events_applied, event_time: h.event_time, nodes },
      written_at: h.written_at,
      observer_id: h.observer_id,
    },
  };
}

export interface WorldWatchOptions {
  /** After each observer write a reader has fully seen: which nodes changed. */
  onChange?: (change: CacheChange<WorldHeader>) => void;
  onError?: (err: Error) => void;
  /** A stalled watch was restarted (count it, log it): see KvCacheOptions.onRestart. */
  onRestart?: (r: WatchRestart) => void;
  /** Stall-check interval (ms); 0: never. */
  checkMs?: number;
}

/** A reader's local copy of the world, kept current by a KV watch. */
export interface WorldCache {
  ready(): Promise<void>;
  /** The whole world as of the last observer write seen. */
  read(): Loaded<Snapshot>;
  /** Only the named nodes (absent ones are left out), with the header's sequence and times. */
  nodes(names: readonly string[]): Loaded<Snapshot>;
  /** Changes whenever the world a reader sees changed. */
  revision(): number;
  /** KV revision of the last record the watch delivered (a node or the header): see KvCache.seen. */
  seen(): number;
  /** Records after the last header and the newest write time: see KvCache.activity. */
  activity(): CacheActivity;
  /** Waits (bounded) until the cache holds at least what KV holds now: read-your-writes for request handlers. */
  sync(timeoutMs?: number): Promise<boolean>;
  stop(): Promise<void>;
}

function cacheRead(cache: KvCache<WorldHeader, NodeState>, only?: readonly string[]): Loaded<Snapshot> {
  const s = cache.state();
  if (s.status === "loading") return { ok: false, reason: "snapshot_missing", detail: "world store still loading" };
  if (s.status === "broken") return { ok: false, reason: "snapshot_unreadable", detail: s.detail };
  // Known to be older than the store: unreadable for the moment it takes to catch up, never an old world as current.
  if (s.status === "behind") return { ok: false, reason: "snapshot_unreadable", detail: s.detail };
  return assemble(s.header, s.items, only);
}

/** Watches the world store: an initial load, then one update per observer write, per node. */
export function watchWorld(kv: KV, opts: WorldWatchOptions = {}): WorldCache {
  const cache = createKvCache({ kv, filter: WORLD_KEYS, headerKey: WORLD_HEADER_KEY, itemPrefix: WORLD_NODE_PREFIX, parseHeader, parseItem: parseNode, ...opts });
  return {
    ready: () => cache.ready(),
    read: () => cacheRead(cache),
    nodes: (names) => cacheRead(cache, names),
    revision: () => cache.revision(),
    seen: () => cache.seen(),
    activity: () => cache.activity(),
    sync: (t) => cache.sync(t),
    stop: () => cache.stop(),
  };
}

/** How long a writer may go without writing a record before a reader stops waiting for its header (inBatchWait). */
export const WRITER_QUIET_MS = 2_000;

/**
 * One-shot read of the whole world (loads every record, then stops watching). A load that lands inside a write the
 * observer is making waits for its header, for as long as records keep arriving (at most `maxWaitMs`); a write whose
 * header never came (the observer died in between) answers `snapshot_incomplete` as soon as the store has been quiet
 * for WRITER_QUIET_MS: no settling wait on an answer that is already known.
 */
export async function readWorld(kv: KV, timeoutMs = 30_000, maxWaitMs = 5_000): Promise<Loaded<Snapshot>> {
  let lastErr: string | undefined;
  const cache = watchWorld(kv, { onError: (err) => (lastErr = err.message) });
  try {
    const loaded = await Promise.race([cache.ready().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), timeoutMs).unref())]);
    if (!loaded) return { ok: false, reason: "snapshot_unreadable", detail: `world store not loaded within ${timeoutMs} ms${lastErr ? `: ${lastErr}` : ""}` };
    const deadline = Date.now() + maxWaitMs;
    let r = cache.read();
    while (!r.ok && r.reason === "snapshot_incomplete") {
      const wait = inBatchWait(cache.activity(), Date.now(), deadline, WRITER_QUIET_MS);
      if (wait <= 0) break;
      await new Promise((res) => setTimeout(res, Math.min(wait, 25)));
      r = cache.read();
    }
    return r;
  } catch (err) {
    return { ok: false, reason: "snapshot_unreadable", detail: `world store: ${(err as Error).message}` };
  } finally {
    await cache.stop();
  }
}

/**
 * One-shot read of a few nodes: the header and one record per node, nothing else. A record newer than the header is
 * not the node as of it: read again while the observer is writing (its header follows within moments), and answer
 * `snapshot_incomplete` once that record is WRITER_QUIET_MS old with no header after it (at most `maxWaitMs`).
 */
export async function readWorldNodes(kv: KV, asked: readonly string[], maxWaitMs = 5_000): Promise<Loaded<Snapshot>> {
  // A name that cannot be a node (not a key token) is simply not in the world.
  const names = asked.filter((n) => NODE_NAME_PATTERN.test(n));
  const deadline = Date.now() + maxWaitMs;
  try {
    for (;;) {
      const [head, ...entries] = await Promise.all([kv.get(WORLD_HEADER_KEY), ...names.map((n) => kv.get(worldNodeKey(n)))]);
      const header = head && head.operation === "PUT" ? parseHeader(head.string()) : undefined;
      const items = new Map<string, Parsed<NodeState>>();
      const hidden: string[] = [];
      let lastWriteAt = 0;
      entries.forEach((e, i) => {
        const name = names[i];
        if (!e || name === undefined) return;
        // Written (or removed) after the header: not the node as of that header, and the older record is gone.
        if (head && e.revision > head.revision) {
          hidden.push(name);
          lastWriteAt = Math.max(lastWriteAt, e.created.getTime());
        } else if (e.operation === "PUT") items.set(name, parseNode(e.string(), name));
      });
      const r = assemble(header, items, names, hidden);
      const wait = hidden.length > 0 ? inBatchWait({ staged: hidden.length, caughtUp: true, lastWriteAt }, Date.now(), deadline, WRITER_QUIET_MS) : 0;
      if (wait <= 0) return r;
      await new Promise((res) => setTimeout(res, Math.min(wait, 25)));
    }
  } catch (err) {
    return { ok: false, reason: "snapshot_unreadable", detail: `world store: ${(err as Error).message}` };
  }
}

/**
 * Every node record as stored, with the header: for an observer taking over after another died. Readers' views
 * (`readWorld`, `watchWorld`, `readWorldNodes`) leave out node records written after the last header, so a write the
 * dead observer did not finish shows there as an incomplete world; here they are kept (they only hold events after
 * the header's `last_seq`: folding those again finds each in its node from the same stream sequence, folds nothing
 * and counts it, observer reduce.ts `seenInNode`). One get per node.
 */
export async function readWorldAsStored(kv: KV): Promise<Loaded<Snapshot>> {
  const names: string[] = [];
  try {
    for await (const k of await kv.keys(`${WORLD_NODE_PREFIX}*`)) names.push(k.slice(WORLD_NODE_PREFIX.length));
    const [head, ...entries] = await Promise.all([kv.get(WORLD_HEADER_KEY), ...names.map((n) => kv.get(worldNodeKey(n)))]);
    const header = head && head.operation === "PUT" ? parseHeader(head.string()) : undefined;
    const items = new Map<string, Parsed<NodeState>>();
    entries.forEach((e, i) => {
      const name = names[i];
      if (e && e.operation === "PUT" && name !== undefined) items.set(name, parseNode(e.string(), name));
    });
    return assemble(header, items, names, []);
  } catch (err) {
    return { ok: false, reason: "snapshot_unreadable", detail: `world store: ${(err as Error).message}` };
  }
}

export interface WorldWriteResult {
  nodesWritten: number;
  nodesDeleted: number;
  /** Nodes too big for one KV message: left out (readers see them as never reported: unknown, never missing). */
  oversized: string[];
  revision: number;
  /** Changed nodes whose change was liveness only, left for a later write by the liveness budget. */
  nodesDeferred: number;
  /** The stream sequence the header claims: the world's, or where the first deferred node's unwritten part starts. */
  lastSeq: number;
}

/** A world write that did not complete; the header was not written, so readers still see the previous write. */
export class WorldWriteError extends Error {
  /**
   * Another writer changed records this writer had written (another observer became active while this one was
   * stopped or cut off): this writer must not write again before it knows it is still the active observer. The
   * writer has forgotten what it wrote; its next commit rewrites every node, unconditionally.
   */
  readonly fenced: boolean;
  constructor(readonly failures: readonly WriteFailure[]) {
    super(`world store write failed for ${failures.length} record(s): ${failures.slice(0, 3).map((f) => `${f.key}: ${f.message}`).join("; ")}`);
    this.name = "WorldWriteError";
    this.fenced = failures.some((f) => f.conflict);
  }
}

export interface PreparedWrite {
  /** The whole snapshot as JSON (the observer's file), from the JSON of each node this write already made. */
  snapshotJson(): string;
  /** Writes the changed nodes, then the header. Throws WorldWriteError; the header is then not written. */
  commit(): Promise<WorldWriteResult>;
}

export interface WorldWriter {
  /**
   * Takes what changed from `world` now, synchronously (the observer goes on folding meanwhile): a node object
   * the observer replaced is a changed node, compared by content before it is written.
   */
  prepare(world: WorldState, writtenAt: string, positions?: PositionLog): PreparedWrite;
  write(world: WorldState, writtenAt: string, positions?: PositionLog): Promise<WorldWriteResult>;
}

export interface WorldWriterOptions {
  kv: KV;
  observerId: string;
  /** Largest record NATS takes (the server's max_payload); a bigger node is left out and reported. */
  maxRecordBytes?: number;
  /**
   * Liveness-only node changes (a heartbeat restating the record) are written at this rate at most, the least
   * recently written first, each at least every `maxAgeMs` (liveness.ts). Applies to a write given the observer's
   * PositionLog (its header then claims the stream only up to the first message a waiting node has not had written,
   * so a resume from the store folds it again: exact). Without it every changed node is written.
   */
  liveness?: LivenessBudget;
}

/**
 * The world's only writer (the observer). The fold never mutates a node in place, so an unchanged node is the same
 * object and costs nothing. The first write after a start writes every node and removes records of nodes the
 * world no longer has (and the legacy single-value key).
 *
 * Fencing: after that first write, every write is conditional on the KV revision this writer last gave the record
 * (the header included). Two observers active at once (one was stopped with SIGSTOP and resumed after the other
 * took over) cannot both write: the first write of the one that lost its lock fails with `fenced`, before its
 * header, so readers never see its stale nodes as a complete world.
 */
export function createWorldWriter(o: WorldWriterOptions): WorldWriter {
  const maxBytes = o.maxRecordBytes ?? 1024 * 1024 - 4096;
  /** What the store holds of each node as this writer wrote it, and when (writer's clock, ms). */
  const written = new Map<string, { node: NodeState; json: string; at: number }>();
  /** Liveness writes this writer may still make now (a bucket refilled at the budget's rate, holding 1 s of it). */
  let tokens = 0;
  let refilledAt: number | undefined;
  /**
   * Nodes judged liveness-only by the last write and left waiting, with the first sequence their record lacks: a
   * node the observer has not touched since is the same object, and is not compared again (hundreds wait at once).
   */
  let waited = new Map<string, { node: NodeState; first: number }>();
  /** KV revision of each record as this writer last wrote it (deleted records: absent, and in `deletedByMe`). */
  const revs = new Map<string, number>();
  const deletedByMe = new Set<string>();
  let revision: number | undefined;
  let primed = false;

  async function prime(): Promise<void> {
    const prev = await o.kv.get(WORLD_HEADER_KEY);
    const p = prev && prev.operation === "PUT" ? parseHeader(prev.string()) : undefined;
    revision = p?.ok ? p.value.revision : 0;
  }

  /** Forgets everything written: the next commit is a first write again (every node, unconditional). */
  function reset(): void {
    written.clear();
    waited = new Map();
    revs.clear();
    deletedByMe.clear();
    revision = undefined;
    primed = false;
  }

  /** The condition a record's write carries: none on a first write; after it, the revision this writer left. */
  function expect(key: string): Pick<RecordWrite, "expect"> {
    if (!primed) return {};
    const rev = revs.get(key);
    if (rev !== undefined) return { expect: rev };
    return deletedByMe.has(key) ? { expect: "new" } : {};
  }

  async function staleKeys(names: ReadonlySet<string>): Promise<string[]> {
    const out: string[] = [];
    const keys = await o.kv.keys(`${WORLD_NODE_PREFIX}*`);
    for await (const k of keys) {
      const name = k.slice(WORLD_NODE_PREFIX.length);
      if (!names.has(name)) out.push(name);
    }
    return out;
  }

  function prepare(world: WorldState, writtenAt: string, positions?: PositionLog): PreparedWrite {
    const now = Date.parse(writtenAt);
    /** Each node's JSON for the file snapshot; a deferred node's is made only if the file is written. */
    const all: { name: string; json?: string; node: NodeState }[] = [];
    const puts: { key: string; name: string; node: NodeState; json: string }[] = [];
    const same: { name: string; node: NodeState; json: string }[] = [];
    const oversized: string[] = [];
    const names = new Set<string>();
    const budget = positions && primed ? o.liveness : undefined;
    const waiting: { name: string; writtenAt: number; node: NodeState; first: number }[] = [];
    const change = (name: string, node: NodeState, prev: { json: string } | undefined): void => {
      const json = JSON.stringify(node);
      all.push({ name, json, node });
      if (prev && prev.json === json) same.push({ name, node, json });
      else if (Buffer.byteLength(json) > maxBytes) oversized.push(name);
      else puts.push({ key: worldNodeKey(name), name, node, json });
    };
    for (const name in world.nodes) {
      const node = world.nodes[name] as NodeState;
      names.add(name);
      const prev = written.get(name);
      if (prev && prev.node === node) {
        all.push({ name, json: prev.json, node });
        continue;
      }
      const memo = waited.get(name);
      if (budget && memo?.node === node && prev) {
        waiting.push({ name, writtenAt: prev.at, node, first: memo.first });
        continue;
      }
      const first = budget && prev && livenessOnly(prev.node, node) ? firstUnwrittenSeq(prev.node, node) : null;
      if (prev && first !== null) waiting.push({ name, writtenAt: prev.at, node, first: first ?? Infinity });
      else change(name, node, prev);
    }
    let base: WorldPosition & { version: 1 } = { version: world.version, last_seq: world.last_seq, events_applied: world.events_applied, event_time: world.event_time };
    let deferred = 0;
    if (budget && waiting.length > 0) {
      // A full bucket to start with: a small fleet never waits.
      tokens = refilledAt === undefined ? budget.writesPerSecond : Math.min(budget.writesPerSecond, tokens + (Math.max(0, now - refilledAt) / 1000) * budget.writesPerSecond);
      refilledAt = now;
      let chosen = new Set(chooseLivenessWrites(waiting, now, tokens, budget.maxAgeMs));
      let first = Infinity;
      for (const w of waiting) if (!chosen.has(w.name)) first = Math.min(first, w.first);
      // The header claims the stream only up to the first message a waiting node's record lacks, with the counters
      // as they were there; if the log does not reach back that far, nothing waits.
      const at = first <= world.last_seq ? positions?.at(first - 1) : undefined;
      if (at) base = { version: world.version, ...at };
      else if (first <= world.last_seq) chosen = new Set(waiting.map((w) => w.name));
      tokens = Math.max(0, tokens - chosen.size);
      waited = new Map();
      for (const w of waiting) {
        if (chosen.has(w.name)) change(w.name, w.node, written.get(w.name));
        else {
          all.push({ name: w.name, node: w.node });
          waited.set(w.name, { node: w.node, first: w.first });
          deferred++;
        }
      }
    } else {
      waited = new Map();
      if (!budget) refilledAt = undefined;
    }
    const gone = [...written.keys()].filter((n) => !names.has(n));
    const nodeCount = names.size - oversized.length;

    return {
      snapshotJson() {
        const parts = all.map((e) => `${JSON.stringify(e.name)}:${e.json ?? JSON.stringify(e.node)}`);
        // The file is the observer's own resume point: the whole world as folded, waiting nodes and all.
        const whole = { version: world.version, last_seq: world.last_seq, events_applied: world.events_applied, event_time: world.event_time };
        return `{"world":${JSON.stringify(whole).slice(0, -1)},"nodes":{${parts.join(",")}}},"written_at":${JSON.stringify(writtenAt)},"observer_id":${JSON.stringify(o.observerId)}}`;
      },
      async commit() {
        for (const s of same) written.set(s.name, { node: s.node, json: s.json, at: written.get(s.name)?.at ?? now });
        if (revision === undefined) await prime();
        if (!primed) {
          for (const n of await staleKeys(names)) if (!gone.includes(n)) gone.push(n);
          await o.kv.purge(LEGACY_WORLD_KEY).catch(() => undefined);
        }
        const { failures, revisions } = await writeAll(o.kv, [
          ...puts.map((p) => ({ key: p.key, value: p.json, ...expect(p.key) })),
          ...gone.map((n) => ({ key: worldNodeKey(n), value: null, ...expect(worldNodeKey(n)) })),
        ]);
        const failed = new Set(failures.map((f) => f.key));
        for (const p of puts) {
          if (failed.has(p.key)) continue;
          written.set(p.name, { node: p.node, json: p.json, at: now });
          revs.set(p.key, revisions.get(p.key) as number);
          deletedByMe.delete(p.key);
        }
        for (const n of gone) {
          if (failed.has(worldNodeKey(n))) continue;
          written.delete(n);
          revs.delete(worldNodeKey(n));
          deletedByMe.add(worldNodeKey(n));
        }
        const error = failures.length > 0 ? new WorldWriteError(failures) : undefined;
        if (error?.fenced) reset();
        if (error) throw error;
        const next = (revision ?? 0) + 1;
        const header: WorldHeader = { ...base, revision: next, node_count: nodeCount, written_at: writtenAt, observer_id: o.observerId };
        const headerWrite = await writeAll(o.kv, [{ key: WORLD_HEADER_KEY, value: JSON.stringify(header), ...expect(WORLD_HEADER_KEY) }]);
        if (headerWrite.failures.length > 0) {
          const headerError = new WorldWriteError(headerWrite.failures);
          if (headerError.fenced) reset();
          throw headerError;
        }
        revs.set(WORLD_HEADER_KEY, headerWrite.revisions.get(WORLD_HEADER_KEY) as number);
        revision = next;
        primed = true;
        positions?.trimTo(base.last_seq);
        return { nodesWritten: puts.length, nodesDeleted: gone.length, oversized, revision: next, nodesDeferred: deferred, lastSeq: base.last_seq };
      },
    };
  }

  return { prepare, write: (world, writtenAt, positions) => prepare(world, writtenAt, positions).commit() };
}
