import { Counter, type Registry } from "@steward/platform/metrics";
import type { Logger } from "@steward/platform/logger";
import type { WatchRestart } from "./kv-cache.js";

/** Which family of records a watch follows: a metric label. */
export type WatchedStore = "world" | "drift";

/** Gives each watch of one service its `onRestart`: counted and logged the same way in every reader. */
export interface WatchRestartReporter {
  onRestart(store: WatchedStore): (r: WatchRestart) => void;
}

/**
 * Counts stalled-watch restarts in `steward_world_watch_restarts_total{store,reason}` and logs one line each. One per
 * registry: a service with a world and a drift watch shares it.
 */
export function createWatchRestartReporter(registry: Registry, logger: Logger): WatchRestartReporter {
  const restarts = new Counter({
    name: "steward_world_watch_restarts_total",
    help: "World-store watches stopped and started again from their last delivered record, by store and reason (stalled: its consumer was lost)",
    labelNames: ["store", "reason"],
    registers: [registry],
  });
  return {
    onRestart: (store) => (r) => {
      restarts.inc({ store, reason: r.reason });
      logger.warn({ store, reason: r.reason, resume_after: r.resumeAfter, stored: r.stored }, "world store watch stalled (its consumer was lost); restarted from the last record it delivered");
    },
  };
}
