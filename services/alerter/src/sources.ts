import { ACTION_COLUMNS, actionFromRow, type ActionRow } from "@steward/actions/action-row";
import { DriftReport } from "@steward/contracts/drift";
import { Snapshot } from "@steward/contracts/world-state";
import type { Action } from "@steward/contracts/action";
import type { KV } from "@steward/platform/bus";
import type { Sql } from "@steward/platform/db";
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

const COLS = ACTION_COLUMNS.join(", ");

/** Actions the rules look at (read-only: every change goes through the executor). */
export async function readActions(sql: Sql, windowMs: number): Promise<{ pending: Action[]; latestFinished: Action[] }> {
  const pending = await sql<ActionRow[]>`SELECT ${sql.unsafe(COLS)} FROM actions WHERE state = 'pending' AND expires_at > now() ORDER BY created_at LIMIT 500`;
  const latest = await sql<ActionRow[]>`
    SELECT DISTINCT ON (node, service, kind) ${sql.unsafe(COLS)} FROM actions
    WHERE state IN ('succeeded', 'failed', 'failed_unknown') AND updated_at > now() - ${windowMs} * interval '1 millisecond'
    ORDER BY node, service, kind, updated_at DESC`;
  return { pending: pending.map(actionFromRow), latestFinished: latest.map(actionFromRow) };
}

/** What became of a pending action whose alert resolved: its state and who moved it, from the audit log. */
export async function actionOutcomes(sql: Sql, ids: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (ids.length === 0) return out;
  const rows = await sql<{ id: string; state: string; node: string; service: string; kind: string; actor: string | null; channel: string | null; detail: string | null }[]>`
    SELECT a.id, a.state, a.node, a.service, a.kind, au.actor, au.channel, au.detail
    FROM actions a
    LEFT JOIN LATERAL (
      SELECT actor, channel, detail FROM action_audit WHERE action_id = a.id AND from_state = 'pending' AND to_state <> 'pending' ORDER BY id DESC LIMIT 1
    ) au ON true
    WHERE a.id IN ${sql(ids as string[])}`;
  for (const r of rows) {
    const by = r.actor ? ` by ${r.actor} via ${r.channel}` : "";
    out.set(r.id, `${r.kind} ${r.node}/${r.service} was ${r.state === "pending" ? "no longer pending" : `${r.state === "running" || r.state === "succeeded" || r.state === "failed" ? "approved" : r.state}`}${by}${r.state !== "approved" && r.state !== "rejected" && r.state !== "expired" ? ` (now ${r.state})` : ""}${r.detail && r.state === "expired" ? `: ${r.detail}` : ""}`);
  }
  return out;
}
