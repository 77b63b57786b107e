import type { postgres, Sql } from "@steward/platform/db";
import type { NotificationPayload } from "./notification.js";
import type { Finding, OpenAlert, Plan } from "./rules.js";

type Tx = postgres.TransactionSql;

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

export type AlertStore = ReturnType<typeof createAlertStore>;

/**
 * Alerts and their outbox in Postgres. Every change is conditional on the state read (an insert that meets a firing
 * row with the same fingerprint does nothing; a re-notify only wins if `last_notified` is still what it read), and
 * its notifications are queued in the same transaction, so nothing is notified twice or lost between the two.
 */
export function createAlertStore(sql: Sql) {
  async function enqueue(tx: Tx, alertId: number, sinks: readonly string[], payload: NotificationPayload): Promise<number> {
    for (const sink of sinks) {
      await tx`INSERT INTO alert_notifications (alert_id, sink, kind, payload) VALUES (${alertId}, ${sink}, ${payload.kind}, ${tx.json(payload as unknown as postgres.JSONValue)})`;
    }
    await tx`UPDATE alerts SET notifications = notifications + ${sinks.length} WHERE id = ${alertId}`;
    return sinks.length;
  }

  const payloadOf = (a: { id: number; fingerprint: string; rule: string; severity: NotificationPayload["severity"]; title: string; message: string; labels: Record<string, string>; firstSeen: number }, kind: NotificationPayload["kind"], now: Date, extra: Partial<NotificationPayload> = {}): NotificationPayload => ({
    kind,
    alert_id: a.id,
    fingerprint: a.fingerprint,
    rule: a.rule,
    severity: a.severity,
    title: a.title,
    message: a.message,
    labels: a.labels,
    first_seen: new Date(a.firstSeen).toISOString(),
    at: now.toISOString(),
    ...extra,
  });

  return {
    async listFiring(): Promise<FiringAlert[]> {
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

    /** Applies a plan; returns how many notifications were queued. `notes` explain resolutions (by fingerprint). */
    async apply(plan: Plan, firing: readonly FiringAlert[], sinks: readonly string[], now: Date, notes: ReadonlyMap<string, string> = new Map()): Promise<number> {
      let queued = 0;
      const byId = new Map(firing.map((a) => [a.id, a]));
      for (const f of plan.fire) queued += await this.fire(f, sinks, now);
      for (const k of plan.keep) {
        await sql.begin(async (tx) => {
          await tx`UPDATE alerts SET last_seen = ${now}, title = ${k.finding.title}, message = ${k.finding.message} WHERE id = ${k.alert.id} AND state = 'firing'`;
          if (!k.renotify) return;
          const won = await tx`UPDATE alerts SET last_notified = ${now}
                               WHERE id = ${k.alert.id} AND state = 'firing' AND last_notified IS NOT DISTINCT FROM ${k.alert.lastNotified === null ? null : new Date(k.alert.lastNotified)}
                               RETURNING id`;
          if (won.length === 0) return;
          const f = k.finding;
          queued += await enqueue(tx, k.alert.id, sinks, payloadOf({ ...f, id: k.alert.id, firstSeen: k.alert.firstSeen }, "renotify", now, f.action ? { action: f.action } : {}));
        });
      }
      for (const a of plan.resolve) {
        const full = byId.get(a.id);
        if (!full) continue;
        await sql.begin(async (tx) => {
          const won = await tx`UPDATE alerts SET state = 'resolved', resolved_at = ${now}, last_notified = ${now} WHERE id = ${a.id} AND state = 'firing' RETURNING id`;
          if (won.length === 0) return;
          const note = notes.get(a.fingerprint);
          queued += await enqueue(tx, a.id, sinks, payloadOf(full, "resolved", now, note ? { note } : {}));
        });
      }
      return queued;
    },

    async fire(f: Finding, sinks: readonly string[], now: Date): Promise<number> {
      return sql.begin(async (tx) => {
        const [row] = await tx<{ id: string }[]>`
          INSERT INTO alerts (fingerprint, rule, severity, state, title, message, labels, first_seen, last_seen, last_notified)
          VALUES (${f.fingerprint}, ${f.rule}, ${f.severity}, 'firing', ${f.title}, ${f.message}, ${tx.json(f.labels)}, ${now}, ${now}, ${now})
          ON CONFLICT (fingerprint) WHERE state = 'firing' DO NOTHING
          RETURNING id`;
        if (!row) return 0;
        const id = Number(row.id);
        return enqueue(tx, id, sinks, payloadOf({ ...f, id, firstSeen: now.getTime() }, "firing", now, f.action ? { action: f.action } : {}));
      });
    },

    async counts(): Promise<{ firing: Record<string, number>; unsent: Record<string, number> }> {
      const f = await sql<{ rule: string; n: number }[]>`SELECT rule, count(*)::int AS n FROM alerts WHERE state = 'firing' GROUP BY rule`;
      const u = await sql<{ sink: string; n: number }[]>`SELECT sink, count(*)::int AS n FROM alert_notifications WHERE state <> 'sent' GROUP BY sink`;
      return { firing: Object.fromEntries(f.map((r) => [r.rule, r.n])), unsent: Object.fromEntries(u.map((r) => [r.sink, r.n])) };
    },
  };
}
