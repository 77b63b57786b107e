import { ALERTS_RECENT_SUBJECT } from "@steward/contracts/subjects";
import { AlertsRequest, type AlertsReply } from "@steward/contracts/alerts";
import type { NatsConnection } from "@steward/platform/bus";
import type { Logger } from "@steward/platform/logger";
import type { AlertStore } from "./alert-store.js";

/** Pure: a request body (empty means the defaults) as the store's query, or why it is refused. */
export function parseAlertsRequest(data: Uint8Array): { ok: true; value: { limit: number; resolvedWithinMs: number } } | { ok: false; message: string } {
  let raw: unknown = {};
  const text = Buffer.from(data).toString("utf8").trim();
  if (text !== "") {
    try {
      raw = JSON.parse(text);
    } catch {
      return { ok: false, message: "the request is not JSON" };
    }
  }
  const r = AlertsRequest.safeParse(raw);
  if (!r.success) return { ok: false, message: r.error.issues.map((i) => `${i.path.join(".") || "(request)"}: ${i.message}`).join("; ") };
  return { ok: true, value: { limit: r.data.limit, resolvedWithinMs: r.data.resolved_within_ms } };
}

/**
 * Answers `steward.alerts.recent` with the firing and recently resolved alerts (the console's Alerts page asks here:
 * one owner for the alerts tables). Several alerters answer as one queue group.
 */
export function serveRecentAlerts(nc: NatsConnection, o: { store: AlertStore; alerterId: string; logger: Logger; clock: () => Date }): { unsubscribe(): void } {
  return nc.subscribe(ALERTS_RECENT_SUBJECT, {
    queue: "steward-alerter",
    callback: (err, msg) => {
      if (err) {
        o.logger.warn({ err: err.message }, "alerts request subscription error");
        return;
      }
      void (async () => {
        const req = parseAlertsRequest(msg.data);
        let reply: AlertsReply;
        if (!req.ok) reply = { ok: false, code: "bad_request", message: req.message };
        else {
          try {
            reply = { ok: true, generated_at: o.clock().toISOString(), alerter_id: o.alerterId, alerts: await o.store.recent({ limit: req.value.limit, resolvedWithinMs: req.value.resolvedWithinMs }) };
          } catch (e) {
            reply = { ok: false, code: "unavailable", message: `the alerter cannot read its alerts: ${(e as Error).message}` };
          }
        }
        msg.respond(JSON.stringify(reply));
      })().catch((e: unknown) => o.logger.error({ err: (e as Error).message }, "answering an alerts request failed"));
    },
  });
}
