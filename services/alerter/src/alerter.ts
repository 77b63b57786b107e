import { createActionsRepository } from "@steward/actions/repository";
import { createDrillsRepository } from "@steward/actions/drills";
import { answerHealthOrMetrics, type Registry } from "@steward/platform/metrics";
import { listenHttp, type HttpListener } from "@steward/platform/http";
import { migrate, type Sql } from "@steward/platform/db";
import { openWorldBucket, type NatsConnection } from "@steward/platform/bus";
import { watchWorld, type WorldCache } from "@steward/world/world-store";
import { watchDrift, type DriftCache } from "@steward/world/drift-store";
import { createWatchRestartReporter } from "@steward/world/watch-restarts";
import type { CostReport } from "@steward/contracts/task";
import type { IncidentRecurrence } from "@steward/contracts/incident";
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
import { flapFindings, flappedFingerprint, FLAPPING_RULE } from "./flapping.js";
import { groupOf, noticePayload, planGroups, visibleMembers, type GroupMember } from "./grouping.js";
import { createLiveness } from "./liveness.js";
import { serveRecentAlerts } from "./alerts-responder.js";
import { createConsoleSink } from "./sinks/console.js";
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
  const repo = { ...createActionsRepository(sql), ...createDrillsRepository(sql) };
  const metrics = createAlerterMetrics(registry, store);
  const watchRestarts = createWatchRestartReporter(registry, logger);
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
    sinks.set("telegram", createTelegramSink({ api: tgApi, sql, chatId: tg.chatId, consoleUrl: config.consoleUrl, executor }));
  }
  if (config.webhook) sinks.set("webhook", createWebhookSink(config.webhook, { timeoutMs, ...(deps.fetch ? { fetch: deps.fetch } : {}) }));
  if (config.console) sinks.set("console", createConsoleSink());
  const sinkNames = [...sinks.keys()];
  const delivery = createDelivery({ sql, sinks, logger, metrics, retry: config.retry, idleMs: Math.min(500, config.retry.baseMs) });

  const startedAt = clock().getTime();
  const liveness = createLiveness({ urls: { executor: config.executorUrl, ...(config.plannerUrl ? { planner: config.plannerUrl } : {}) }, timeoutMs: Math.min(timeoutMs, 5000), clock: () => clock().getTime(), ...(deps.fetch ? { fetch: deps.fetch } : {}) });
  /** When each drift key was first seen in the reports (without a gap): where a new node's or service's grace starts. */
  const driftFirstSeen = new Map<string, number>();
  let worldCache: WorldCache | undefined;
  let driftCache: DriftCache | undefined;
  let snapshot: Read<Snapshot> = { ok: false, reason: "no world snapshot seen yet" };
  let drift: Read<DriftReport> = { ok: false, reason: "no drift report seen yet" };
  let lastGoodSnapshotAt: number | undefined;
  let lastGoodDriftAt: number | undefined;
  let cost: Read<CostReport> = { ok: false, reason: planner ? "cost not fetched yet" : "no planner configured" };
  let recurrences: Read<IncidentRecurrence[]> = { ok: false, reason: planner ? "recurring incidents not fetched yet" : "no planner configured" };
  const timers: NodeJS.Timeout[] = [];
  let server: HttpListener | undefined;
  let pollLoop: Promise<void> | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let answering: { unsubscribe(): void } | undefined;

  function takeSnapshot(r: Read<Snapshot>): void {
    snapshot = r;
    if (r.ok) lastGoodSnapshotAt = Math.max(lastGoodSnapshotAt ?? 0, Date.parse(r.value.written_at));
  }
  function takeDrift(r: Read<DriftReport>): void {
    drift = r;
    if (!r.ok) return;
    lastGoodDriftAt = Math.max(lastGoodDriftAt ?? 0, Date.parse(r.value.computed_at));
    const now = clock().getTime();
    const keys = new Set(r.value.drifts.map((d) => d.key));
    for (const k of driftFirstSeen.keys()) if (!keys.has(k)) driftFirstSeen.delete(k);
    for (const k of keys) if (!driftFirstSeen.has(k)) driftFirstSeen.set(k, now);
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
      recurrences,
      firstSeen: new Map(firing.map((a) => [a.fingerprint, a.firstSeen])),
      driftFirstSeen,
      graceMs: config.graceMs,
      answered: liveness,
    });
    // Flapping: judged from the alerts' own recent episodes, always readable here.
    const flappingNow = firing.filter((a) => a.rule === FLAPPING_RULE).map((a) => a.fingerprint);
    const history = await store.history(now, config.flap.windowMs, config.flap.count, flappingNow.map((fp) => flappedFingerprint(fp) ?? fp));
    ev.findings.push(...flapFindings(history, new Set(flappingNow), now.getTime(), config.flap));
    ev.judged.add(FLAPPING_RULE);
    const plan = reconcile(firing, ev);
    await store.apply(plan, now, (f) => groupOf(f, config.grouping).key);
    if (plan.fire.length > 0 || plan.resolve.length > 0) {
      logger.info({ fired: plan.fire.length, resolved: plan.resolve.length, sample: [...plan.fire, ...plan.resolve].slice(0, 5).map((a) => a.fingerprint) }, "alerts changed");
    }
    await notifyGroups(ev.findings, now);
  }

  /** The thin write step after the pure group plan: open groups, close silent ones, queue each notice. */
  async function notifyGroups(findings: readonly { fingerprint: string; renotifyMs: number | undefined; action?: GroupMember["action"] }[], now: Date): Promise<void> {
    const byFp = new Map(findings.map((f) => [f.fingerprint, f]));
    const members: GroupMember[] = (await store.listFiring()).map((a) => {
      const f = byFp.get(a.fingerprint);
      return { id: a.id, fingerprint: a.fingerprint, rule: a.rule, severity: a.severity, title: a.title, message: a.message, labels: a.labels, firstSeen: a.firstSeen, renotifyMs: f?.renotifyMs, action: f?.action };
    });
    const staleNodes = new Set(members.filter((m) => m.rule === "node_stale" && m.labels["node"]).map((m) => m.labels["node"] as string));
    if (snapshot.ok) for (const n of Object.values(snapshot.value.world.nodes)) if (n.status === "stale") staleNodes.add(n.name);
    const visible = visibleMembers(members, staleNodes);
    const first = planGroups(visible, await store.openGroups(), now.getTime(), config.grouping);
    await store.startGroups(first.open, now);
    // Re-plan over the groups as stored (a group opened just now may be due at once: an approval request).
    const plan = first.open.length > 0 ? planGroups(visible, await store.openGroups(), now.getTime(), config.grouping) : first;
    await store.closeGroupsSilently(plan.closeSilently, now);
    const pendingIds = plan.notify.filter((n) => n.kind === "resolved").flatMap((n) => n.members.filter((m) => m.rule === "action_pending").map((m) => m.fingerprint.slice("action_pending:".length)));
    const outcomes = await actionOutcomes(repo, pendingIds);
    const notes = new Map([...outcomes].map(([id, note]) => [`action_pending:${id}`, note]));
    let queued = 0;
    for (const n of plan.notify) queued += await store.notify(n, noticePayload(n, now, notes), sinkNames, now);
    if (queued > 0) {
      delivery.wake();
      logger.info({ notices: plan.notify.map((n) => ({ group: n.group.key, kind: n.kind, alerts: n.members.length })), queued }, "alert notices queued");
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

  /** What the alerter reads from the planner on COST_POLL_MS: the cost report and the recurring failures in force. */
  async function pollPlanner(): Promise<void> {
    if (!planner) return;
    const [c, r] = await Promise.allSettled([planner.cost(), planner.recurrences()]);
    if (c.status === "fulfilled") cost = { ok: true, value: c.value };
    else {
      cost = { ok: false, reason: (c.reason as Error).message };
      logger.warn({ err: (c.reason as Error).message }, "cost report unavailable; cost rules not judged this round");
    }
    const before = recurrences.ok ? recurrences.value.map((x) => x.id).join(",") : undefined;
    if (r.status === "fulfilled") recurrences = { ok: true, value: r.value };
    else {
      recurrences = { ok: false, reason: (r.reason as Error).message };
      logger.warn({ err: (r.reason as Error).message }, "recurring incidents unavailable; the recurrence rule is not judged this round");
    }
    // A new recurrence is news now, not at the next evaluation tick.
    if (recurrences.ok && recurrences.value.map((x) => x.id).join(",") !== before) void trigger();
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
      const kv = await openWorldBucket(nc, 1, { onWaiting: (err) => logger.warn({ err: err.message }, "world store not created yet; waiting for the observer") });
      const onError = (err: Error) => logger.warn({ err: err.message }, "world store watch failed; re-reading and watching again");
      worldCache = watchWorld(kv, {
        onChange: () => {
          takeWorld();
          void trigger();
        },
        onError,
        onRestart: watchRestarts.onRestart("world"),
      });
      driftCache = watchDrift(kv, {
        onChange: () => {
          takeReport();
          void trigger();
        },
        onError,
        onRestart: watchRestarts.onRestart("drift"),
      });
      await Promise.race([Promise.all([worldCache.ready(), driftCache.ready()]), new Promise((r) => setTimeout(r, 10_000).unref())]);
      takeWorld();
      takeReport();
      const listening = await repo.listen(() => void trigger());
      unlisten = () => listening.unlisten();
      await pollPlanner();
      timers.push(setInterval(() => void trigger(), config.evalMs));
      await liveness.poll();
      // Polled several times within the dead-man's limit, so one slow answer is not "dead".
      const limits = config.rules.flatMap((r) => (r.rule === "deadman" && (r.component === "executor" || r.component === "planner") ? [(r.after_s * 1000) / 4] : []));
      timers.push(setInterval(() => void liveness.poll(), Math.max(100, Math.min(config.livenessPollMs, ...limits))));
      if (planner) timers.push(setInterval(() => void pollPlanner(), config.costPollMs));
      delivery.start();
      answering = serveRecentAlerts(nc, { store, alerterId: config.alerterId, logger, clock });

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
      answering?.unsubscribe();
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
