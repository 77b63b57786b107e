import type { MemorySaver } from "@langchain/langgraph";
import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import { clearActions } from "@steward/actions/testing";
import { TaskDetail } from "@steward/contracts/task";
import type { DriftReport } from "@steward/contracts/drift";
import type { NodeEvent } from "@steward/contracts/events";
import type { Snapshot } from "@steward/contracts/world-state";
import { parseFleetSpec, type FleetSpec } from "@steward/fleet/fleet-spec";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { silentLogger, type Logger } from "@steward/platform/logger";
import type { FailureLimiter } from "@steward/platform/rate-limit";
import { createRegistry, type Registry } from "@steward/platform/metrics";
import { initTracing } from "@steward/platform/tracing";
import { createTestDatabase, startFakeAnthropic, startFakeOllama, waitFor, type FakeAnthropic, type FakeOllama, type TestDatabase } from "@steward/testkit";
import { loadConfig, type PlannerConfig } from "../src/config.js";
import type { EvidenceSources } from "../src/evidence.js";
import { createPlanner, type Planner } from "../src/planner.js";

/**
 * The planner's live tests share this set-up: a database and the Ollama and Anthropic stand-ins (their real wire
 * protocols) per test file, the planner's tables and the actions cleared before each case, every planner made by
 * `start` stopped after it; and the fleet, world and evidence the cases ask about.
 */

export const TOKEN = "planner-test-token-0123456789";
export const TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
export const SECRET_VALUE = "supersecretvalue-42";
export const PLAIN_ENV = "plain-env-value-xyz";
export const T0 = "2025-06-01T10:00:00.000Z";

export const SPEC_YAML = `
version: 1
secrets:
  db_password:
    stores:
      - { type: file, node: node1, path: /run/secrets/db }
nodes:
  node1:
    services:
      api:
        kind: process
        command: ["node", "api.js"]
        env:
          DB_PASSWORD: { secret: db_password }
          MODE: ${PLAIN_ENV}
      web:
        kind: process
        command: ["node", "web.js"]
  node2:
    services:
      db:
        kind: process
        command: ["postgres"]
`;

export function makeSpec(): FleetSpec {
  const r = parseFleetSpec(SPEC_YAML);
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.spec;
}

export const drift = { key: "down:node1/api", kind: "down" as const, node: "node1", service: "api", severity: "action" as const, message: "api on node1 is exited (exit code 1)", since: T0, proposes: "restart" as const };

export function makeSources(over: Partial<EvidenceSources> = {}): EvidenceSources {
  const spec = makeSpec();
  const snapshot: Snapshot = {
    world: {
      version: 1,
      last_seq: 5,
      events_applied: 5,
      event_time: T0,
      nodes: {
        node1: {
          name: "node1",
          status: "up",
          last_heartbeat: T0,
          heartbeat_interval_ms: 5000,
          agent_started_at: T0,
          dropped_events: 0,
          host: { load1: 0.1, mem_used_pct: 40, disks: [{ path: "/", used_pct: 50, free_bytes: 1e10 }], at: T0 },
          services: { api: { name: "api", state: "exited", health: "none", exit_code: 1, starts: 4, declared: true, since: T0, updated_at: T0, checks: {}, last_event_id: "ev-00000001" } },
          secrets: { db_password: { file: { status: "ok", fingerprint: "abcdef0123456789", at: T0 } } },
        },
      },
    },
    written_at: T0,
    observer_id: "obs",
  };
  const report: DriftReport = { computed_at: T0, snapshot_written_at: T0, world_seq: 5, supervisor_id: "sup", skipped: null, drifts: [drift] };
  const events: NodeEvent[] = [1, 2, 3].map((i) => ({ type: "service", id: `ev-0000000${i}`, node: "node1", ts: T0, service: "api", state: "exited", health: "none", exit_code: 1, starts: i, declared: true }));
  return {
    spec: async () => spec,
    world: async () => snapshot,
    drift: async () => report,
    events: async () => events,
    logTail: async (node, service) => ({ ok: true, node, service, text: `starting\nDB_PASSWORD=${SECRET_VALUE}\nerror: connection refused to db:5432\n`, bytes: 80, truncated: false }),
    containerInspect: async (node, service) => ({ ok: false, code: "not_compose", message: `'${service}' on node '${node}' is not a compose service` }),
    ...over,
  };
}

export interface PlannerHarness {
  db: TestDatabase;
  sql: Sql;
  ollama: FakeOllama;
  anthropic: FakeAnthropic;
}

