export { createExecutor, type Executor, type ExecutorDeps } from "./executor.js";
export { loadConfig, SERVICE_NAME, type ExecutorConfig } from "./config.js";
export { createActionStore, isUuid, toAction, ACTIONS_CHANNEL, LOST_EXECUTOR_DETAIL, type ActionStore, type StoreResult, type RunOutcome, type ListFilter, type SweepResult } from "./store.js";
export { judgeWorld, type Verdict, type VerifyTarget } from "./verify.js";
export { runAction, describeRequestError, type RunDeps } from "./run.js";
export { createApiHandler, bearerMatches, MAX_BODY_BYTES, type ApiDeps } from "./http-api.js";
export { createExecutorMetrics, type ExecutorMetrics } from "./metrics.js";
export { readSnapshot, readDrift, readKvJson, type KvRead } from "./world.js";
