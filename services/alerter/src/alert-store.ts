import type { postgres, Sql } from "@steward/platform/db";
import type { AlertView } from "@steward/contracts/alerts";
import type { NotificationPayload } from "./notification.js";
import type { OpenAlert, Plan } from "./rules.js";
import type { EpisodeHistory } from "./flapping.js";
import { notifiedOf, type GroupMember, type GroupNotice, type NotifiedMember, type OpenGroup } from "./grouping.js";

interface AlertRow {
  id: string | number;
  fingerprint: string;
  rule: string;
  severity: NotificationPayload["severity"];
  title: string;
  message: string;
  labels: Record<string, string>;
  first_seen: Date;
  last_notified: Date | null;
}

export interface FiringAlert extends OpenAlert {
  severity: NotificationPayload["severity"];
  title: string;
  message: string;
  labels: Record<string, string>;
}

/** An alert as the console lists it (firing, or resolved recently): the contract the alerter answers with. */
export type { AlertView };

export interface AlertStore {
  listFiring(): Promise<FiringAlert[]>;
  /** Inserts, refreshes and resolves alert rows (one statement each); `groupKey` records each new alert's group. */
  apply(plan: Plan, now: Date, groupKey: (f: Plan["fire"][number]) => string): Promise<void>;
  /** Recent episodes of fingerprints that began `minStarts` episodes within the window (or are in `alsoFor`). */
  history(now: Date, windowMs: number, minStarts: number, alsoFor: readonly string[]): Promise<EpisodeHistory[]>;
  openGroups(): Promise<OpenGroup[]>;
  /** Opens groups that are not open yet (a concurrent alerter opening the same one is harmless). */
  startGroups(keys: readonly string[], now: Date): Promise<void>;
  closeGroupsSilently(groups: readonly OpenGroup[], now: Date): Promise<void>;
  /**
   * Records a group notice and queues its notification for every sink, in one transaction and only if the group is
   * still as read (so two alerters never both send it). Returns how many rows were queued.
   */
  notify(n: GroupNotice, payload: NotificationPayload, sinks: readonly string[], now: Date): Promise<number>;
  /** Firing alerts and those resolved within `resolvedWithinMs`, newest first. */
  recent(o: { limit: number; resolvedWithinMs: number }): Promise<AlertView[]>;
  counts(): Promise<{ firing: Record<string, number>; unsent: Record<string, number> }>;
}

/**
 * Alerts, their groups and the notification outbox in Postgres. Alert rows change with one statement per kind of
 * change, conditional on the state read (an insert that meets a firing row with the same fingerprint does nothing);
 * a group notice is recorded and queued in one transaction, so nothing is notified twice or lost between the two.
 */
