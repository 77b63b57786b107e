import { FINISHED_ACTION_STATES, OPEN_ACTION_STATES, type Action, type ActionKind, type ActionState, type AuditEntry, type Channel } from "@steward/contracts/action";
import type { Sql } from "@steward/platform/db";
import { ACTIONS_CHANNEL, ACTION_COLUMNS, actionFromRow, auditFromRow, isUuid, type ActionRow, type AuditRow } from "./rows.js";

export interface ListFilter {
  state?: ActionState | undefined;
  limit?: number | undefined;
}

/** The first decision on a pending action (approve, reject, expire), from the audit log. */
export interface Decision {
  action: Action;
  decidedBy: { actor: string; channel: Channel; detail: string | null } | null;
}

/** What the actions table and its audit log say, and when they change: reads only. */
export interface ActionQueries {
  /** Newest first. */
  list(filter?: ListFilter): Promise<Action[]>;
  /** Every open action (pending, approved, running). */
  listOpen(): Promise<Action[]>;
  /** The newest actions on one service of one node (any state), newest first. */
  listForService(node: string, service: string, limit: number): Promise<Action[]>;
  /** Pending actions not yet past their expiry, oldest first. */
  listPending(limit?: number): Promise<Action[]>;
  /** Actions that finished (succeeded, failed, failed_unknown) at or after `since`, newest first, optionally of some kinds and states. */
  listFinished(filter: { since: Date; kinds?: readonly ActionKind[]; states?: readonly ActionState[] }): Promise<Action[]>;
  /** The newest finished action of each (node, service, kind) within the last `windowMs`. */
  latestFinished(windowMs: number): Promise<Action[]>;
  get(id: string): Promise<{ action: Action; audit: AuditEntry[] } | undefined>;
  /** The one action whose id starts with `prefix` (at least 4 hex digits); undefined when none or several match. */
  getByPrefix(prefix: string): Promise<Action | undefined>;
  audit(id: string): Promise<AuditEntry[]>;
  /** What became of these actions: each one with the audit row that moved it out of pending, if any. */
  decisions(ids: readonly string[]): Promise<Decision[]>;
  countByState(): Promise<Record<string, number>>;
  /**
   * An incident's actions, with their audit (oldest first): those on the service created within [since, until], and
   * those named by id wherever they are. Bounded by `limit` (default 200) actions.
   */
  serviceHistory(filter: { node: string; service: string; since: Date; until: Date; ids?: readonly string[]; limit?: number }): Promise<{ action: Action; audit: AuditEntry[] }[]>;
  /** Calls `onId` with the id of every action that was created or changed (delivered on commit). */
  listen(onId: (id: string) => void): Promise<{ unlisten(): Promise<void> }>;
}

const HEX_PREFIX = /^[0-9a-f-]{4,36}$/i;

