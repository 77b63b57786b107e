import { randomUUID } from "node:crypto";
import { afterAll, beforeAll } from "vitest";
import { checkNodeCommand, SignedNodeCommand, type NodeCommandReply } from "@steward/contracts/node-command";
import { commandSubject } from "@steward/contracts/subjects";
import { newCommandKeyPair, type CommandVerifyKey } from "@steward/contracts/command-keys";
import { putWorldSnapshot } from "@steward/world/testing";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { connectNats, openWorldBucket, type KV, type NatsConnection } from "@steward/platform/bus";
import { createRegistry, type Registry } from "@steward/platform/metrics";
import { silentLogger, type Logger } from "@steward/platform/logger";
import type { FailureLimiter } from "@steward/platform/rate-limit";
import type { ActionKind, ActionState } from "@steward/contracts/action";
import type { ServiceState, Snapshot } from "@steward/contracts/world-state";
import { seedAction, stateOf } from "@steward/actions/testing";
import { createDrillsRepository } from "@steward/actions/drills";
import { DRILL_KIND, type DrillParams, type DrillResult } from "@steward/contracts/drill";
import { createTestDatabase, startNats, type NatsServerHandle, type TestDatabase } from "@steward/testkit";
import { createExecutor, type Executor } from "../src/executor.js";
import { loadConfig, type ExecutorConfig } from "../src/config.js";

/** The bootstrap admin (credential `admin`). */
export const API_TOKEN = "test-api-token-0123456789";
/** The executor's command key pair of these tests (EXECUTOR_SIGNING_KEY is its private half). */
export const COMMAND_KEYS = newCommandKeyPair();
/** The alerter's scoped credential (`alerter`): mints button tokens and relays bot decisions, nothing else. */
export const ALERTER_TOKEN = "test-alerter-token-0123456789";

export interface Env {
  nats: NatsServerHandle;
  db: TestDatabase;
  nc: NatsConnection;
  sql: Sql;
  kv: KV;
  executors: Executor[];
  close(): Promise<void>;
}

export async function setupEnv(): Promise<Env> {
  const [nats, db] = await Promise.all([startNats(), createTestDatabase("steward_executor")]);
  const nc = await connectNats(nats.url, "executor-test");
  const sql = connectDb(db.url, { max: 4 });
  await migrate(sql);
  const kv = await openWorldBucket(nc);
  const env: Env = {
    nats,
    db,
    nc,
    sql,
    kv,
    executors: [],
    async close() {
      await Promise.allSettled(env.executors.map((e) => e.stop()));
      await nc.close().catch(() => undefined);
      await sql.end({ timeout: 2 }).catch(() => undefined);
      await db.drop().catch(() => undefined);
      await nats.stop();
    },
  };
  return env;
}

export function testConfig(env: Env, over: Record<string, string> = {}): ExecutorConfig {
  return loadConfig({
    DATABASE_URL: env.db.url,
    NATS_URL: env.nats.url,
    API_TOKEN,
    EXECUTOR_SIGNING_KEY: COMMAND_KEYS.privateKey,
    ALERTER_TOKEN,
    HTTP_PORT: "0",
    POLL_MS: "100",
    SWEEP_MS: "100",
    LEASE_MS: "2000",
    COMMAND_TIMEOUT_MS: "2000",
    VERIFY_TIMEOUT_MS: "3000",
    VERIFY_POLL_MS: "50",
    ...over,
  });
}

/** Each executor gets its own postgres pool, as two processes would. */
export async function startExecutor(env: Env, over: Record<string, string> = {}, opts: { limiter?: FailureLimiter; logger?: Logger } = {}): Promise<{ executor: Executor; url: string; sql: Sql; registry: Registry }> {
  const sql = connectDb(env.db.url, { max: 4 });
  // The factory serves no /metrics (main.ts serves them on their own listener): tests read the registry.
  const registry = createRegistry("executor", false);
  const executor = createExecutor({ config: testConfig(env, over), nc: env.nc, sql, logger: opts.logger ?? silentLogger(), registry, ...(opts.limiter ? { limiter: opts.limiter } : {}) });
  const { url } = await executor.start();
  const stop = executor.stop.bind(executor);
  const wrapped: Executor = {
    store: executor.store,
    credentials: executor.credentials,
    start: executor.start.bind(executor),
    async stop() {
      await stop();
      await sql.end({ timeout: 2 }).catch(() => undefined);
    },
  };
  env.executors.push(wrapped);
  return { executor: wrapped, url, sql, registry };
}

export interface NewAction {
  node?: string;
  service?: string;
  kind?: ActionKind;
  state?: ActionState;
  expiresInMs?: number;
  traceparent?: string | null;
}

export function insertAction(sql: Sql, a: NewAction = {}): Promise<string> {
  return seedAction(sql, a);
}

/**
 * A drill action with the params a proposal gives it and, when `result` is given, its recorded outcome (written
 * through the drills repository, the table's owner). Times in `result` default to a drill killed 40 s ago.
 */
