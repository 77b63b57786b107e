export { createNodeAgent, AGENT_VERSION, type NodeAgent, type NodeAgentDeps } from "./agent.js";
export { loadConfig, defaultLogDir, NodeAgentEnv, type NodeAgentConfig } from "./config.js";
export { EventPublisher, newEventId, type PublishSink, type PublisherOptions } from "./publisher.js";
export { BoundedQueue } from "./bounded-queue.js";
export { SeenCommands, verifyCommand, type CommandVerdict } from "./commands.js";
export { runCheck, type CheckResult } from "./checks.js";
export { aggregateHealth, checkHealth, checkName, diffServices, diskUsage, memUsedPct, restartDelayMs, shouldRestart, startOrder, type CheckProgress, type SpecDiff } from "./plan.js";
export { createAgentMetrics, type AgentMetrics } from "./metrics.js";
export { SupervisedService, SpawnError } from "./supervised-service.js";