/** Filled in by the hooks `usePlannerHarness` registers; read it inside hooks and cases. */
export const live = {} as PlannerHarness;
const planners: Planner[] = [];

/** Registers the file's set-up and clean-up hooks; call once at the top of a test file. */
export function usePlannerHarness(): PlannerHarness {
  let tracing: { shutdown: () => Promise<void> } | undefined;
  beforeAll(async () => {
    tracing = initTracing({ component: "planner-test" });
    [live.db, live.ollama, live.anthropic] = await Promise.all([createTestDatabase("steward_planner"), startFakeOllama(), startFakeAnthropic()]);
    live.sql = connectDb(live.db.url, { max: 12 });
    await migrate(live.sql);
  });
  afterAll(async () => {
    await Promise.all(planners.map((p) => p.stop()));
    await live.sql?.end({ timeout: 1 });
    await Promise.all([live.db?.drop(), live.ollama?.close(), live.anthropic?.close()]);
    await tracing?.shutdown();
  });
  beforeEach(async () => {
    await live.sql`TRUNCATE planner_task_steps, planner_model_calls, planner_proposals, planner_dead_letters, planner_cost_ledger, planner_tasks CASCADE`;
    await clearActions(live.sql);
    live.ollama.reset();
    live.ollama.setMode("up");
    live.anthropic.reset();
  });
  afterEach(async () => {
    await Promise.all(planners.splice(0).map((p) => p.stop()));
  });
  return live;
}

export function config(env: Record<string, string> = {}): PlannerConfig {
  return loadConfig({
    DATABASE_URL: live.db.url,
    API_TOKEN: TOKEN,
    FLEET_SPEC: "/nonexistent/fleet.yaml",
    HTTP_PORT: "0",
    OLLAMA_URL: live.ollama.url,
    OLLAMA_HEALTH_TIMEOUT_MS: "500",
    ANTHROPIC_BASE_URL: live.anthropic.url,
    ANTHROPIC_API_KEY: "sk-ant-test-key-0123456789abcdef",
    CLAUDE_MAX_RETRIES: "0",
    CLAUDE_MAX_TOKENS: "1000",
    WORKERS: "1",
    POLL_MS: "50",
    BACKOFF_BASE_MS: "20",
    ...env,
  });
}

export interface Started {
  planner: Planner;
  url: string;
  /** The factory serves no /metrics (main.ts serves them on their own listener): tests read the registry. */
  registry: Registry;
}

export async function start(env: Record<string, string> = {}, opts: { sources?: EvidenceSources; checkpointer?: MemorySaver; clock?: () => Date; limiter?: FailureLimiter; logger?: Logger } = {}): Promise<Started> {
  const registry = createRegistry("planner-test", false);
  const planner = createPlanner({
    config: config(env),
    sql: live.sql,
    logger: opts.logger ?? silentLogger(),
    ...(opts.limiter ? { limiter: opts.limiter } : {}),
    registry,
    sources: opts.sources ?? makeSources(),
    ...(opts.checkpointer ? { checkpointer: opts.checkpointer } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  planners.push(planner);
  const { port } = await planner.start();
  return { planner, url: `http://127.0.0.1:${port}`, registry };
}

export interface Reply {
  created?: boolean;
  task?: { id: string; state: string };
  tasks?: { id: string }[];
  error?: Record<string, unknown>;
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Reply }> {
  const res = await fetch(`${url}/inbox`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}`, ...headers }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Reply };
}

export async function get(url: string, path: string): Promise<{ status: number; json: Reply }> {
  const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, json: (await res.json()) as Reply };
}

export async function done(url: string, id: string): Promise<TaskDetail> {
  return waitFor(`task ${id} to finish`, async () => {
    const r = await get(url, `/tasks/${encodeURIComponent(id)}`);
    return r.status === 200 && ["succeeded", "failed", "dead", "expired"].includes(r.json.task?.state ?? "") ? TaskDetail.parse(r.json) : undefined;
  }, 20_000, 50);
}

export const envelope = (task_id: string, over: Record<string, unknown> = {}) => ({ task_id, content: "why does api keep restarting?", source: "cli", user: "op", ...over });
export const answer = (proposals: unknown[], text = "api cannot reach the database") => ({ content: JSON.stringify({ diagnosis: text, answer: `It crashes: ${text}.`, proposals }) });
export const allOllamaText = () => JSON.stringify(live.ollama.requests.map((r) => r.body));
