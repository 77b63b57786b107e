import { DRIFT_HEADER_KEY, DRIFT_KEYS, DRIFT_NODE_PREFIX, LEGACY_DRIFT_KEY, driftNodeFromKey, driftNodeKey } from "@steward/contracts/subjects";
import { DriftHeader, NodeDrifts, type Drift, type DriftReport } from "@steward/contracts/drift";
import type { KV } from "@steward/platform/bus";
import { createKvCache, readSettled, type CacheChange, type Parsed, type WatchRestart } from "./kv-cache.js";
import { parseRecord, writeAll, type WriteFailure } from "./records.js";

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
export function watchDrift(
  kv: KV,
  opts: { onChange?: (c: CacheChange<DriftHeader>) => void; onError?: (err: Error) => void; onRestart?: (r: WatchRestart) => void; checkMs?: number } = {},
): DriftCache {
  const cache = createKvCache({ kv, filter: DRIFT_KEYS, headerKey: DRIFT_HEADER_KEY, itemPrefix: DRIFT_NODE_PREFIX, parseHeader, parseItem: parseNode, ...opts });
  return {
    ready: () => cache.ready(),
    read() {
      const s = cache.state();
      if (s.status === "loading") return { ok: false, reason: "drift_missing", detail: "drift report still loading" };
      if (s.status === "broken" || s.status === "behind") return { ok: false, reason: "drift_unreadable", detail: s.detail };
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

export interface DriftWriteResult {
  nodesWritten: number;
  nodesDeleted: number;
}

export interface DriftWriter {
  /** Writes the nodes whose findings changed since the last write (removing nodes with none), then the header. */
  write(report: DriftReport): Promise<DriftWriteResult>;
  /**
   * Writes only the named nodes' findings, taken from `byNode` (a node absent there has none: its record is removed),
   * then the header; a node whose findings are as this writer last wrote them is not written again. For a supervisor
   * that diffed a few nodes: the cost follows the change, not the fleet. Until this writer made one whole write
   * (which removes records a previous leader left), it writes `report` whole instead.
   */
  writeNodes(report: DriftReport, byNode: ReadonlyMap<string, readonly Drift[]>, nodes: Iterable<string>): Promise<DriftWriteResult>;
}

/**
 * The drift report's only writer (the leading supervisor). One record per node, so an outage of every node
 * (thousands of `unknown` findings) is as publishable as a quiet day. The first write removes other nodes' records
 * a previous leader left.
 */
export function createDriftWriter(kv: KV): DriftWriter {
  const written = new Map<string, string>();
  let primed = false;

  /** Puts the given nodes' records (null: removed), then the header; what failed is written again next time. */
  async function commit(report: DriftReport, next: ReadonlyMap<string, string | null>): Promise<DriftWriteResult> {
    const records: { key: string; value: string | null }[] = [];
    for (const [node, json] of next) {
      if (json === null ? written.has(node) || !primed : written.get(node) !== json) records.push({ key: driftNodeKey(node), value: json });
    }
    const { failures } = await writeAll(kv, records);
    const failed = new Set(failures.map((f) => f.key));
    let deleted = 0;
    for (const [node, json] of next) {
      // A put that failed is forgotten (so it differs next time); a removal that failed stays known (so it is retried).
      if (failed.has(driftNodeKey(node))) {
        if (json !== null) written.delete(node);
      } else if (json === null) written.delete(node);
      else written.set(node, json);
    }
    for (const r of records) if (r.value === null && !failed.has(r.key)) deleted++;
    if (failures.length > 0) throw new DriftWriteError(failures);
    const { drifts, ...rest } = report;
    const header: DriftHeader = { ...rest, drift_count: drifts.length };
    try {
      await kv.put(DRIFT_HEADER_KEY, JSON.stringify(DriftHeader.parse(header)));
    } catch (err) {
      throw new DriftWriteError([{ key: DRIFT_HEADER_KEY, message: (err as Error).message }]);
    }
    primed = true;
    return { nodesWritten: records.length - deleted, nodesDeleted: deleted };
  }

  const recordOf = (node: string, drifts: readonly Drift[]): string => JSON.stringify({ node, drifts: [...drifts].sort(byKey) } satisfies NodeDrifts);

  async function write(report: DriftReport): Promise<DriftWriteResult> {
    const byNode = new Map<string, Drift[]>();
    for (const d of report.drifts) {
      const list = byNode.get(d.node);
      if (list) list.push(d);
      else byNode.set(d.node, [d]);
    }
    const next = new Map<string, string | null>();
    for (const [node, drifts] of byNode) next.set(node, recordOf(node, drifts));
    for (const n of written.keys()) if (!next.has(n)) next.set(n, null);
    if (!primed) {
      for await (const k of await kv.keys(`${DRIFT_NODE_PREFIX}*`)) {
        const n = driftNodeFromKey(k.slice(DRIFT_NODE_PREFIX.length));
        if (!next.has(n)) next.set(n, null);
      }
      await kv.purge(LEGACY_DRIFT_KEY).catch(() => undefined);
    }
    return commit(report, next);
  }

  return {
    write,
    async writeNodes(report, byNode, nodes) {
      if (!primed) return write(report);
      const next = new Map<string, string | null>();
      for (const n of nodes) {
        const drifts = byNode.get(n);
        next.set(n, drifts && drifts.length > 0 ? recordOf(n, drifts) : null);
      }
      return commit(report, next);
    },
  };
}
