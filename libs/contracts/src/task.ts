import { z } from "zod";
import { boundedJsonObject, label, storableText } from "./limits.js";

export const MAX_TASK_TTL_S = 30 * 24 * 3600;

/** Where a task came from. */
export const TaskSource = z.enum(["cli", "supervisor", "schedule", "telegram", "ntfy", "api", "web"]);
export type TaskSource = z.infer<typeof TaskSource>;

/**
 * The planner inbox envelope (POST /inbox). Structural checks live here; semantic checks that answer 422
 * naming the field (blank task_id/content, ttl_s <= 0, blank idempotency_key, unknown target_agent) live in the planner.
 */
export const TaskEnvelope = z.object({
  task_id: storableText(10_000),
  content: storableText(1_000_000),
  source: TaskSource,
  user: label(200).min(1),
  conversation_id: label(200).min(1).optional(),
  target_agent: storableText(64).optional(),
  /** At most 30 days: a task that should live longer is a schedule, not a queue entry. */
  ttl_s: z.number().max(MAX_TASK_TTL_S).optional(),
  idempotency_key: storableText(200).optional(),
  /** Restricted data never leaves the house: such a task is only ever served by the local model. */
  restricted: z.boolean().default(false),
  /** Evidence attached by the sender (e.g. the supervisor's drift and recent events). Never secrets. */
  evidence: boundedJsonObject().optional(),
  /** W3C trace context, when the sender could not put it in a header. */
  traceparent: storableText(512).optional(),
});
export type TaskEnvelope = z.output<typeof TaskEnvelope>;

export const TaskState = z.enum(["queued", "running", "succeeded", "failed", "expired", "dead"]);
export type TaskState = z.infer<typeof TaskState>;

export const Task = z.object({
  id: z.string(),
  state: TaskState,
  source: TaskSource,
  user: z.string(),
  content: z.string(),
  conversation_id: z.string(),
  agent: z.string().nullable(),
  answer: z.string().nullable(),
  /** Which model groups served the task's calls (`rules` when the rule-based diagnoser answered). */
  model_groups: z.array(z.string()),
  cost_usd: z.number(),
  attempts: z.number().int(),
  error: z.string().nullable(),
  restricted: z.boolean(),
  created_at: z.string(),
  updated_at: z.string(),
  expires_at: z.string().nullable(),
});
export type Task = z.infer<typeof Task>;

export const TaskStep = z.object({
  at: z.string(),
  kind: z.enum(["triage", "tool", "model", "diagnosis", "proposal", "report", "error", "progress"]),
  message: z.string(),
});
export type TaskStep = z.infer<typeof TaskStep>;

export const ModelCall = z.object({
  at: z.string(),
  agent: z.string(),
  provider: z.enum(["ollama", "anthropic", "rules"]),
  model_group: z.string(),
  model: z.string(),
  /** Router decision and its reason, e.g. `local` / `within_context`, `claude` / `context_overflow`. */
  decision: z.string(),
  reason: z.string(),
  input_tokens: z.number().int(),
  output_tokens: z.number().int(),
  cost_usd: z.number(),
});
export type ModelCall = z.infer<typeof ModelCall>;

export const TaskProposal = z.object({
  action_kind: z.string(),
  node: z.string().nullable(),
  service: z.string().nullable(),
  accepted: z.boolean(),
  /** Why it was dropped (not in the catalog, invalid, unknown node/service) or the action's reason. */
  reason: z.string(),
  action_id: z.string().nullable(),
});
export type TaskProposal = z.infer<typeof TaskProposal>;

export const TaskDetail = z.object({ task: Task, steps: z.array(TaskStep), calls: z.array(ModelCall), proposals: z.array(TaskProposal) });
export type TaskDetail = z.infer<typeof TaskDetail>;

const Spend = z.object({ usd: z.number(), calls: z.number().int() });
export const CostReport = z.object({
  generated_at: z.string(),
  caps: z.object({ per_task_usd: z.number(), per_agent_day_usd: z.number(), global_day_usd: z.number() }),
  today: z.object({ global: Spend, by_agent: z.record(z.string(), Spend) }),
  headroom: z.object({ global_day_usd: z.number(), per_agent_day_usd: z.record(z.string(), z.number()) }),
  by_day: z.array(Spend.extend({ day: z.string() })),
  by_agent: z.array(Spend.extend({ agent: z.string() })),
  by_model_group: z.array(Spend.extend({ model_group: z.string() })),
  by_source: z.array(Spend.extend({ source: z.string() })),
});
export type CostReport = z.infer<typeof CostReport>;
