import { createActionsRepository } from "@steward/actions/repository";
import { answerHealthOrMetrics, type Registry } from "@steward/platform/metrics";
import { listenHttp, type HttpListener } from "@steward/platform/http";
import { migrate, type Sql } from "@steward/platform/db";
import { openWorldBucket, type NatsConnection } from "@steward/platform/bus";
import { watchWorld, type WorldCache } from "@steward/world/world-store";
import { watchDrift, type DriftCache } from "@steward/world/drift-store";
import type { CostReport } from "@steward/contracts/task";
import type { DriftReport } from "@steward/contracts/drift";
import type { Logger } from "@steward/platform/logger";
import type { Snapshot } from "@steward/contracts/world-state";
import { createExecutorClient } from "@steward/executor/client";
import { createPlannerClient } from "@steward/planner/client";
import { createAlertStore, type AlertStore } from "./alert-store.js";
import type { AlerterConfig } from "./config.js";
import { createDelivery } from "./delivery.js";
import { createAlerterMetrics } from "./metrics.js";
import type { Sink } from "./notification.js";
import { evaluate, reconcile, type Read } from "./rules.js";
import { createNtfySink } from "./sinks/ntfy.js";
import { createTelegramSink } from "./sinks/telegram.js";
import { createWebhookSink } from "./sinks/webhook.js";
import { actionOutcomes, readActions, toRead } from "./sources.js";
import { createTelegramApi } from "./telegram-api.js";
import { createTelegramBot, type TelegramBot } from "./telegram-bot.js";

export interface AlerterDeps {
  config: AlerterConfig;
  nc: NatsConnection;
  sql: Sql;
  logger: Logger;
  registry: Registry;
  clock?: () => Date;
  fetch?: typeof fetch;
}

export interface Alerter {
  /** Migrates, starts watching, delivering and (if configured) the Telegram bot; resolves with the HTTP URL. */
  start(): Promise<{ url: string }>;
  stop(): Promise<void>;
  /** Runs one evaluation now (tests, and every trigger, go through the same coalescing path). */
  evaluateNow(): Promise<void>;
  readonly store: AlertStore;
  readonly bot: TelegramBot | undefined;
}

