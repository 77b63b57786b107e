// The planner's public surface: what wires it up in a process (main, the stack fixture, the benchmark). Its typed
// HTTP client is `@steward/planner/client`; its settings are `@steward/planner/config`.
export { createPlanner, type Planner, type PlannerDeps } from "./planner.js";
export { loadConfig, SERVICE_NAME, type PlannerConfig } from "./config.js";
export { createNatsSources } from "./sources.js";
export { createOllamaBackend } from "./backends.js";
export { TOOLS, investigationTools, runTool, type ToolContext, type ToolResult } from "./tools.js";