export function createActionQueries(sql: Sql): ActionQueries {
  const cols = sql(ACTION_COLUMNS as unknown as string[]);

  async function auditOf(id: string): Promise<AuditEntry[]> {
    if (!isUuid(id)) return [];
    const rows = await sql<AuditRow[]>`SELECT id, action_id, at, from_state, to_state, actor, channel, detail FROM action_audit WHERE action_id = ${id} ORDER BY id`;
    return rows.map(auditFromRow);
  }

  return {
    async list(filter = {}) {
      const limit = filter.limit ?? 50;
      const rows = filter.state
        ? await sql<ActionRow[]>`SELECT ${cols} FROM actions WHERE state = ${filter.state} ORDER BY created_at DESC, id LIMIT ${limit}`
        : await sql<ActionRow[]>`SELECT ${cols} FROM actions ORDER BY created_at DESC, id LIMIT ${limit}`;
      return rows.map(actionFromRow);
    },

    async listOpen() {
      const rows = await sql<ActionRow[]>`SELECT ${cols} FROM actions WHERE state IN ${sql(OPEN_ACTION_STATES)} ORDER BY created_at, id`;
      return rows.map(actionFromRow);
    },

    async listForService(node, service, limit) {
      const rows = await sql<ActionRow[]>`SELECT ${cols} FROM actions WHERE node = ${node} AND service = ${service} ORDER BY created_at DESC, id LIMIT ${limit}`;
      return rows.map(actionFromRow);
    },

    async listPending(limit = 500) {
      const rows = await sql<ActionRow[]>`SELECT ${cols} FROM actions WHERE state = 'pending' AND expires_at > now() ORDER BY created_at LIMIT ${limit}`;
      return rows.map(actionFromRow);
    },

    async listFinished(filter) {
      const states = filter.states ?? FINISHED_ACTION_STATES;
      const rows = filter.kinds
        ? await sql<ActionRow[]>`SELECT ${cols} FROM actions WHERE state IN ${sql(states as ActionState[])} AND kind IN ${sql(filter.kinds as ActionKind[])} AND updated_at >= ${filter.since} ORDER BY updated_at DESC`
        : await sql<ActionRow[]>`SELECT ${cols} FROM actions WHERE state IN ${sql(states as ActionState[])} AND updated_at >= ${filter.since} ORDER BY updated_at DESC`;
      return rows.map(actionFromRow);
    },

    async latestFinished(windowMs) {
      const rows = await sql<ActionRow[]>`
        SELECT DISTINCT ON (node, service, kind) ${cols} FROM actions
        WHERE state IN ${sql(FINISHED_ACTION_STATES)} AND updated_at > now() - ${windowMs} * interval '1 millisecond'
        ORDER BY node, service, kind, updated_at DESC`;
      return rows.map(actionFromRow);
    },

    async get(id) {
      if (!isUuid(id)) return undefined;
      const [row] = await sql<ActionRow[]>`SELECT ${cols} FROM actions WHERE id = ${id}`;
      if (!row) return undefined;
      return { action: actionFromRow(row), audit: await auditOf(id) };
    },

    async getByPrefix(prefix) {
      if (!HEX_PREFIX.test(prefix)) return undefined;
      const rows = await sql<ActionRow[]>`SELECT ${cols} FROM actions WHERE id::text LIKE ${`${prefix.toLowerCase()}%`} LIMIT 2`;
      return rows.length === 1 && rows[0] ? actionFromRow(rows[0]) : undefined;
    },

    audit: auditOf,

    async decisions(ids) {
      const valid = ids.filter(isUuid);
      if (valid.length === 0) return [];
      const rows = await sql<(ActionRow & { au_actor: string | null; au_channel: Channel | null; au_detail: string | null })[]>`
        SELECT ${sql(ACTION_COLUMNS.map((c) => `a.${c}`) as string[])}, au.actor AS au_actor, au.channel AS au_channel, au.detail AS au_detail
        FROM actions a
        LEFT JOIN LATERAL (
          SELECT actor, channel, detail FROM action_audit WHERE action_id = a.id AND from_state = 'pending' AND to_state <> 'pending' ORDER BY id DESC LIMIT 1
        ) au ON true
        WHERE a.id IN ${sql(valid)}`;
      return rows.map((r) => ({ action: actionFromRow(r), decidedBy: r.au_actor ? { actor: r.au_actor, channel: r.au_channel as Channel, detail: r.au_detail } : null }));
    },

    async serviceHistory(f) {
      const ids = (f.ids ?? []).filter(isUuid);
      const rows = await sql<ActionRow[]>`
        SELECT ${cols} FROM actions
        WHERE (node = ${f.node} AND service = ${f.service} AND created_at BETWEEN ${f.since} AND ${f.until})
           ${ids.length > 0 ? sql`OR id IN ${sql(ids)}` : sql``}
        ORDER BY created_at, id LIMIT ${f.limit ?? 200}`;
      if (rows.length === 0) return [];
      const audit = await sql<AuditRow[]>`
        SELECT id, action_id, at, from_state, to_state, actor, channel, detail FROM action_audit
        WHERE action_id IN ${sql(rows.map((r) => r.id))} ORDER BY id`;
      const byAction = new Map<string, AuditEntry[]>();
      for (const a of audit.map(auditFromRow)) byAction.set(a.action_id, [...(byAction.get(a.action_id) ?? []), a]);
      return rows.map((r) => {
        const action = actionFromRow(r);
        return { action, audit: byAction.get(action.id) ?? [] };
      });
    },

    async countByState() {
      const rows = await sql<{ state: string; n: string }[]>`SELECT state, count(*)::text AS n FROM actions GROUP BY state`;
      return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
    },

    async listen(onId) {
      const l = await sql.listen(ACTIONS_CHANNEL, (payload) => onId(payload));
      return { unlisten: () => l.unlisten() };
    },
  };
}
