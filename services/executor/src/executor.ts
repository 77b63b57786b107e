import { listenHttp, type HttpListener } from "@steward/platform/http";
import { createAlertsReader } from "./console/alerts-client.js";
import { migrate, type Sql } from "@steward/platform/db";
import { openWorldBucket, type NatsConnection } from "@steward/platform/bus";
import { openWorldView, type WorldView } from "./world.js";
import { createWatchRestartReporter } from "@steward/world/watch-restarts";
import type { Logger } from "@steward/platform/logger";
import type { Registry } from "@steward/platform/metrics";
import type { ExecutorConfig } from "./config.js";
import { createApiHandler } from "./http-api.js";
import { createConsole } from "./console/index.js";
import { createApprovalTokens, deriveApprovalKey } from "./approval-tokens.js";
import { createApprovalRoutes } from "./http-approvals.js";
import { createTokenRedeemer } from "./token-redeem.js";
import { createExecutorMetrics } from "./metrics.js";
import { createNodeCommandClient } from "./node-command-client.js";
import { runAction } from "./run.js";
import { createActionsRepository, type ActionsRepository } from "@steward/actions/repository";
import { createDrillsRepository } from "@steward/actions/drills";
import { DRILL_KIND } from "@steward/contracts/drill";
import type { DrillDeps } from "./drill-run.js";
import { createDrillRoutes } from "./http-drills.js";
import { createFailureLimiter, type FailureLimiter } from "@steward/platform/rate-limit";
import { createCredentialsRepository, type CredentialsRepository, type SettingCredential } from "@steward/platform/credentials";
import { createIdleWait } from "@steward/platform/sleep";

export interface ExecutorDeps {
  config: ExecutorConfig;
  nc: NatsConnection;
  sql: Sql;
  logger: Logger;
  registry: Registry;
  clock?: () => Date;
  /** Wrong tokens per source; by default the platform's limits (10 failures, at most 10,000 sources). */
  limiter?: FailureLimiter;
}

export interface Executor {
  /** Migrates, starts the worker and the HTTP API. Resolves with the URL the API listens on. */
  start(): Promise<{ url: string }>;
  /** Stops taking work, abandons (as failed_unknown) what is still verifying, closes the API. Leaves nc and sql open. */
  stop(): Promise<void>;
  readonly store: ActionsRepository;
  /** The API's named credentials (operators' tokens and the components' scoped ones). */
  readonly credentials: CredentialsRepository;
}

/** The credentials the executor's settings carry: API_TOKEN is the bootstrap `admin`, ALERTER_TOKEN the `alerter`. */
export function settingCredentials(config: Pick<ExecutorConfig, "apiToken" | "alerterToken">): SettingCredential[] {
  return [
    { name: "admin", role: "admin", token: config.apiToken, setting: "API_TOKEN" },
    ...(config.alerterToken ? [{ name: "alerter", role: "alerter" as const, token: config.alerterToken, setting: "ALERTER_TOKEN" }] : []),
  ];
}

