import type { ActionState, Channel } from "@steward/contracts/action";
import type { postgres } from "@steward/platform/db";
import { ACTIONS_CHANNEL } from "./rows.js";

export type Tx = postgres.TransactionSql;

/** Who moved an action, and through which channel: every audit row names both. */
export interface Audit {
  actor: string;
  channel: Channel;
  detail?: string | null | undefined;
}

/** Writes one `action_audit` row and announces the action id, both inside the caller's transaction. */
export async function recordAudit(tx: Tx, id: string, from: ActionState | null, to: ActionState, audit: Audit): Promise<void> {
  await tx`INSERT INTO action_audit (action_id, from_state, to_state, actor, channel, detail)
           VALUES (${id}, ${from}, ${to}, ${audit.actor}, ${audit.channel}, ${audit.detail ?? null})`;
  // Delivered only when the transaction commits, so listeners never see a change that rolled back.
  await tx`SELECT pg_notify(${ACTIONS_CHANNEL}, ${id})`;
}
