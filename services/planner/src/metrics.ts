import { Counter, Gauge, Histogram, type Registry } from "@steward/platform/metrics";

export interface PlannerMetrics {
  rejected: Counter<"reason">;
  inbox: Counter<"result">;
  routerDecisions: Counter<"agent" | "decision" | "reason">;
  modelCalls: Counter<"provider" | "model_group" | "result">;
  costUsd: Counter<"agent" | "model_group">;
  capRefusals: Counter<"cap">;
  tasks: Counter<"state">;
  taskSeconds: Histogram<"agent">;
  /** Planner work per task excluding model time. */
  overheadSeconds: Histogram;
  proposals: Counter<"accepted">;
  /** Proposals the trust boundary refused, by rule (trust-boundary.ts). */
  refusals: Counter<"rule">;
  queueDepth: Gauge;
  /** Tool calls of the investigation loop, by tool and result (ok, error, timeout, invalid, undeclared, limit). */
  toolCalls: Counter<"tool" | "result">;
  /** Investigations ended by a limit before the model answered on its own, by limit. */
  loopStops: Counter<"reason">;
  /** Tool calls per task that made any. */
  loopToolCalls: Histogram;
  apiRequests: Counter<"route" | "status">;
  /** Bearer tokens refused as wrong, and requests refused (429) because their source sent too many wrong ones. */
  bearerFailures: Counter<"result">;
  /** Sources the failure limiter remembers now (bounded; see @steward/platform/rate-limit). */
  limiterSources: Gauge;
  /** Incident memory: incidents opened and resolved, recurrences raised (event). */
  incidents: Counter<"event">;
  /** Post-mortem drafts by who wrote them (model, timeline). */
  postmortems: Counter<"by">;
}

export function createPlannerMetrics(r: Registry): PlannerMetrics {
  const get = <T>(name: string, make: () => T): T => (r.getSingleMetric(name) as T | undefined) ?? make();
  return {
    rejected: get("steward_planner_inbox_rejected_total", () => new Counter({ name: "steward_planner_inbox_rejected_total", help: "Inbox envelopes rejected, by reason", labelNames: ["reason"], registers: [r] })),
    inbox: get("steward_planner_inbox_total", () => new Counter({ name: "steward_planner_inbox_total", help: "Accepted inbox envelopes: created or duplicate", labelNames: ["result"], registers: [r] })),
    routerDecisions: get("steward_planner_router_decisions_total", () => new Counter({ name: "steward_planner_router_decisions_total", help: "Router decisions per model call", labelNames: ["agent", "decision", "reason"], registers: [r] })),
    modelCalls: get("steward_planner_model_calls_total", () => new Counter({ name: "steward_planner_model_calls_total", help: "Model calls by provider, group and result", labelNames: ["provider", "model_group", "result"], registers: [r] })),
    costUsd: get("steward_planner_cost_usd_total", () => new Counter({ name: "steward_planner_cost_usd_total", help: "Settled model spend in USD", labelNames: ["agent", "model_group"], registers: [r] })),
    capRefusals: get("steward_planner_cost_cap_refusals_total", () => new Counter({ name: "steward_planner_cost_cap_refusals_total", help: "Claude calls not made because a cap would be passed", labelNames: ["cap"], registers: [r] })),
    tasks: get("steward_planner_tasks_total", () => new Counter({ name: "steward_planner_tasks_total", help: "Tasks that reached a state", labelNames: ["state"], registers: [r] })),
    taskSeconds: get("steward_planner_task_duration_seconds", () => new Histogram({ name: "steward_planner_task_duration_seconds", help: "Wall time of one task attempt", labelNames: ["agent"], buckets: [0.05, 0.1, 0.5, 1, 5, 15, 60, 180], registers: [r] })),
    overheadSeconds: get("steward_planner_overhead_seconds", () => new Histogram({ name: "steward_planner_overhead_seconds", help: "Planner time per task excluding model calls", buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1], registers: [r] })),
    proposals: get("steward_planner_proposals_total", () => new Counter({ name: "steward_planner_proposals_total", help: "Proposals by whether they were accepted", labelNames: ["accepted"], registers: [r] })),
    refusals: get("steward_planner_proposals_refused_total", () => new Counter({ name: "steward_planner_proposals_refused_total", help: "Proposals refused by the trust boundary, by rule", labelNames: ["rule"], registers: [r] })),
    queueDepth: get("steward_planner_queue_depth", () => new Gauge({ name: "steward_planner_queue_depth", help: "Queued tasks", registers: [r] })),
    toolCalls: get("steward_planner_tool_calls_total", () => new Counter({ name: "steward_planner_tool_calls_total", help: "Investigation tool calls by tool and result", labelNames: ["tool", "result"], registers: [r] })),
    loopStops: get("steward_planner_loop_stops_total", () => new Counter({ name: "steward_planner_loop_stops_total", help: "Investigations ended by a limit (steps, time, rounds, cost)", labelNames: ["reason"], registers: [r] })),
    loopToolCalls: get("steward_planner_loop_tool_calls", () => new Histogram({ name: "steward_planner_loop_tool_calls", help: "Tool calls per task that made any", buckets: [1, 2, 3, 4, 6, 8, 12, 16, 24], registers: [r] })),
    incidents: get("steward_planner_incidents_total", () => new Counter({ name: "steward_planner_incidents_total", help: "Incidents opened and resolved, recurrences raised", labelNames: ["event"], registers: [r] })),
    postmortems: get("steward_planner_postmortems_total", () => new Counter({ name: "steward_planner_postmortems_total", help: "Post-mortem drafts by who wrote them (model, timeline)", labelNames: ["by"], registers: [r] })),
    bearerFailures: get("steward_planner_bearer_failures_total", () => new Counter({ name: "steward_planner_bearer_failures_total", help: "Wrong bearer tokens (wrong_token) and requests refused for too many of them from one address (rate_limited)", labelNames: ["result"], registers: [r] })),
    limiterSources: get("steward_planner_rate_limit_sources", () => new Gauge({ name: "steward_planner_rate_limit_sources", help: "Source addresses the wrong-token limiter remembers (bounded)", registers: [r] })),
    apiRequests: get("steward_planner_api_requests_total", () => new Counter({ name: "steward_planner_api_requests_total", help: "HTTP requests by route and status", labelNames: ["route", "status"], registers: [r] })),
  };
}
