import type { BaseCheckpointSaver } from "@langchain/langgraph";
import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres";
import { createCheckpointerPool } from "./checkpointer-pool.js";
import { listenHttp, type HttpListener } from "@steward/platform/http";
import { ADVISORY_LOCK_KEYS, migrate, type Sql } from "@steward/platform/db";
import { createActionsRepository } from "@steward/actions/repository";
import type { Logger } from "@steward/platform/logger";
import type { NatsConnection } from "@steward/platform/bus";
import type { Registry } from "@steward/platform/metrics";
import { createClaudeBackend, createOllamaBackend, type ClaudeBackend, type LocalBackend } from "./backends.js";
import type { PlannerConfig } from "./config.js";
import { createCostLedger, type CostLedger } from "./cost-ledger.js";
import type { EvidenceSources } from "./evidence.js";
import { buildPlannerGraph, type RunContext } from "./graph.js";
import { createApiHandler } from "./http-api.js";
import { createCredentialsRepository } from "@steward/platform/credentials";
import { createFailureLimiter, type FailureLimiter } from "@steward/platform/rate-limit";
import type { PlannerRole } from "./access.js";
import { createIncidents, type Incidents } from "./incidents/incidents.js";
import { createPlannerMetrics, type PlannerMetrics } from "./metrics.js";
import { createModelCaller } from "./model-caller.js";
import { createNatsSources } from "./sources.js";
import { createTaskStore, type TaskStore } from "./store.js";
import { investigationTools, type ToolDef } from "./tools.js";
import { createWorker, type Worker } from "./worker.js";

/** Lock held while the checkpointer creates its tables, so two planners starting together do not race. */
const CHECKPOINT_SETUP_LOCK = ADVISORY_LOCK_KEYS.plannerCheckpointSetup;

export interface PlannerDeps {
  config: PlannerConfig;
  sql: Sql;
  /** Needed unless `sources` is given. */
  nc?: NatsConnection;
  logger: Logger;
  registry: Registry;
  clock?: () => Date;
  /** Overrides for tests; by default built from the configuration. */
  sources?: EvidenceSources;
  local?: LocalBackend;
  claude?: ClaudeBackend | null;
  checkpointer?: BaseCheckpointSaver;
  /** Wrong bearer tokens per source; by default the platform's limits (10 failures, at most 10,000 sources). */
  limiter?: FailureLimiter;
  /** Tools added to the investigation's own (`TOOLS`), e.g. one whose reader lives in another package. */
  tools?: readonly ToolDef[];
}

export interface Planner {
  start(): Promise<{ port: number }>;
  stop(): Promise<void>;
  readonly store: TaskStore;
  readonly ledger: CostLedger;
  readonly metrics: PlannerMetrics;
  readonly workers: Worker[];
  /** Incident memory: escalations linked into incidents, their timelines, post-mortems, recurrences. */
  readonly incidents: Incidents;
  /** Expires queued tasks past their TTL and dead-letters lost ones (also runs on a timer). */
  sweep(): Promise<{ expired: string[]; dead: string[] }>;
}

