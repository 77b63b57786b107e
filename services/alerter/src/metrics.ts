import { Counter, Histogram, scrapeTimeGauge, type Registry } from "@steward/platform/metrics";
import type { AlertStore } from "./alert-store.js";

export interface AlerterMetrics {
  notifications: Counter<"sink" | "result">;
  notifyLatency: Histogram<"sink" | "kind">;
  evaluations: Counter<"result">;
  telegramCallbacks: Counter<"result">;
  telegramCommands: Counter<"command" | "result">;
  telegramUpdatesDeferred: Counter;
}

export function createAlerterMetrics(registry: Registry, store?: AlertStore): AlerterMetrics {
  if (store) {
    // Read from Postgres at scrape time: the shared truth, whichever alerter queued it.
    let cached: Promise<Awaited<ReturnType<AlertStore["counts"]>> | undefined> | undefined;
    const counts = () => (cached ??= store.counts().catch(() => undefined).finally(() => setTimeout(() => (cached = undefined), 100)));
    scrapeTimeGauge(registry, { name: "steward_alerter_alerts_firing", help: "Alerts firing now, by rule", label: "rule", read: async () => (await counts())?.firing });
    scrapeTimeGauge(registry, { name: "steward_alerter_notifications_unsent", help: "Notifications queued and not yet delivered (pending or failing), by sink", label: "sink", read: async () => (await counts())?.unsent });
  }
  const registers = [registry];
  return {
    notifications: new Counter({ name: "steward_alerter_notifications_total", help: "Notification delivery attempts by sink and result (sent, retry, failed: kept and retried slowly)", labelNames: ["sink", "result"], registers }),
    notifyLatency: new Histogram({ name: "steward_alerter_notify_seconds", help: "From the alert being queued to the sink accepting it", labelNames: ["sink", "kind"], buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300], registers }),
    evaluations: new Counter({ name: "steward_alerter_evaluations_total", help: "Rule evaluations by result (ok, error)", labelNames: ["result"], registers }),
    telegramCallbacks: new Counter({ name: "steward_alerter_telegram_callbacks_total", help: "Telegram button presses by result (approved, rejected, refused, not_allowed, unknown, error)", labelNames: ["result"], registers }),
    telegramCommands: new Counter({ name: "steward_alerter_telegram_commands_total", help: "Telegram commands by command and result", labelNames: ["command", "result"], registers }),
    telegramUpdatesDeferred: new Counter({ name: "steward_alerter_telegram_updates_deferred_total", help: "Telegram updates left undelivered (webhook 503, getUpdates offset kept) because the database was unreachable", registers }),
  };
}
