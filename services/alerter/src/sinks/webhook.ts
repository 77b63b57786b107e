import type { WebhookSinkConfig } from "../config.js";
import type { NotificationPayload, Sink } from "../notification.js";
import { postJson } from "./http.js";

/** Pure: the generic webhook body. Versioned so receivers can rely on it; approval tokens are never included. */
export function webhookBody(p: NotificationPayload): Record<string, unknown> {
  return {
    version: 1,
    source: "steward",
    status: p.kind === "resolved" ? "resolved" : "firing",
    kind: p.kind,
    alert: { id: p.alert_id, fingerprint: p.fingerprint, rule: p.rule, severity: p.severity, title: p.title, message: p.message, labels: p.labels, first_seen: p.first_seen, ...(p.note ? { note: p.note } : {}) },
    ...(p.group ? { group: p.group } : {}),
    ...(p.action ? { action: p.action } : {}),
    at: p.at,
  };
}

export function createWebhookSink(cfg: WebhookSinkConfig, o: { timeoutMs: number; fetch?: typeof fetch }): Sink {
  return {
    name: "webhook",
    send: (p) => postJson(cfg.url, webhookBody(p), cfg.token ? { authorization: `Bearer ${cfg.token}` } : {}, o.timeoutMs, o.fetch),
  };
}
