import { z } from "zod";

/** `drill`: an operator's restart drill, which kills a healthy service on purpose and times its recovery (see drill.ts). */
export const ActionKind = z.enum(["start", "stop", "restart", "deploy", "pull", "drill"]);
export type ActionKind = z.infer<typeof ActionKind>;

export const ActionState = z.enum(["pending", "approved", "rejected", "expired", "running", "succeeded", "failed", "failed_unknown"]);
export type ActionState = z.infer<typeof ActionState>;

/** States in which an action still blocks a new proposal for the same (node, service, kind). */
export const OPEN_ACTION_STATES = ["pending", "approved", "running"] as const satisfies readonly ActionState[];
export type OpenActionState = (typeof OPEN_ACTION_STATES)[number];

/** States an operator or the system can still cancel before anything ran: expiry applies to these. */
export const UNSTARTED_ACTION_STATES = ["pending", "approved"] as const satisfies readonly OpenActionState[];

/** States in which a run ended without success (the outcome is known bad, or unknown). */
export const FAILED_ACTION_STATES = ["failed", "failed_unknown"] as const satisfies readonly ActionState[];

/** States in which the executor ran the action to an end. */
export const FINISHED_ACTION_STATES = ["succeeded", ...FAILED_ACTION_STATES] as const satisfies readonly ActionState[];

/** States from which no transition leads anywhere: the action is over, run or not. */
export const FINAL_ACTION_STATES = ActionState.options.filter((s): s is Exclude<ActionState, OpenActionState> => !(OPEN_ACTION_STATES as readonly ActionState[]).includes(s));

/** Kinds that act on one service of one node, the way a node-agent driver starts, stops and restarts it. */
export const SERVICE_ACTION_KINDS = ["start", "stop", "restart"] as const satisfies readonly ActionKind[];
export const ServiceActionKind = z.enum(SERVICE_ACTION_KINDS);
export type ServiceActionKind = z.infer<typeof ServiceActionKind>;

/** Kinds a drift finding can propose (an operator's `stop` never comes from drift). */
export const DRIFT_ACTION_KINDS = ["start", "restart", "deploy", "pull"] as const satisfies readonly ActionKind[];
export const DriftActionKind = z.enum(DRIFT_ACTION_KINDS);
export type DriftActionKind = z.infer<typeof DriftActionKind>;

/** Kinds whose success brings a stopped or failing service back (restart and start). */
export const RECOVERY_ACTION_KINDS = ["start", "restart"] as const satisfies readonly ActionKind[];
export type RecoveryActionKind = (typeof RECOVERY_ACTION_KINDS)[number];

export const Channel = z.enum(["cli", "api", "web", "ntfy", "telegram", "supervisor", "executor", "policy", "system"]);
export type Channel = z.infer<typeof Channel>;

/** The texts of an action a model wrote: untrusted words, labelled as such wherever an approver reads them. */
export const ModelWrittenField = z.enum(["reason", "diagnosis"]);
export type ModelWrittenField = z.infer<typeof ModelWrittenField>;

export const Action = z.strictObject({
  id: z.string(),
  node: z.string(),
  service: z.string(),
  kind: ActionKind,
  state: ActionState,
  reason: z.string(),
  drift_key: z.string().nullable(),
  proposed_by: z.string(),
  diagnosis: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  expires_at: z.string(),
  result: z.string().nullable(),
  traceparent: z.string().nullable(),
  /** What the kind needs beyond (node, service), e.g. a rollout's nodes and max_parallel. */
  params: z.record(z.string(), z.unknown()).optional(),
  /** The planner task whose diagnosis proposed it. */
  task_id: z.string().nullable().optional(),
  /** Which texts a model wrote (absent: none, e.g. the supervisor's or a runbook's proposal). */
  model_written: z.array(ModelWrittenField).optional(),
});
export type Action = z.infer<typeof Action>;

export const AuditEntry = z.strictObject({
  id: z.number().int(),
  action_id: z.string(),
  at: z.string(),
  from_state: ActionState.nullable(),
  to_state: ActionState,
  actor: z.string(),
  channel: Channel,
  detail: z.string().nullable(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

export type TransitionEvent =
  | { type: "approve" }
  | { type: "reject" }
  | { type: "expire" }
  | { type: "start_run" }
  | { type: "succeed" }
  | { type: "fail" }
  | { type: "lose_executor" };

export type TransitionResult = { ok: true; to: ActionState } | { ok: false; reason: "invalid_transition"; from: ActionState; event: TransitionEvent["type"] };

/** Pure action state machine: pending → approved|rejected|expired; approved → running|expired; running → succeeded|failed|failed_unknown. */
export function transition(from: ActionState, event: TransitionEvent): TransitionResult {
  const to = ((): ActionState | undefined => {
    switch (event.type) {
      case "approve": return from === "pending" ? "approved" : undefined;
      case "reject": return from === "pending" ? "rejected" : undefined;
      case "expire": return from === "pending" || from === "approved" ? "expired" : undefined;
      case "start_run": return from === "approved" ? "running" : undefined;
      case "succeed": return from === "running" ? "succeeded" : undefined;
      case "fail": return from === "running" ? "failed" : undefined;
      case "lose_executor": return from === "running" ? "failed_unknown" : undefined;
      default: {
        const never: never = event;
        return never;
      }
    }
  })();
  return to ? { ok: true, to } : { ok: false, reason: "invalid_transition", from, event: event.type };
}