export function createExecutor(deps: ExecutorDeps): Executor {
  const { config, nc, sql, logger, registry } = deps;
  const clock = deps.clock ?? (() => new Date());
  const store = createActionsRepository(sql);
  const credentials = createCredentialsRepository(sql, settingCredentials(config));
  // One count of wrong tokens per source for the API, the bot routes and console sign-in alike.
  const limiter = deps.limiter ?? createFailureLimiter();
  const metrics = createExecutorMetrics(registry, store);
  const watchRestarts = createWatchRestartReporter(registry, logger);
  const abort = new AbortController();
  const inflight = new Set<Promise<unknown>>();
  // A drill waits most of its time for a restart this executor must run: drills take no slot of `concurrency`.
  const drilling = new Set<Promise<unknown>>();
  const drills = createDrillsRepository(sql);
  let drillLane: Promise<unknown> = Promise.resolve();
  const drill: DrillDeps = {
    drills,
    serial<T>(fn: () => Promise<T>): Promise<T> {
      const next = drillLane.then(fn, fn);
      drillLane = next.catch(() => undefined);
      return next;
    },
  };
  let server: HttpListener | undefined;
  let worldView: WorldView | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let sweeper: NodeJS.Timeout | undefined;
  let loop: Promise<void> | undefined;

  // Woken by a NOTIFY or a finished run; one that arrives while the loop is busy is kept, so that wake-up is not lost.
  const waiter = createIdleWait(() => abort.signal.aborted);
  const poke = () => waiter.wake();

  async function work(world: WorldView): Promise<void> {
    const commands = createNodeCommandClient({ nc, signingKey: config.signingKey, commandTtlMs: config.commandTtlMs, clock, metrics });
    const runDeps = { nc, world, store, commands, logger, metrics, clock, config, drill };
    while (!abort.signal.aborted) {
      if (inflight.size < config.concurrency) {
        let claimed;
        waiter.clear();
        try {
          claimed = await store.claimNext(config.executorId, config.leaseMs);
          metrics.claimPolls.inc();
        } catch (err) {
          logger.warn({ err: (err as Error).message }, "could not claim work; retrying");
        }
        if (claimed && !abort.signal.aborted) {
          logger.info({ action_id: claimed.id, node: claimed.node, service: claimed.service, kind: claimed.kind }, "claimed action");
          const lane = claimed.kind === DRILL_KIND ? drilling : inflight;
          const p: Promise<unknown> = runAction(runDeps, claimed, abort.signal)
            .catch((err: Error) => logger.error({ action_id: claimed.id, err: err.message }, "run failed unexpectedly"))
            .finally(() => {
              lane.delete(p);
              poke();
            });
          lane.add(p);
          continue;
        }
      }
      await waiter.idle(config.pollMs);
    }
  }

  async function sweep(): Promise<void> {
    try {
      for (const r of await store.expireDue()) {
        metrics.swept.inc({ to: r.to });
        logger.info({ action_id: r.id, from: r.from }, "action expired");
      }
      for (const r of await store.reapLost()) {
        metrics.swept.inc({ to: r.to });
        logger.error({ action_id: r.id }, "running action lost its executor; marked failed_unknown, not re-run");
      }
    } catch (err) {
      logger.warn({ err: (err as Error).message }, "sweep failed; will retry");
    }
  }

  return {
    store,
    credentials,
    async start() {
      await migrate(sql);
      const kv = await openWorldBucket(nc, 1, { onWaiting: (err) => logger.warn({ err: err.message }, "world store not created yet; waiting for the observer") });
      const world = await openWorldView(kv, logger, watchRestarts);
      worldView = world;
      const listening = await store.listen(poke);
      unlisten = () => listening.unlisten();
      const approvalKey = deriveApprovalKey(config.signingKey);
      const tokens = createApprovalTokens(sql, approvalKey, clock);
      const redeemer = createTokenRedeemer({ store, tokens, tokenKey: approvalKey, clock });
      const approvals = createApprovalRoutes({ store, tokens, tokenKey: approvalKey, redeemer, credentials, limiter, logger, registry, clock });
      const web = createConsole({ store, world, logger, credentials, limiter, redeemer, plannerToken: config.plannerToken, plannerUrl: config.plannerUrl, alerts: createAlertsReader(nc), drills, clock });
      const drillRoutes = createDrillRoutes({ store, drills, world, fleetSpecPath: config.fleetSpecPath, clock });
      server = await listenHttp(createApiHandler({ store, world, registry, logger, metrics, credentials, limiter, approvals, console: web, drills: drillRoutes }), config.httpPort, config.httpHost);
      const port = server.port;
      const host = config.httpHost.includes(":") ? `[${config.httpHost}]` : config.httpHost;
      if (config.worker) {
        await sweep();
        sweeper = setInterval(() => void sweep(), config.sweepMs);
        loop = work(world);
      }
      const url = `http://${host}:${port}`;
      logger.info({ url, executor_id: config.executorId, command_key_id: config.signingKey.publicKey.id }, "executor listening");
      return { url };
    },
    async stop() {
      abort.abort();
      poke();
      if (sweeper) clearInterval(sweeper);
      await loop;
      await Promise.allSettled([...inflight, ...drilling]);
      await unlisten?.().catch(() => undefined);
      await server?.close();
      await worldView?.stop();
    },
  };
}
