import type { ActionsRepository } from "@steward/actions/repository";
import { DriftReport } from "@steward/contracts/drift";
import { Snapshot } from "@steward/contracts/world-state";
import { FINISHED_ACTION_STATES, type Action, type ActionState } from "@steward/contracts/action";
import type { KV } from "@steward/platform/bus";
import type { z } from "zod";
import type { Read } from "./rules.js";

/** Parses one world-bucket document. Unreadable is reported as such, never as "empty". */
export function parseDoc<S extends z.ZodType>(bytes: Uint8Array | undefined, schema: S, what: string): Read<z.output<S>> {
  if (!bytes || bytes.length === 0) return { ok: false, reason: `no ${what} yet` };
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return { ok: false, reason: `${what} is not valid JSON` };
  }
  const p = schema.safeParse(raw);
  return p.success ? { ok: true, value: p.data } : { ok: false, reason: `${what} does not match its schema: ${p.error.issues[0]?.message ?? "invalid"}` };
}

export const parseSnapshot = (b: Uint8Array | undefined) => parseDoc(b, Snapshot, "world snapshot");
export const parseDriftReport = (b: Uint8Array | undefined) => parseDoc(b, DriftReport, "drift report");

export async function readKv<T>(kv: KV, key: string, parse: (b: Uint8Array | undefined) => Read<T>): Promise<Read<T>> {
  const e = await kv.get(key);
  return parse(e && e.operation === "PUT" ? e.value : undefined);
}

/** Actions the rules look at (read-only: every change goes through the executor). */
export async function readActions(actions: Pick<ActionsRepository, "listPending" | "latestFinished">, windowMs: number): Promise<{ pending: Action[]; latestFinished: Action[] }> {
  return { pending: await actions.listPending(500), latestFinished: await actions.latestFinished(windowMs) };
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