export function createAlerter(deps: AlerterDeps): Alerter {
  const { config, nc, sql, logger, registry } = deps;
  const clock = deps.clock ?? (() => new Date());
  const store = createAlertStore(sql);
  const repo = createActionsRepository(sql);
  const metrics = createAlerterMetrics(registry, store);
  const timeoutMs = config.sendTimeoutMs;
  const executor = createExecutorClient({ url: config.executorUrl, token: config.apiToken, timeoutMs, label: "the executor", fetch: deps.fetch });
  const planner = config.plannerUrl ? createPlannerClient({ url: config.plannerUrl, token: config.plannerToken, timeoutMs, fetch: deps.fetch }) : undefined;
  const abort = new AbortController();

  const sinks = new Map<string, Sink>();
  if (config.ntfy) sinks.set("ntfy", createNtfySink(config.ntfy, { executor, executorPublicUrl: config.executorPublicUrl, consoleUrl: config.consoleUrl, timeoutMs, ...(deps.fetch ? { fetch: deps.fetch } : {}) }));
  let bot: TelegramBot | undefined;
  const tg = config.telegram;
  const tgApi = tg ? createTelegramApi({ apiUrl: tg.apiUrl, token: tg.token, timeoutMs, ...(deps.fetch ? { fetch: deps.fetch } : {}) }) : undefined;
  if (tg && tgApi) {
    sinks.set("telegram", createTelegramSink({ api: tgApi, sql, chatId: tg.chatId, consoleUrl: config.consoleUrl }));
  }
  if (config.webhook) sinks.set("webhook", createWebhookSink(config.webhook, { timeoutMs, ...(deps.fetch ? { fetch: deps.fetch } : {}) }));
  const sinkNames = [...sinks.keys()];
  const delivery = createDelivery({ sql, sinks, logger, metrics, retry: config.retry, idleMs: Math.min(500, config.retry.baseMs) });

  const startedAt = clock().getTime();
  let worldCache: WorldCache | undefined;
  let driftCache: DriftCache | undefined;
  let snapshot: Read<Snapshot> = { ok: false, reason: "no world snapshot seen yet" };
  let drift: Read<DriftReport> = { ok: false, reason: "no drift report seen yet" };
  let lastGoodSnapshotAt: number | undefined;
  let lastGoodDriftAt: number | undefined;
  let cost: Read<CostReport> = { ok: false, reason: planner ? "cost not fetched yet" : "no planner configured" };
  const timers: NodeJS.Timeout[] = [];
  let server: HttpListener | undefined;
  let pollLoop: Promise<void> | undefined;
  let unlisten: (() => Promise<void>) | undefined;

  function takeSnapshot(r: Read<Snapshot>): void {
    snapshot = r;
    if (r.ok) lastGoodSnapshotAt = Math.max(lastGoodSnapshotAt ?? 0, Date.parse(r.value.written_at));
  }
  function takeDrift(r: Read<DriftReport>): void {
    drift = r;
    if (r.ok) lastGoodDriftAt = Math.max(lastGoodDriftAt ?? 0, Date.parse(r.value.computed_at));
  }

  async function evaluateOnce(): Promise<void> {
    const now = clock();
    let actions: Read<Awaited<ReturnType<typeof readActions>>>;
    try {
      const windowMin = Math.max(60, ...config.rules.map((r) => (r.rule === "action_failed" ? r.window_min : 0)));
      actions = { ok: true, value: await readActions(repo, windowMin * 60_000) };
    } catch (err) {
      actions = { ok: false, reason: `actions unreadable: ${(err as Error).message}` };
    }
    const firing = await store.listFiring();
    const ev = evaluate(config.rules, {
      now: now.getTime(),
      startedAt,
      snapshot,
      lastGoodSnapshotAt,
      drift,
      lastGoodDriftAt,
      actions,
      cost,
      firstSeen: new Map(firing.map((a) => [a.fingerprint, a.firstSeen])),
    });
    const plan = reconcile(firing, ev, now.getTime(), config.renotifyMs);
    const pendingIds = plan.resolve.filter((a) => a.rule === "action_pending").map((a) => a.fingerprint.slice("action_pending:".length));
    const outcomes = await actionOutcomes(repo, pendingIds);
    const notes = new Map([...outcomes].map(([id, note]) => [`action_pending:${id}`, note]));
    const queued = await store.apply(plan, firing, sinkNames, now, notes);
    if (queued > 0) {
      delivery.wake();
      logger.info({ fired: plan.fire.map((f) => f.fingerprint), renotified: plan.keep.filter((k) => k.renotify).length, resolved: plan.resolve.map((a) => a.fingerprint), queued }, "alerts changed");
    }
  }

  // One evaluation at a time; triggers that arrive meanwhile collapse into one more run.
  let running: Promise<void> | undefined;
  let again = false;
  function trigger(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await evaluateOnce();
          metrics.evaluations.inc({ result: "ok" });
        } catch (err) {
          metrics.evaluations.inc({ result: "error" });
          logger.error({ err: (err as Error).message }, "alert evaluation failed; will retry on the next trigger");
        }
      } while (again && !abort.signal.aborted);
    })().finally(() => {
      running = undefined;
    });
    return running;
  }

  /** Both documents come from the world store's watched copies; each write a reader has fully seen triggers one evaluation. */
  function takeWorld(): void {
    if (worldCache) takeSnapshot(toRead(worldCache.read()));
  }
  function takeReport(): void {
    if (driftCache) takeDrift(toRead(driftCache.read()));
  }

  async function pollCost(): Promise<void> {
    if (!planner) return;
    try {
      cost = { ok: true, value: await planner.cost() };
    } catch (err) {
      cost = { ok: false, reason: (err as Error).message };
      logger.warn({ err: (err as Error).message }, "cost report unavailable; cost rules not judged this round");
    }
  }

  async function fleet() {
    let pending = 0;
    try {
      pending = (await repo.countByState())["pending"] ?? 0;
    } catch {
      /* shown as 0 */
    }
    return { snapshot, drift, pendingActions: pending, now: clock().getTime() };
  }

  if (tg && tgApi) {
    bot = createTelegramBot({ api: tgApi, sql, executor, planner, fleet, allowedUsers: tg.allowedUsers, allowedChats: tg.allowedChats, logger, metrics, taskWaitMs: config.taskWaitMs, signal: abort.signal });
  }

  return {
    store,
    get bot() {
      return bot;
    },
    evaluateNow: trigger,
    async start() {
      await migrate(sql);
      const kv = await openWorldBucket(nc);
      const onError = (err: Error) => logger.warn({ err: err.message }, "world store watch failed; re-reading and watching again");
      worldCache = watchWorld(kv, {
        onChange: () => {
          takeWorld();
          void trigger();
        },
        onError,
      });
      driftCache = watchDrift(kv, {
        onChange: () => {
          takeReport();
          void trigger();
        },
        onError,
      });
      await Promise.race([Promise.all([worldCache.ready(), driftCache.ready()]), new Promise((r) => setTimeout(r, 10_000).unref())]);
      takeWorld();
      takeReport();
      const listening = await repo.listen(() => void trigger());
      unlisten = () => listening.unlisten();
      await pollCost();
      timers.push(setInterval(() => void trigger(), config.evalMs));
      if (planner) timers.push(setInterval(() => void pollCost(), config.costPollMs));
      delivery.start();

      server = await listenHttp((req, res) => {
        const path = (req.url ?? "/").split("?")[0] ?? "/";
        if (path === "/healthz" || path === "/metrics") {
          void answerHealthOrMetrics(path, req.method ?? "GET", res, registry).then((answered) => {
            if (!answered) res.writeHead(405).end();
          });
          return;
        }
        if (path === "/telegram/webhook" && req.method === "POST" && bot && tg?.mode === "webhook" && tg.webhookSecret) {
          bot.webhook(req, res, tg.webhookSecret).catch((err: Error) => {
            logger.error({ err: err.message }, "telegram webhook handling failed");
            if (!res.headersSent) res.writeHead(500).end();
          });
          return;
        }
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "not_found", message: `no route ${req.method} ${path}` } }));
      }, config.metricsPort, config.metricsHost);
      const url = `http://${config.metricsHost}:${server.port}`;

      if (bot && tg && tgApi) {
        if (tg.mode === "webhook" && tg.webhookUrl && tg.webhookSecret) {
          await tgApi.setWebhook(tg.webhookUrl, tg.webhookSecret);
          logger.info({ mode: "webhook" }, "telegram bot receiving updates by webhook");
        } else {
          // A webhook left over from an earlier setup would make getUpdates fail with 409.
          await tgApi.deleteWebhook().catch((err: Error) => logger.warn({ err: err.message }, "deleteWebhook failed"));
          const b = bot;
          pollLoop = b.poll(abort.signal, tg.pollTimeoutS);
          logger.info({ mode: "polling" }, "telegram bot long-polling for updates");
        }
      }
      await trigger();
      logger.info({ url, sinks: sinkNames, rules: config.rules.map((r) => r.rule) }, "alerter running");
      return { url };
    },
    async stop() {
      abort.abort();
      for (const t of timers) clearInterval(t);
      await worldCache?.stop();
      await driftCache?.stop();
      await pollLoop?.catch(() => undefined);
      await running?.catch(() => undefined);
      await delivery.stop();
      await bot?.idle();
      await unlisten?.().catch(() => undefined);
      await server?.close();
    },
  };
}
