import { DRIFT_HEADER_KEY, DRIFT_KEYS, DRIFT_NODE_PREFIX, LEGACY_DRIFT_KEY, driftNodeFromKey, driftNodeKey } from "@steward/contracts/subjects";
import { DriftHeader, NodeDrifts, type Drift, type DriftReport } from "@steward/contracts/drift";
import type { KV } from "@steward/platform/bus";
import { createKvCache, readSettled, type CacheChange, type Parsed } from "./kv-cache.js";
import { parseRecord, putAll, type WriteFailure } from "./records.js";

/** Why the drift report could not be read (same shape as the world's, its own reasons). */
export type DriftLoaded = { ok: true; value: DriftReport } | { ok: false; reason: "drift_missing" | "drift_unreadable" | "drift_invalid"; detail: string };

const parseHeader = (text: string): Parsed<DriftHeader> => parseRecord(text, DriftHeader, `kv ${DRIFT_HEADER_KEY}`);
const parseNode = (text: string, name: string): Parsed<NodeDrifts> => {
  const p = parseRecord(text, NodeDrifts, `kv ${DRIFT_NODE_PREFIX}${name}`);
  if (p.ok && p.value.node !== driftNodeFromKey(name)) return { ok: false, detail: `kv ${DRIFT_NODE_PREFIX}${name}: holds node '${p.value.node}'` };
  return p;
};

const byKey = (a: Drift, b: Drift): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

function assemble(header: Parsed<DriftHeader> | undefined, items: ReadonlyMap<string, Parsed<NodeDrifts>>): DriftLoaded {
  if (!header) return { ok: false, reason: "drift_missing", detail: `kv ${DRIFT_HEADER_KEY}: no drift report written yet` };
  if (!header.ok) return { ok: false, reason: "drift_invalid", detail: header.detail };
  const drifts: Drift[] = [];
  for (const n of items.values()) {
    if (!n.ok) return { ok: false, reason: "drift_invalid", detail: n.detail };
    drifts.push(...n.value.drifts);
  }
  const { drift_count: _c, ...h } = header.value;
  return { ok: true, value: { ...h, drifts: drifts.sort(byKey) } };
}

export interface DriftCache {
  ready(): Promise<void>;
  read(): DriftLoaded;
  revision(): number;
  /** Waits (bounded) until the cache holds at least what KV holds now: read-your-writes for request handlers. */
  sync(timeoutMs?: number): Promise<boolean>;
  stop(): Promise<void>;
}

/** Watches the drift report: an initial load, then one update per supervisor write. */
export function watchDrift(kv: KV, opts: { onChange?: (c: CacheChange<DriftHeader>) => void; onError?: (err: Error) => void } = {}): DriftCache {
  const cache = createKvCache({ kv, filter: DRIFT_KEYS, headerKey: DRIFT_HEADER_KEY, itemPrefix: DRIFT_NODE_PREFIX, parseHeader, parseItem: parseNode, ...opts });
  return {
    ready: () => cache.ready(),
    read() {
      const s = cache.state();
      if (s.status === "loading") return { ok: false, reason: "drift_missing", detail: "drift report still loading" };
      if (s.status === "broken") return { ok: false, reason: "drift_unreadable", detail: s.detail };
      return assemble(s.header, s.items);
    },
    revision: () => cache.revision(),
    sync: (t) => cache.sync(t),
    stop: () => cache.stop(),
  };
}

/** One-shot read of the whole drift report. */
export async function readDrift(kv: KV, timeoutMs = 30_000): Promise<DriftLoaded> {
  let lastErr: string | undefined;
  const cache = watchDrift(kv, { onError: (err) => (lastErr = err.message) });
  try {
    const loaded = await Promise.race([cache.ready().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), timeoutMs).unref())]);
    if (!loaded) return { ok: false, reason: "drift_unreadable", detail: `drift report not loaded within ${timeoutMs} ms${lastErr ? `: ${lastErr}` : ""}` };
    return await readSettled(cache, () => cache.read());
  } catch (err) {
    return { ok: false, reason: "drift_unreadable", detail: `drift report: ${(err as Error).message}` };
  } finally {
    await cache.stop();
  }
}

export class DriftWriteError extends Error {
  constructor(readonly failures: readonly WriteFailure[]) {
    super(`drift report write failed for ${failures.length} record(s): ${failures.slice(0, 3).map((f) => `${f.key}: ${f.message}`).join("; ")}`);
    this.name = "DriftWriteError";
  }
}

export interface DriftWriter {
  /** Writes the nodes whose findings changed since the last write (removing nodes with none), then the header. */
  write(report: DriftReport): Promise<{ nodesWritten: number; nodesDeleted: number }>;
}

/**
 * The drift report's only writer (the leading supervisor). One record per node, so an outage of every node
 * (thousands of `unknown` findings) is as publishable as a quiet day. The first write removes other nodes' records
 * a previous leader left.
 */
export function createDriftWriter(kv: KV): DriftWriter {
  const written = new Map<string, string>();
  let primed = false;
  return {
    async write(report) {
      const byNode = new Map<string, Drift[]>();
      for (const d of report.drifts) {
        const list = byNode.get(d.node);
        if (list) list.push(d);
        else byNode.set(d.node, [d]);
      }
      const records: { key: string; value: string | null }[] = [];
      const next = new Map<string, string>();
      for (const [node, drifts] of byNode) {
        const json = JSON.stringify({ node, drifts: [...drifts].sort(byKey) } satisfies NodeDrifts);
        next.set(node, json);
        if (written.get(node) !== json) records.push({ key: driftNodeKey(node), value: json });
      }
      const gone = new Set([...written.keys()].filter((n) => !next.has(n)));
      if (!primed) {
        const keys = await kv.keys(`${DRIFT_NODE_PREFIX}*`);
        for await (const k of keys) {
          const n = driftNodeFromKey(k.slice(DRIFT_NODE_PREFIX.length));
          if (!next.has(n)) gone.add(n);
        }
        await kv.purge(LEGACY_DRIFT_KEY).catch(() => undefined);
      }
      for (const n of gone) records.push({ key: driftNodeKey(n), value: null });
      const failures = await putAll(kv, records);
      const failed = new Set(failures.map((f) => f.key));
      for (const [node, json] of next) if (!failed.has(driftNodeKey(node))) written.set(node, json);
      for (const n of gone) if (!failed.has(driftNodeKey(n))) written.delete(n);
      if (failures.length > 0) {
        // What failed is written again next time: forget it, so it counts as changed.
        for (const f of failures) {
          const n = driftNodeFromKey(f.key.slice(DRIFT_NODE_PREFIX.length));
          if (!gone.has(n)) written.delete(n);
        }
        throw new DriftWriteError(failures);
      }
      const { drifts, ...rest } = report;
      const header: DriftHeader = { ...rest, drift_count: drifts.length };
      try {
        await kv.put(DRIFT_HEADER_KEY, JSON.stringify(DriftHeader.parse(header)));
      } catch (err) {
        throw new DriftWriteError([{ key: DRIFT_HEADER_KEY, message: (err as Error).message }]);
      }
      primed = true;
      return { nodesWritten: records.length - gone.size, nodesDeleted: gone.size };
    },
  };
}