export function createAlertStore(sql: Sql): AlertStore {
  return {
    async listFiring() {
      const rows = await sql<AlertRow[]>`SELECT id, fingerprint, rule, severity, title, message, labels, first_seen, last_notified FROM alerts WHERE state = 'firing' ORDER BY id`;
      return rows.map((r) => ({
        id: Number(r.id),
        fingerprint: r.fingerprint,
        rule: r.rule,
        severity: r.severity,
        title: r.title,
        message: r.message,
        labels: r.labels,
        firstSeen: r.first_seen.getTime(),
        lastNotified: r.last_notified ? r.last_notified.getTime() : null,
      }));
    },

    async apply(plan, now, groupKey) {
      if (plan.fire.length > 0) {
        const rows = plan.fire.map((f) => ({ fingerprint: f.fingerprint, rule: f.rule, severity: f.severity, title: f.title, message: f.message, labels: f.labels, group_key: groupKey(f) }));
        await sql`
          INSERT INTO alerts (fingerprint, rule, severity, state, title, message, labels, group_key, first_seen, last_seen)
          SELECT r.fingerprint, r.rule, r.severity, 'firing', r.title, r.message, r.labels, r.group_key, ${now}, ${now}
          FROM jsonb_to_recordset(${sql.json(rows as unknown as postgres.JSONValue)}) AS r(fingerprint text, rule text, severity text, title text, message text, labels jsonb, group_key text)
          ON CONFLICT (fingerprint) WHERE state = 'firing' DO NOTHING`;
      }
      if (plan.keep.length > 0) {
        const rows = plan.keep.map((k) => ({ id: k.alert.id, title: k.finding.title, message: k.finding.message }));
        await sql`
          UPDATE alerts a SET last_seen = ${now}, title = r.title, message = r.message
          FROM jsonb_to_recordset(${sql.json(rows)}) AS r(id bigint, title text, message text)
          WHERE a.id = r.id AND a.state = 'firing'`;
      }
      if (plan.resolve.length > 0) {
        await sql`UPDATE alerts SET state = 'resolved', resolved_at = ${now} WHERE id = ANY(${plan.resolve.map((a) => a.id)}::bigint[]) AND state = 'firing'`;
      }
    },

    async history(now, windowMs, minStarts, alsoFor) {
      const since = new Date(now.getTime() - windowMs);
      const rows = await sql<{ fingerprint: string; starts: number; last_change: Date; latest: EpisodeHistory["latest"] }[]>`
        SELECT fingerprint,
               count(*) FILTER (WHERE first_seen >= ${since})::int AS starts,
               max(greatest(first_seen, coalesce(resolved_at, first_seen))) AS last_change,
               (array_agg(jsonb_build_object('rule', rule, 'severity', severity, 'title', title, 'labels', labels) ORDER BY id DESC))[1] AS latest
        FROM alerts
        WHERE (first_seen >= ${since} OR resolved_at >= ${since}) AND rule <> 'flapping'
        GROUP BY fingerprint
        HAVING count(*) FILTER (WHERE first_seen >= ${since}) >= ${minStarts} OR fingerprint = ANY(${[...alsoFor]}::text[])`;
      return rows.map((r) => ({ fingerprint: r.fingerprint, starts: r.starts, lastChange: r.last_change.getTime(), latest: r.latest }));
    },

    async openGroups() {
      const rows = await sql<{ id: string; group_key: string; first_seen: Date; notified: NotifiedMember[]; last_notified: Date | null }[]>`
        SELECT id, group_key, first_seen, notified, last_notified FROM alert_groups WHERE state = 'firing' ORDER BY id`;
      return rows.map((r) => ({ id: Number(r.id), key: r.group_key, firstSeen: r.first_seen.getTime(), notified: r.notified, lastNotified: r.last_notified ? r.last_notified.getTime() : null }));
    },

    async startGroups(keys, now) {
      if (keys.length === 0) return;
      await sql`INSERT INTO alert_groups (group_key, state, first_seen) SELECT k, 'firing', ${now} FROM unnest(${[...keys]}::text[]) AS k
                ON CONFLICT (group_key) WHERE state = 'firing' DO NOTHING`;
    },

    async closeGroupsSilently(groups, now) {
      if (groups.length === 0) return;
      await sql`UPDATE alert_groups SET state = 'resolved', resolved_at = ${now} WHERE id = ANY(${groups.map((g) => g.id)}::bigint[]) AND state = 'firing' AND last_notified IS NULL`;
    },

    async notify(n, payload, sinks, now) {
      const listed = n.kind === "resolved" ? [] : (n.members as GroupMember[]).map(notifiedOf);
      return sql.begin(async (tx) => {
        const read = n.group.lastNotified === null ? null : new Date(n.group.lastNotified);
        const won = await tx`
          UPDATE alert_groups SET last_notified = ${now}, notified = ${tx.json(listed as unknown as postgres.JSONValue)}, notifications = notifications + ${sinks.length},
                 state = ${n.kind === "resolved" ? "resolved" : "firing"}, resolved_at = ${n.kind === "resolved" ? now : null}
          WHERE id = ${n.group.id} AND state = 'firing' AND last_notified IS NOT DISTINCT FROM ${read}
          RETURNING id`;
        if (won.length === 0) return 0;
        for (const sink of sinks) {
          await tx`INSERT INTO alert_notifications (group_id, sink, kind, payload) VALUES (${n.group.id}, ${sink}, ${payload.kind}, ${tx.json(payload as unknown as postgres.JSONValue)})`;
        }
        return sinks.length;
      });
    },

    async recent({ limit, resolvedWithinMs }) {
      const rows = await sql<(Omit<AlertView, "first_seen" | "last_seen" | "resolved_at" | "id"> & { id: string; first_seen: Date; last_seen: Date; resolved_at: Date | null })[]>`
        SELECT id, fingerprint, rule, severity, state, title, message, labels, group_key, first_seen, last_seen, resolved_at FROM alerts
        WHERE state = 'firing' OR resolved_at >= now() - ${resolvedWithinMs} * interval '1 millisecond'
        ORDER BY (state = 'firing') DESC, greatest(first_seen, coalesce(resolved_at, first_seen)) DESC, id DESC LIMIT ${limit}`;
      return rows.map((r) => ({ ...r, id: Number(r.id), first_seen: r.first_seen.toISOString(), last_seen: r.last_seen.toISOString(), resolved_at: r.resolved_at ? r.resolved_at.toISOString() : null }));
    },

    async counts() {
      const f = await sql<{ rule: string; n: number }[]>`SELECT rule, count(*)::int AS n FROM alerts WHERE state = 'firing' GROUP BY rule`;
      const u = await sql<{ sink: string; n: number }[]>`SELECT sink, count(*)::int AS n FROM alert_notifications WHERE state <> 'sent' GROUP BY sink`;
      return { firing: Object.fromEntries(f.map((r) => [r.rule, r.n])), unsent: Object.fromEntries(u.map((r) => [r.sink, r.n])) };
    },
  };
}
