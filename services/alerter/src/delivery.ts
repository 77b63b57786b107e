import type { Logger } from "@steward/platform/logger";
import { createIdleWait } from "@steward/platform/sleep";
import type { Sql } from "@steward/platform/db";
import type { AlerterMetrics } from "./metrics.js";
import { backoffMs, NotificationPayload, type Sink } from "./notification.js";

export interface DeliveryDeps {
  sql: Sql;
  sinks: ReadonlyMap<string, Sink>;
  logger: Logger;
  metrics: AlerterMetrics;
  retry: { baseMs: number; maxMs: number; quickAttempts: number };
  /** How long a claimed row is reserved while it is being sent (a crash mid-send retries it after this). */
  leaseMs?: number;
  idleMs?: number;
}

interface Row {
  id: string | number;
  alert_id: string | number | null;
  group_id: string | number | null;
  sink: string;
  kind: string;
  payload: unknown;
  attempts: number;
}

export interface Delivery {
  start(): void;
  stop(): Promise<void>;
  /** Something was queued: send now instead of at the next idle tick. */
  wake(): void;
}

/**
 * Sends the outbox. Rows are claimed by pushing their `next_attempt_at` out by a lease (SKIP LOCKED, so several
 * alerters never send one row twice), sent outside any transaction, then marked sent or rescheduled with backoff.
 * Per (group, sink) rows go out in order: a resolved notice never overtakes its own firing notice.
 * After `quickAttempts` failures (or at once for an answer that retrying cannot fix) a row is `failing`: logged,
 * counted, and still retried every `maxMs`. Nothing is dropped.
 */
export function createDelivery(deps: DeliveryDeps): Delivery {
  const { sql, sinks, logger, metrics, retry } = deps;
  const leaseMs = deps.leaseMs ?? 60_000;
  const idleMs = deps.idleMs ?? 500;
  let running = false;
  let loop: Promise<void> | undefined;
  const waiter = createIdleWait(() => !running);

  async function claim(): Promise<Row[]> {
    return sql<Row[]>`
      UPDATE alert_notifications SET next_attempt_at = now() + ${leaseMs} * interval '1 millisecond'
      WHERE id IN (
        SELECT n.id FROM alert_notifications n
        WHERE n.state <> 'sent' AND n.next_attempt_at <= now()
          AND NOT EXISTS (SELECT 1 FROM alert_notifications o WHERE (o.alert_id = n.alert_id OR o.group_id = n.group_id) AND o.sink = n.sink AND o.id < n.id AND o.state <> 'sent')
        ORDER BY n.id LIMIT 20 FOR UPDATE SKIP LOCKED)
      RETURNING id, alert_id, group_id, sink, kind, payload, attempts`;
  }

  async function deliver(row: Row): Promise<void> {
    const id = Number(row.id);
    const sink = sinks.get(row.sink);
    const parsed = NotificationPayload.safeParse(row.payload);
    let result: Awaited<ReturnType<Sink["send"]>>;
    if (!sink) result = { ok: false, retry: false, error: `sink '${row.sink}' is not configured on this alerter` };
    else if (!parsed.success) result = { ok: false, retry: false, error: `stored payload is invalid: ${parsed.error.issues[0]?.message ?? "?"}` };
    else {
      try {
        result = await sink.send(parsed.data);
      } catch (err) {
        result = { ok: false, retry: true, error: (err as Error).message };
      }
    }
    const attempts = row.attempts + 1;
    if (row.alert_id !== null) await sql`UPDATE alerts SET notification_attempts = notification_attempts + 1 WHERE id = ${Number(row.alert_id)}`;
    if (result.ok) {
      await sql`UPDATE alert_notifications SET state = 'sent', sent_at = now(), attempts = ${attempts}, last_error = NULL WHERE id = ${id}`;
      metrics.notifications.inc({ sink: row.sink, result: "sent" });
      if (parsed.success) metrics.notifyLatency.observe({ sink: row.sink, kind: row.kind }, Math.max(0, Date.now() - Date.parse(parsed.data.at)) / 1000);
      logger.info({ notification_id: id, sink: row.sink, kind: row.kind, attempts }, "notification sent");
      return;
    }
    const giveUpFast = !result.retry || attempts >= retry.quickAttempts;
    const delay = giveUpFast ? retry.maxMs : backoffMs(attempts, retry.baseMs, retry.maxMs);
    const error = result.error.slice(0, 1000);
    await sql`UPDATE alert_notifications SET state = ${giveUpFast ? "failing" : "pending"}, attempts = ${attempts}, last_error = ${error},
                     next_attempt_at = now() + ${delay} * interval '1 millisecond' WHERE id = ${id}`;
    if (giveUpFast) {
      metrics.notifications.inc({ sink: row.sink, result: "failed" });
      logger.error({ notification_id: id, sink: row.sink, kind: row.kind, attempts, error, retry_in_ms: delay }, "notification keeps failing; kept and retried at the slowest interval");
    } else {
      metrics.notifications.inc({ sink: row.sink, result: "retry" });
      logger.warn({ notification_id: id, sink: row.sink, kind: row.kind, attempts, error, retry_in_ms: delay }, "notification failed; will retry");
    }
  }

  async function work(): Promise<void> {
    while (running) {
      let rows: Row[] = [];
      waiter.clear();
      try {
        rows = await claim();
        await Promise.all(rows.map((r) => deliver(r).catch((err: Error) => logger.error({ notification_id: Number(r.id), err: err.message }, "recording a delivery failed; the lease will retry it"))));
      } catch (err) {
        logger.warn({ err: (err as Error).message }, "outbox poll failed; retrying");
      }
      if (rows.length === 0) await waiter.idle(idleMs);
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      loop = work();
    },
    async stop() {
      running = false;
      waiter.wake();
      await loop;
    },
    wake() {
      waiter.wake();
    },
  };
}
