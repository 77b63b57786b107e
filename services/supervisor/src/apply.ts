import type { ActionsRepository } from "@steward/actions/repository";
import type { Action } from "@steward/contracts/action";
import { contextFromTraceparent, traceparentOf, withSpan } from "@steward/platform/tracing";
import type { Proposal, Reconciled } from "./reconcile.js";

export interface ApplyOptions {
  supervisorId: string;
  now: Date;
  ttlMs: number;
}

export interface Applied {
  proposed: Action[];
  /** Ids of rollouts that took in more nodes. */
  extended: string[];
  expired: string[];
}

/** Writes one cycle's proposals and rollout extensions. A proposal the repository finds already open is skipped. */
export async function applyProposals(actions: ActionsRepository, r: Pick<Reconciled, "propose" | "extend">, opts: ApplyOptions): Promise<Omit<Applied, "expired">> {
  const extended: string[] = [];
  for (const x of r.extend) {
    const audit = { actor: opts.supervisorId, channel: "supervisor" as const, detail: `rollout extended to ${x.nodes.join(", ")}: ${x.drift.message}` };
    // false: decided meanwhile, and the next cycle proposes afresh.
    if (await actions.extendRollout(x.id, { nodes: x.nodes, params: x.params, now: opts.now }, audit)) extended.push(x.id);
  }
  const proposed: Action[] = [];
  for (const d of r.propose) {
    const action = await withSpan(
      "supervisor.propose",
      { parent: contextFromTraceparent(d.traceparent), attributes: { "steward.node": d.node, "steward.service": d.service, "steward.drift": d.key, "steward.action_kind": d.proposes } },
      async (span) => {
        const res = await actions.propose(newAction(d, opts, traceparentOf() ?? null));
        span.setAttribute("steward.proposed", res.proposed);
        if (res.proposed) span.setAttribute("steward.action_id", res.action.id);
        return res.proposed ? res.action : undefined;
      },
    );
    if (action) proposed.push(action);
  }
  return { proposed, extended };
}

/** Expires the pending actions whose drift cleared; one approved or rejected meanwhile is not the supervisor's to touch. */
export async function applyExpiries(actions: ActionsRepository, r: Pick<Reconciled, "expire">, opts: Pick<ApplyOptions, "supervisorId" | "now">): Promise<string[]> {
  const expired: string[] = [];
  for (const e of r.expire) {
    const moved = await actions.expire(e.id, { actor: opts.supervisorId, channel: "supervisor", detail: e.detail }, { from: ["pending"], now: opts.now, result: e.detail });
    if (moved.ok) expired.push(e.id);
  }
  return expired;
}

function newAction(d: Proposal, opts: ApplyOptions, traceparent: string | null) {
  return {
    node: d.node,
    service: d.service,
    kind: d.proposes,
    reason: d.message,
    driftKey: d.key,
    proposedBy: opts.supervisorId,
    channel: "supervisor" as const,
    auditDetail: d.message,
    now: opts.now,
    ttlMs: opts.ttlMs,
    traceparent,
    params: d.params ?? {},
  };
}

/** Ends the holds whose drift changed or cleared or whose time ran out; one an operator released meanwhile is skipped. */
export async function applyHoldEnds(actions: ActionsRepository, r: Pick<Reconciled, "endHolds">, opts: Pick<ApplyOptions, "supervisorId" | "now">): Promise<string[]> {
  const ended: string[] = [];
  for (const e of r.endHolds) {
    const res = await actions.endHold(e.actionId, { actor: opts.supervisorId, channel: "supervisor", detail: e.detail }, { now: opts.now });
    if (res.ok) ended.push(e.actionId);
  }
  return ended;
}