export async function insertDrill(sql: Sql, d: { node?: string; service: string; state?: ActionState; objectiveMs?: number; result?: Partial<DrillResult> & Pick<DrillResult, "verdict" | "reason"> }): Promise<string> {
  const objective = d.objectiveMs ?? 30_000;
  const params: DrillParams = { objective_ms: objective, window_ms: objective + 60_000, approve_restart: true };
  const id = await seedAction(sql, { node: d.node ?? "node-1", service: d.service, kind: DRILL_KIND, state: d.state ?? (d.result ? "succeeded" : "pending"), reason: `restart drill of ${d.service}`, proposedBy: "ops-ann", params });
  if (d.result) {
    const started = new Date(Date.now() - 40_000).toISOString();
    const none = { started_at: started, detected_ms: null, proposed_ms: null, approved_ms: null, recovered_ms: null, restart_action_id: null, approved_by: null };
    await createDrillsRepository(sql).record({ ...none, drill_id: id, node: d.node ?? "node-1", service: d.service, objective_ms: objective, approve_restart: true, finished_at: new Date().toISOString(), ...d.result });
  }
  return id;
}

export { stateOf };

export function service(name: string, over: Partial<ServiceState> = {}): ServiceState {
  const now = new Date().toISOString();
  return { name, state: "running", health: "healthy", starts: 1, declared: true, since: now, updated_at: now, checks: { http: { ok: true, consecutive_failures: 0, at: now } }, last_event_id: randomUUID(), ...over };
}

export function snapshot(nodes: Record<string, ServiceState[]>): Snapshot {
  const now = new Date().toISOString();
  return {
    written_at: now,
    observer_id: "observer-test",
    world: {
      version: 1,
      last_seq: 1,
      events_applied: 1,
      event_time: now,
      nodes: Object.fromEntries(
        Object.entries(nodes).map(([name, svcs]) => [
          name,
          { name, status: "up" as const, last_heartbeat: now, heartbeat_interval_ms: 5000, agent_started_at: now, dropped_events: 0, host: null, services: Object.fromEntries(svcs.map((s) => [s.name, s])) },
        ]),
      ),
    },
  };
}

export async function putWorld(kv: KV, snap: Snapshot): Promise<void> {
  await putWorldSnapshot(kv, snap);
}

export interface ReceivedCommand {
  cmd: SignedNodeCommand;
  traceparent: string | undefined;
  receivedAt: Date;
}

/**
 * Plays the node-agent of `node`: checks each command like the real agent, records it, replies, and (unless told
 * otherwise) writes a world snapshot in which the service is back running and healthy, as the observer would.
 */
export function fakeAgent(env: Env, node: string, opts: { reply?: (cmd: SignedNodeCommand) => NodeCommandReply; reportsBack?: boolean; keys?: CommandVerifyKey[] } = {}) {
  const received: ReceivedCommand[] = [];
  const world = new Map<string, ServiceState>();
  let puts = Promise.resolve();
  const seen = new Set<string>();
  const sub = env.nc.subscribe(commandSubject(node), {
    callback: (_err, msg) => {
      const parsed = SignedNodeCommand.safeParse(msg.json());
      if (!parsed.success) {
        msg.respond(JSON.stringify({ ok: false, id: null, code: "invalid", message: "invalid command" }));
        return;
      }
      const cmd = parsed.data;
      received.push({ cmd, traceparent: msg.headers?.get("traceparent") || undefined, receivedAt: new Date() });
      const check = checkNodeCommand(cmd, { node, keys: opts.keys ?? [COMMAND_KEYS.signing.publicKey], now: new Date(), seen: (id) => seen.has(id) });
      seen.add(cmd.body.id);
      if (!check.ok) {
        msg.respond(JSON.stringify({ ok: false, id: cmd.body.id, code: check.code, message: check.message }));
        return;
      }
      const reply: NodeCommandReply = opts.reply?.(cmd) ?? { ok: true, id: cmd.body.id, node, service: cmd.body.service, pid: 4242, detail: `${cmd.body.op} done` };
      if (reply.ok && opts.reportsBack !== false) {
        world.set(cmd.body.service, service(cmd.body.service));
        report();
        void puts.then(() => msg.respond(JSON.stringify(reply)));
        // Heartbeats, as a real agent sends them: each restates every service with a new time, which is how the
        // executor learns a started service is still running once its settle window is over.
        heartbeat ??= setInterval(() => {
          const now = new Date().toISOString();
          for (const [name, s] of world) world.set(name, { ...s, updated_at: now });
          report();
        }, 200);
      } else {
        msg.respond(JSON.stringify(reply));
      }
    },
  });
  let heartbeat: NodeJS.Timeout | undefined;
  function report(): void {
    const snap = snapshot({ [node]: [...world.values()] });
    puts = puts.then(() => putWorld(env.kv, snap)).catch(() => undefined);
  }
  return {
    received,
    stop: () => {
      clearInterval(heartbeat);
      sub.unsubscribe();
    },
  };
}

export async function api(url: string, path: string, init: { method?: string; body?: unknown; token?: string | null; rawBody?: string } = {}): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (init.token !== null) headers["authorization"] = `Bearer ${init.token ?? API_TOKEN}`;
  const res = await fetch(url + path, { method: init.method ?? "GET", headers, body: init.rawBody ?? (init.body === undefined ? undefined : JSON.stringify(init.body)) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON (metrics) */
  }
  return { status: res.status, body };
}

/**
 * One executor serving only its API (no worker: every state a case checks is the one the API left) on its own
 * nats-server and database, for the whole test file (or describe) that calls this; read `env` and `url` in cases.
 */
export function useApiOnlyExecutor(opts: { limiter?: FailureLimiter; logger?: Logger } = {}): { env: Env; url: string } {
  const live = {} as { env: Env; url: string };
  beforeAll(async () => {
    live.env = await setupEnv();
    ({ url: live.url } = await startExecutor(live.env, { EXECUTOR_WORKER: "false" }, opts));
  });
  afterAll(async () => {
    await live.env?.close();
  });
  return live;
}
