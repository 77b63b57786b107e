import type { ActionsRepository } from "@steward/actions/repository";
import type { DrillsRepository } from "@steward/actions/drills";
import type { DrillResult } from "@steward/contracts/drill";
import { FINISHED_ACTION_STATES, type Action, type ActionState } from "@steward/contracts/action";
import type { Read } from "./rules.js";

/** A world-store read in the rules' terms: unreadable is reported as such (with why), never as "empty". */
export function toRead<T>(r: { ok: true; value: T } | { ok: false; reason: string; detail: string }): Read<T> {
  return r.ok ? { ok: true, value: r.value } : { ok: false, reason: r.detail };
}

/** How far back the drill rule looks for a service's newest drill (its own window_min bounds what fires). */
const DRILL_LOOKBACK_MS = 365 * 86_400_000;

/** Actions the rules look at (read-only: every change goes through the executor), and each service's newest drill when given. */
export async function readActions(
  actions: Pick<ActionsRepository, "listPending" | "latestFinished"> & Partial<Pick<DrillsRepository, "latestDrillResults">>,
  windowMs: number,
): Promise<{ pending: Action[]; latestFinished: Action[]; drills?: DrillResult[] }> {
  const drills = actions.latestDrillResults ? { drills: await actions.latestDrillResults(DRILL_LOOKBACK_MS) } : {};
  return { pending: await actions.listPending(500), latestFinished: await actions.latestFinished(windowMs), ...drills };
}

const APPROVED_THEN_RAN: readonly ActionState[] = ["running", ...FINISHED_ACTION_STATES];
const DECIDED: readonly ActionState[] = ["approved", "rejected", "expired"];

/** What became of a pending action whose alert resolved: its state and who moved it, from the audit log. */
export async function actionOutcomes(actions: Pick<ActionsRepository, "decisions">, ids: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (ids.length === 0) return out;
  for (const { action: a, decidedBy } of await actions.decisions(ids)) {
    const by = decidedBy ? ` by ${decidedBy.actor} via ${decidedBy.channel}` : "";
    const was = a.state === "pending" ? "no longer pending" : APPROVED_THEN_RAN.includes(a.state) && a.state !== "failed_unknown" ? "approved" : a.state;
    out.set(a.id, `${a.kind} ${a.node}/${a.service} was ${was}${by}${!DECIDED.includes(a.state) ? ` (now ${a.state})` : ""}${decidedBy?.detail && a.state === "expired" ? `: ${decidedBy.detail}` : ""}`);
  }
  return out;
}
