import type { DriftReport } from "@steward/contracts/drift";
import type { Snapshot } from "@steward/contracts/world-state";
import type { KV } from "@steward/platform/bus";
import type { Logger } from "@steward/platform/logger";
import { watchDrift, type DriftCache } from "@steward/world/drift-store";
import { watchWorld, type WorldCache } from "@steward/world/world-store";
import type { WatchRestartReporter } from "@steward/world/watch-restarts";

export type KvRead<T> = { ok: true; value: T } | { ok: false; code: "none" | "unreadable"; message: string };

/** What the executor reads of the world store: kept current by a watch, so a read costs no KV round trip. */
export interface WorldView {
  /** The whole world (the API's /api/world, the console); waits until what KV holds now is applied. */
  snapshot(): Promise<KvRead<Snapshot>>;
  /** Only these nodes, as the watch last applied them (verification polls this). */
  nodes(names: readonly string[]): KvRead<Snapshot>;
  drift(): Promise<KvRead<DriftReport>>;
  /** Changes whenever the world or the drift report a reader sees changed (the console's change feed). */
  revision(): string;
  stop(): Promise<void>;
}

const toRead = <T>(r: { ok: true; value: T } | { ok: false; reason: string; detail: string }): KvRead<T> =>
  r.ok ? r : { ok: false, code: r.reason.endsWith("_missing") ? "none" : "unreadable", message: r.detail };

/** How long start-up waits for the first load; reads before it answer "none" (never an empty world). */
const LOAD_WAIT_MS = 10_000;
/** How long a request waits for the watch to apply what KV holds (read-your-writes). */
const SYNC_MS = 2_000;

export async function openWorldView(kv: KV, logger: Logger, restarts?: WatchRestartReporter): Promise<WorldView> {
  const onError = (err: Error) => logger.warn({ err: err.message }, "world store watch failed; re-reading");
  const world: WorldCache = watchWorld(kv, { onError, onRestart: restarts?.onRestart("world") });
  const drift: DriftCache = watchDrift(kv, { onError, onRestart: restarts?.onRestart("drift") });
  const loaded = await Promise.race([Promise.all([world.ready(), drift.ready()]).then(() => true), new Promise<false>((r) => setTimeout(() => r(false), LOAD_WAIT_MS).unref())]);
  if (!loaded) logger.warn({ waited_ms: LOAD_WAIT_MS }, "world store not loaded yet; reads answer 'none' until it is");
  return {
    async snapshot() {
      await world.sync(SYNC_MS).catch(() => false);
      return toRead(world.read());
    },
    nodes: (names) => toRead(world.nodes(names)),
    async drift() {
      await drift.sync(SYNC_MS).catch(() => false);
      return toRead(drift.read());
    },
    revision: () => `${world.revision()}.${drift.revision()}`,
    async stop() {
      await Promise.all([world.stop(), drift.stop()]);
    },
  };
}
