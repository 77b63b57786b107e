import { ALERTS_RECENT_SUBJECT } from "@steward/contracts/subjects";
import { AlertsReply, type AlertView } from "@steward/contracts/alerts";
import type { NatsConnection } from "@steward/platform/bus";

export type AlertsRead = { ok: true; generatedAt: string; alerts: AlertView[] } | { ok: false; message: string };

/** The console's view of the alerts: asked of the alerter over NATS (it owns them), never read from its tables here. */
export function createAlertsReader(nc: NatsConnection, timeoutMs = 3000): () => Promise<AlertsRead> {
  return async () => {
    try {
      const msg = await nc.request(ALERTS_RECENT_SUBJECT, JSON.stringify({ limit: 200 }), { timeout: timeoutMs });
      const r = AlertsReply.safeParse(msg.json());
      if (!r.success) return { ok: false, message: "The alerter answered something this console does not understand." };
      return r.data.ok ? { ok: true, generatedAt: r.data.generated_at, alerts: r.data.alerts } : { ok: false, message: `The alerter could not answer: ${r.data.message}` };
    } catch (err) {
      const e = err as Error & { code?: string };
      if (/no responders/i.test(e.message) || e.code === "503") return { ok: false, message: "No alerter is running: alerts cannot be shown (start the alerter; `steward up` always does)." };
      return { ok: false, message: `The alerter did not answer within ${timeoutMs} ms.` };
    }
  };
}
