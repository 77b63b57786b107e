export { createSupervisor, type CycleResult, type Supervisor, type SupervisorDeps, type SupervisorSettings } from "./supervisor.js";
export { computeDrift, countByKind, driftKey, type DiffOptions } from "./diff.js";
export { loadSpecSafe, loadSnapshotFromFile, loadSnapshotFromKv, parseSnapshot, type Loaded, type SkipReason } from "./load.js";
export { proposeActions, expireCleared, rowToAction, ACTIONS_CHANNEL } from "./proposals.js";
export { LeaderLock, SUPERVISOR_LOCK_KEY } from "./leader.js";
export { loadSupervisorConfig, type SupervisorConfig } from "./config.js";
export { createSupervisorMetrics, type SupervisorMetrics } from "./metrics.js";
