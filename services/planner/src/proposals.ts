import { z } from "zod";
import type { ActionsRepository } from "@steward/actions/repository";
import { SERVICE_ACTION_KINDS } from "@steward/contracts/action";
import type { FleetSpec } from "@steward/fleet/fleet-spec";

/** The kinds a planner may propose: node/service operations from the action catalog. Never free-form commands. */
export const PLANNER_ACTION_KINDS = SERVICE_ACTION_KINDS;

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

export type Checked = { ok: true; proposal: ValidProposal } | { ok: false; kind: string; node: string | null; service: string | null; reason: string };

const str = (v: unknown): string | null => (typeof v === "string" ? v.slice(0, 63) : null);

/** Checks one proposal against the catalog and the fleet spec: a known kind, on a declared node and service. */
export function checkProposal(raw: unknown, spec: FleetSpec): Checked {
  const o = (raw && typeof raw === "object" ? raw : {}) as Record<string, unknown>;
  const kind = typeof o["kind"] === "string" ? o["kind"].slice(0, 40) : "(none)";
  const node = str(o["node"]);
  const service = str(o["service"]);
  if (!(PLANNER_ACTION_KINDS as readonly string[]).includes(kind)) {
    return { ok: false, kind, node, service, reason: `kind '${kind}' is not in the action catalog (${PLANNER_ACTION_KINDS.join(", ")})` };
  }
  const r = ValidProposal.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    return { ok: false, kind, node, service, reason: `invalid proposal: ${i?.path.join(".") || "(root)"}: ${i?.message ?? "invalid"}` };
  }
  const p = r.data;
  if (!spec.nodes[p.node]) return { ok: false, kind, node, service, reason: `node '${p.node}' is not declared in the fleet spec` };
  if (!spec.nodes[p.node]?.services[p.service]) return { ok: false, kind, node, service, reason: `service '${p.service}' is not declared on node '${p.node}'` };
  return { ok: true, proposal: p };
}

export interface InsertOptions {
  taskId: string;
  diagnosis: string;
  traceparent: string | null;
  now: Date;
  ttlMs: number;
  actor: string;
}

export type InsertResult = { inserted: true; actionId: string } | { inserted: false; actionId: string | null; state: string | null };

/**
 * Proposes an accepted proposal as a `pending` action, the way the supervisor does (the repository's open-action
 * index is the arbiter), with an audit row that says who (planner, channel system). When the same action is already
 * open and pending without a diagnosis, the diagnosis is attached to it so the approver sees why.
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
  });
  return r.proposed ? { inserted: true, actionId: r.action.id } : { inserted: false, actionId: r.open?.id ?? null, state: r.open?.state ?? null };
}
