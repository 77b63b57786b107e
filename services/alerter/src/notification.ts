import { z } from "zod";
import { AlertSeverity } from "./rules.js";

/** What one notification says; stored as the outbox row's payload and rendered by each sink. */
export const NotificationPayload = z.object({
  kind: z.enum(["firing", "renotify", "resolved"]),
  alert_id: z.number().int(),
  fingerprint: z.string(),
  rule: z.string(),
  severity: AlertSeverity,
  title: z.string(),
  message: z.string(),
  labels: z.record(z.string(), z.string()),
  first_seen: z.string(),
  at: z.string(),
  /** The group this notice is about: its key and how many alerts it lists (1: it reads as that alert). */
  group: z.object({ key: z.string(), count: z.number().int().nonnegative() }).optional(),
  /** For a resolved alert: what became of it (e.g. "approved by telegram:42 via telegram"). */
  note: z.string().optional(),
  action: z
    .object({
      id: z.string(),
      node: z.string(),
      service: z.string(),
      kind: z.string(),
      reason: z.string(),
      diagnosis: z.string().nullable(),
      expires_at: z.string(),
      params: z.record(z.string(), z.unknown()),
    })
    .optional(),
});
export type NotificationPayload = z.infer<typeof NotificationPayload>;

export type SendResult = { ok: true } | { ok: false; retry: boolean; error: string };

export interface Sink {
  readonly name: "ntfy" | "telegram" | "webhook" | "console";
  send(p: NotificationPayload): Promise<SendResult>;
}

/** Whether a failed HTTP answer is worth retrying: timeouts, rate limits and server errors are; other 4xx are not. */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/** Exponential backoff with ±20% jitter, capped. `attempt` counts from 1. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, rand: () => number = Math.random): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.max(1, Math.round(Math.min(maxMs, raw * (0.8 + 0.4 * rand()))));
}

/** A pending action's approval buttons ask for what an action will do; this is the one-line version for every sink. */
export function describeAction(a: NonNullable<NotificationPayload["action"]>): string {
  const params = Object.keys(a.params).length > 0 ? ` ${JSON.stringify(a.params)}` : "";
  return `${a.kind} ${a.node}/${a.service}${params}`;
}

/** Plain-text rendering shared by Telegram and logs. */
export function renderText(p: NotificationPayload): string {
  const head = p.kind === "resolved" ? `✅ RESOLVED: ${p.title}` : `${p.severity === "critical" ? "🚨" : p.severity === "warning" ? "⚠️" : "ℹ️"} ${p.kind === "renotify" ? "STILL FIRING: " : ""}${p.title}`;
  const lines = [head, p.kind === "resolved" && p.note ? p.note : p.message];
  if (p.action && p.kind !== "resolved") lines.push(`Will run: ${describeAction(p.action)}`, `Expires: ${p.action.expires_at}`);
  if (p.kind !== "resolved" && p.kind !== "renotify") lines.push(`Since: ${p.first_seen}`);
  return lines.filter(Boolean).join("\n");
}
