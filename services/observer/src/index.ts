export { createObserver, type Observer, type ObserverDeps, type ObserverSettings } from "./observer.js";
export { decodeEventMessage } from "./event-decode.js";
export { reduceWorld, foldInto, markStale, advanceSeq, nodeLastSeen, RECENT_EVENT_IDS, DEFAULT_HEARTBEAT_INTERVAL_MS, type FoldMeta, type StaleOptions } from "./reduce.js";
export { writeSnapshotFile, removeLeftoverTempFiles } from "./snapshot-store.js";
export { loadConfig, ObserverConfigSchema, type ObserverConfig } from "./config.js";
export { createObserverMetrics, type ObserverMetrics } from "./observer-metrics.js";