export function createPlanner(deps: PlannerDeps): Planner {
  const { config, sql, logger, registry } = deps;
  const clock = deps.clock ?? (() => new Date());
  const metrics = createPlannerMetrics(registry);
  const store = createTaskStore(sql);
  const ledger = createCostLedger(sql, config.caps);
  const local = deps.local ?? createOllamaBackend(config.ollama);
  const claude =
    deps.claude === null
      ? undefined
      : (deps.claude ??
        (config.claude.enabled && config.claude.apiKey
          ? createClaudeBackend({ apiKey: config.claude.apiKey, baseUrl: config.claude.baseUrl, model: config.claude.model, maxRetries: config.claude.maxRetries, timeoutMs: config.claude.timeoutMs })
          : undefined));
  const sources = deps.sources ?? createNatsSources(requireNc(deps.nc), { fleetSpecPath: config.fleetSpecPath, logTailBytes: config.logTailBytes, logTailTimeoutMs: config.logTailTimeoutMs });
  const ownSaver = deps.checkpointer ? undefined : createCheckpointer(config.databaseUrl, logger);
  const checkpointer = deps.checkpointer ?? (ownSaver as BaseCheckpointSaver);
  const caller = createModelCaller({ config, local, claude, ledger, store, metrics, logger, clock });
  const runs = new Map<string, RunContext>();
  const actions = createActionsRepository(sql);
  const incidents = createIncidents({
    sql,
    tasks: store,
    actions,
    sources,
    caller,
    logger: logger.child({ part: "incidents" }),
    metrics,
    clock,
    settings: { quietMs: config.incidents.quietMs, recurrence: { count: config.incidents.recurCount, windowMs: config.incidents.recurWindowMs }, leaseMs: config.leaseMs },
  });
  const tools = [...investigationTools(config.fleetSpecPath, (q) => incidents.similar(q)), ...(deps.tools ?? [])];
  const graph = buildPlannerGraph({ actions, store, sources, caller, ledger, caps: config.caps, tools, loop: config.loop, checkpointer, metrics, logger, actionTtlMs: config.actionTtlMs, eventsWindowMs: config.eventsWindowMs, actor: "planner", clock }, runs);
  const workers: Worker[] = Array.from({ length: config.workers }, (_, i) =>
    createWorker({
      settings: { workerId: `${config.plannerId}-w${i}`, pollMs: config.pollMs, leaseMs: config.leaseMs, backoffBaseMs: config.backoffBaseMs, backoffMaxMs: config.backoffMaxMs },
      store,
      graph,
      runs,
      metrics,
      logger: logger.child({ worker: i }),
      clock,
      modelSeconds: (taskId) => caller.takeModelSeconds(taskId),
      maxSteps: config.loop.maxSteps,
    }),
  );
  let server: HttpListener | undefined;
  let sweeper: NodeJS.Timeout | undefined;
  let incidentTimer: NodeJS.Timeout | undefined;
  let checkingIncidents: Promise<unknown> | undefined;

  async function sweep() {
    const r = await store.sweep(clock());
    if (r.expired.length > 0) {
      metrics.tasks.inc({ state: "expired" }, r.expired.length);
      logger.info({ tasks: r.expired }, "tasks expired before they could run (dead-lettered)");
    }
    if (r.dead.length > 0) {
      metrics.tasks.inc({ state: "dead" }, r.dead.length);
      logger.warn({ tasks: r.dead }, "tasks lost their worker with no attempts left (dead-lettered)");
    }
    metrics.queueDepth.set(await store.queueDepth());
    return r;
  }

  return {
    store,
    ledger,
    metrics,
    workers,
    incidents,
    sweep,
    async start() {
      await migrate(sql);
      if (ownSaver) {
        const reserved = await sql.reserve();
        try {
          await reserved`SELECT pg_advisory_lock(${CHECKPOINT_SETUP_LOCK})`;
          await ownSaver.setup();
        } finally {
          await reserved`SELECT pg_advisory_unlock(${CHECKPOINT_SETUP_LOCK})`;
          reserved.release();
        }
      }
      const handler = createApiHandler({
        store,
        ledger,
        incidents,
        registry,
        metrics,
        logger,
        credentials: createCredentialsRepository<PlannerRole>(sql, config.settingCredentials),
        limiter: deps.limiter ?? createFailureLimiter(),
        defaultTtlS: config.taskTtlS,
        maxAttempts: config.maxAttempts,
        clock,
        onQueued: () => workers.forEach((w) => w.nudge()),
      });
      server = await listenHttp(handler, config.httpPort, config.httpHost);
      const port = server.port;
      for (const w of workers) w.start();
      sweeper = setInterval(() => void sweep().catch((err: unknown) => logger.error({ err: (err as Error).message }, "sweep failed")), Math.max(config.pollMs, 1000));
      incidentTimer = setInterval(() => {
        if (checkingIncidents) return;
        checkingIncidents = incidents
          .resolveRecovered()
          .catch((err: unknown) => logger.warn({ err: (err as Error).message }, "incident check failed; trying again at the next one"))
          .finally(() => (checkingIncidents = undefined));
      }, config.incidents.checkMs);
      logger.info({ port, workers: workers.length, groups: config.modelGroups.map((g) => g.name), claude: config.claude.enabled ? "enabled" : `disabled (${config.claude.disabledBecause})` }, "planner started");
      return { port };
    },
    async stop() {
      if (sweeper) clearInterval(sweeper);
      if (incidentTimer) clearInterval(incidentTimer);
      await checkingIncidents;
      await Promise.all(workers.map((w) => w.stop()));
      await server?.close();
      if (ownSaver) await ownSaver.end().catch(() => undefined);
      logger.info("planner stopped");
    },
  };
}

function requireNc(nc: NatsConnection | undefined): NatsConnection {
  if (!nc) throw new Error("createPlanner needs a NATS connection (or injected evidence sources)");
  return nc;
}

/** The checkpointer on its own pg pool, which rides through a database restart (checkpointer-pool.ts). */
function createCheckpointer(databaseUrl: string, logger: Logger): PostgresSaver {
  return new PostgresSaver(createCheckpointerPool(databaseUrl, logger));
}
