import { z } from "zod";
import type { ActionsRepository } from "@steward/actions/repository";
import { SERVICE_ACTION_KINDS } from "@steward/contracts/action";

/** The kinds a planner may propose: node/service operations from the action catalog. Never free-form commands. */
export const PLANNER_ACTION_KINDS = SERVICE_ACTION_KINDS;
export type PlannerActionKind = (typeof PLANNER_ACTION_KINDS)[number];

export type RawProposal = { kind?: unknown; node?: unknown; service?: unknown; reason?: unknown } | unknown;

/** The structured answer every model must give. Proposals are checked one by one (ValidProposal) so one bad item drops alone. */
export const ModelAnswer = z.object({
  diagnosis: z.string().trim().min(1).max(8000),
  answer: z.string().trim().min(1).max(8000),
  proposals: z.array(z.unknown()).max(10).default([]),
});
export type ModelAnswer = z.infer<typeof ModelAnswer>;

export const ValidProposal = z.strictObject({
  kind: z.enum(PLANNER_ACTION_KINDS),
  node: z.string().min(1).max(63),
  service: z.string().min(1).max(63),
  reason: z.string().trim().min(1).max(2000),
});
export type ValidProposal = z.infer<typeof ValidProposal>;

/** The JSON schema handed to the models (Ollama `format`, Claude's forced tool). */
export const ANSWER_JSON_SCHEMA: Record<string, unknown> = {
  type: "object",
  properties: {
    diagnosis: { type: "string", description: "What is wrong and why, from the evidence." },
    answer: { type: "string", description: "The answer for the operator, short." },
    proposals: {
      type: "array",
      maxItems: 10,
      items: {
        type: "object",
        properties: {
          kind: { type: "string", enum: [...PLANNER_ACTION_KINDS] },
          node: { type: "string" },
          service: { type: "string" },
          reason: { type: "string" },
        },
        required: ["kind", "node", "service", "reason"],
        additionalProperties: false,
      },
    },
  },
  required: ["diagnosis", "answer", "proposals"],
  additionalProperties: false,
};

export type ParsedAnswer = { ok: true; value: ModelAnswer } | { ok: false; reason: string };

/** Model output is data: parse it (a JSON object, possibly fenced) and validate it. Never throws. */
export function parseModelAnswer(text: string, json?: unknown): ParsedAnswer {
  let raw = json;
  if (raw === undefined) {
    const t = text.trim().replace(/^```(?:json)?\s*/i, "").replace(/```\s*$/, "");
    try {
      raw = JSON.parse(t);
    } catch {
      return { ok: false, reason: "the model's answer is not JSON" };
    }
  }
  const r = ModelAnswer.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    return { ok: false, reason: `the model's answer does not match the schema: ${i?.path.join(".") || "(root)"}: ${i?.message ?? "invalid"}` };
  }
  return { ok: true, value: r.data };
}

export interface InsertOptions {
  taskId: string;
  diagnosis: string;
  traceparent: string | null;
  now: Date;
  ttlMs: number;
  actor: string;
  /** The model wrote the reason and the diagnosis (false for the runbooks): approval screens say so. */
  modelWritten: boolean;
}

export type InsertResult = { inserted: true; actionId: string } | { inserted: false; actionId: string | null; state: string | null };

/**
 * Proposes an accepted proposal as a `pending` action, the way the supervisor does (the repository's open-action
 * index is the arbiter), with an audit row that says who (planner, channel system). When the same action is already
 * open, nothing of it changes: a model's words only ever go on an action its own answer created.
 */
export async function insertProposedAction(actions: ActionsRepository, p: ValidProposal, o: InsertOptions): Promise<InsertResult> {
  const r = await actions.propose({
    node: p.node,
    service: p.service,
    kind: p.kind,
    reason: p.reason,
    driftKey: null,
    proposedBy: o.actor,
    channel: "system",
    auditDetail: `proposed by planner task ${o.taskId}: ${p.reason}`,
    now: o.now,
    ttlMs: o.ttlMs,
    traceparent: o.traceparent,
    diagnosis: o.diagnosis,
    taskId: o.taskId,
    modelWritten: o.modelWritten ? ["reason", "diagnosis"] : [],
  });
  return r.proposed ? { inserted: true, actionId: r.action.id } : { inserted: false, actionId: r.open?.id ?? null, state: r.open?.state ?? null };
}
