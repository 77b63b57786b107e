import { z } from "zod";

/**
 * The alerter's alerts as it answers for them on `ALERTS_RECENT_SUBJECT` (request/reply): the alerter's store is the
 * only reader and writer of the alerts tables; the console asks it instead of reading them itself.
 */
export const AlertView = z.object({
  id: z.number().int(),
  fingerprint: z.string(),
  rule: z.string(),
  severity: z.enum(["info", "warning", "critical"]),
  state: z.enum(["firing", "resolved"]),
  title: z.string(),
  message: z.string(),
  labels: z.record(z.string(), z.string()),
  /** The notification group it belongs to (`node:<name>`, `nodes_stale`, …). */
  group_key: z.string().nullable(),
  first_seen: z.string(),
  last_seen: z.string(),
  resolved_at: z.string().nullable(),
});
export type AlertView = z.infer<typeof AlertView>;

export const AlertsRequest = z.strictObject({
  limit: z.number().int().min(1).max(500).default(100),
  /** Resolved alerts are listed for this long after they resolved. */
  resolved_within_ms: z.number().int().min(0).max(7 * 24 * 3600_000).default(24 * 3600_000),
});
export type AlertsRequest = z.input<typeof AlertsRequest>;

export const AlertsReply = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), generated_at: z.string(), alerter_id: z.string(), alerts: z.array(AlertView) }),
  z.object({ ok: z.literal(false), code: z.enum(["bad_request", "unavailable"]), message: z.string() }),
]);
export type AlertsReply = z.infer<typeof AlertsReply>;
