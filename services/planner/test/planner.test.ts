import { MemorySaver } from "@langchain/langgraph";
import { clearActions, actionsOf, auditOf, only } from "@steward/actions/testing";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CostReport, TaskDetail } from "@steward/contracts/task";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { createRegistry } from "@steward/platform/metrics";
import { initTracing } from "@steward/platform/tracing";
import { parseFleetSpec, type FleetSpec } from "@steward/fleet/fleet-spec";
import { silentLogger } from "@steward/platform/logger";
import type { DriftReport } from "@steward/contracts/drift";
import type { NodeEvent } from "@steward/contracts/events";
import type { Snapshot } from "@steward/contracts/world-state";
import { createTestDatabase, startFakeAnthropic, startFakeOllama, waitFor, type FakeAnthropic, type FakeOllama, type TestDatabase } from "@steward/testkit";
import { createClaudeBackend } from "../src/backends.js";
import { loadConfig, type PlannerConfig } from "../src/config.js";
import { createCostLedger, utcDay } from "../src/cost-ledger.js";
import type { EvidenceSources } from "../src/evidence.js";
import { createPlannerMetrics } from "../src/metrics.js";
import { createModelCaller } from "../src/model-caller.js";
import { createPlanner, type Planner } from "../src/planner.js";
import { buildPrompt } from "../src/prompt.js";
import { context } from "@steward/platform/tracing";

const TOKEN = "planner-test-token-0123456789";
const TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const SECRET_VALUE = "supersecretvalue-42";
const PLAIN_ENV = "plain-env-value-xyz";
const T0 = "2025-06-01T10:00:00.000Z";

const SPEC_YAML = `
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

function makeSpec(): FleetSpec {
  const r = parseFleetSpec(SPEC_YAML);
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.spec;
}

const drift = { key: "down:node1/api", kind: "down" as const, node: "node1", service: "api", severity: "action" as const, message: "api on node1 is exited (exit code 1)", since: T0, proposes: "restart" as const };

function makeSources(over: Partial<EvidenceSources> = {}): EvidenceSources {
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
    ...over,
  };
}

let db: TestDatabase;
let sql: Sql;
let ollama: FakeOllama;
let anthropic: FakeAnthropic;
let tracing: { shutdown: () => Promise<void> };
const planners: Planner[] = [];

beforeAll(async () => {
  tracing = initTracing({ component: "planner-test" });
  [db, ollama, anthropic] = await Promise.all([createTestDatabase("steward_planner"), startFakeOllama(), startFakeAnthropic()]);
  sql = connectDb(db.url, { max: 12 });
  await migrate(sql);
});

afterAll(async () => {
  await Promise.all(planners.map((p) => p.stop()));
  await sql?.end({ timeout: 1 });
  await Promise.all([db?.drop(), ollama?.close(), anthropic?.close()]);
  await tracing?.shutdown();
});

beforeEach(async () => {
  await sql`TRUNCATE planner_task_steps, planner_model_calls, planner_proposals, planner_dead_letters, planner_cost_ledger, planner_tasks CASCADE`;
  await clearActions(sql);
  ollama.reset();
  ollama.setMode("up");
  anthropic.reset();
});

afterEach(async () => {
  await Promise.all(planners.splice(0).map((p) => p.stop()));
});

function config(env: Record<string, string> = {}): PlannerConfig {
  return loadConfig({
    DATABASE_URL: db.url,
    API_TOKEN: TOKEN,
    FLEET_SPEC: "/nonexistent/fleet.yaml",
    HTTP_PORT: "0",
    OLLAMA_URL: ollama.url,
    OLLAMA_HEALTH_TIMEOUT_MS: "500",
    ANTHROPIC_BASE_URL: anthropic.url,
    ANTHROPIC_API_KEY: "sk-ant-test-key-0123456789abcdef",
    CLAUDE_MAX_RETRIES: "0",
    CLAUDE_MAX_TOKENS: "1000",
    WORKERS: "1",
    POLL_MS: "50",
    BACKOFF_BASE_MS: "20",
    ...env,
  });
}

interface Started {
  planner: Planner;
  url: string;
}

async function start(env: Record<string, string> = {}, opts: { sources?: EvidenceSources; checkpointer?: MemorySaver; clock?: () => Date } = {}): Promise<Started> {
  const planner = createPlanner({
    config: config(env),
    sql,
    logger: silentLogger(),
    registry: createRegistry("planner-test", false),
    sources: opts.sources ?? makeSources(),
    ...(opts.checkpointer ? { checkpointer: opts.checkpointer } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  planners.push(planner);
  const { port } = await planner.start();
  return { planner, url: `http://127.0.0.1:${port}` };
}

interface Reply {
  created?: boolean;
  task?: { id: string; state: string };
  tasks?: { id: string }[];
  error?: Record<string, unknown>;
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Reply }> {
  const res = await fetch(`${url}/inbox`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}`, ...headers }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Reply };
}

async function get(url: string, path: string): Promise<{ status: number; json: Reply }> {
  const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, json: (await res.json()) as Reply };
}

async function done(url: string, id: string): Promise<TaskDetail> {
  return waitFor(`task ${id} to finish`, async () => {
    const r = await get(url, `/tasks/${encodeURIComponent(id)}`);
    return r.status === 200 && ["succeeded", "failed", "dead", "expired"].includes(r.json.task?.state ?? "") ? TaskDetail.parse(r.json) : undefined;
  }, 20_000, 50);
}

const envelope = (task_id: string, over: Record<string, unknown> = {}) => ({ task_id, content: "why does api keep restarting?", source: "cli", user: "op", ...over });
const answer = (proposals: unknown[], text = "api cannot reach the database") => ({ content: JSON.stringify({ diagnosis: text, answer: `It crashes: ${text}.`, proposals }) });
const allOllamaText = () => JSON.stringify(ollama.requests.map((r) => r.body));

describe("inbox", () => {
  it("authenticates, answers 422 naming each invalid field, and counts rejections", async () => {
    const { url } = await start({ WORKERS: "0" });
    expect((await post(url, envelope("t1"), { authorization: "Bearer wrong" })).status).toBe(401);
    const cases: [Record<string, unknown>, string][] = [
      [{ task_id: " " }, "task_id"],
      [{ content: "  " }, "content"],
      [{ ttl_s: 0 }, "ttl_s"],
      [{ idempotency_key: "" }, "idempotency_key"],
      [{ target_agent: "root-shell" }, "target_agent"],
      [{ source: "carrier-pigeon" }, "source"],
    ];
    for (const [over, field] of cases) {
      const r = await post(url, envelope("t-bad", over));
      expect(r.status, field).toBe(422);
      expect(r.json.error).toMatchObject({ code: "invalid", field });
    }
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/steward_planner_inbox_rejected_total\{reason="blank_task_id".*\} 1/);
    expect(metrics).toMatch(/steward_planner_inbox_rejected_total\{reason="unauthorized".*\} 1/);
    expect((await get(url, "/tasks")).json.tasks).toEqual([]);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await get(url, "/tasks/nope")).status).toBe(404);
    expect(CostReport.parse((await get(url, "/cost")).json).caps.global_day_usd).toBe(30);
  });

  it("refuses what it could not store with a 422 naming the field, while valid requests sent at the same moment succeed", async () => {
    const { url } = await start({ WORKERS: "0" });
    let deep: unknown = "leaf";
    for (let i = 0; i < 3000; i++) deep = { a: deep };
    const bad: [Record<string, unknown>, string][] = [
      [{ ttl_s: 1e15 }, "ttl_s"],
      [{ content: "why\u0000?" }, "content"],
      [{ user: "op\u0000" }, "user"],
      [{ evidence: { log: "x\uD800y" } }, "evidence.log"],
      [{ evidence: deep }, "evidence"],
    ];
    const replies = await Promise.all([
      ...bad.map(([over], i) => post(url, envelope(`t-lim-${i}`, over))),
      ...Array.from({ length: 5 }, (_, i) => post(url, envelope(`t-ok-${i}`))),
    ]);
    bad.forEach(([, field], i) => {
      expect(replies[i]?.status, field).toBe(422);
      expect(String(replies[i]?.json.error?.["field"]), field).toMatch(new RegExp(`^${field.replace(".", "\\.")}`));
    });
    for (const r of replies.slice(bad.length)) expect(r.status).toBe(202);
    expect((await get(url, "/tasks")).json.tasks?.map((t) => t.id).sort()).toEqual(["t-ok-0", "t-ok-1", "t-ok-2", "t-ok-3", "t-ok-4"]);
  });

  it("returns the existing task for a repeated idempotency key and runs it once", async () => {
    ollama.script(answer([]));
    const { url } = await start();
    const a = await post(url, envelope("t-1", { idempotency_key: "k1" }));
    const b = await post(url, envelope("t-2", { idempotency_key: "k1" }));
    expect(a.status).toBe(202);
    expect(a.json).toMatchObject({ created: true, task: { id: "t-1", state: "queued" } });
    expect(b.status).toBe(200);
    expect(b.json).toMatchObject({ created: false, task: { id: "t-1" } });
    await done(url, "t-1");
    expect((await post(url, envelope("t-1"))).json.created).toBe(false);
    expect(ollama.chats()).toHaveLength(1);
    expect((await get(url, "/tasks")).json.tasks?.map((t) => t.id)).toEqual(["t-1"]);
  });
});

describe("diagnosis", () => {
  it("serves a task locally, proposes only catalog actions as pending with the diagnosis, and keeps secrets out of prompts", async () => {
    ollama.script(
      answer([
        { kind: "restart", node: "node1", service: "api", reason: "crashed on db connection" },
        { kind: "rm -rf /", node: "node1", service: "api", reason: "clean up" },
        { kind: "restart", node: "node1", service: "ghost", reason: "?" },
        { kind: "stop", node: "node9", service: "api", reason: "?" },
      ]),
    );
    const { url } = await start();
    expect((await post(url, envelope("t-local"), { traceparent: TP })).status).toBe(202);
    const d = await done(url, "t-local");
    expect(d.task).toMatchObject({ state: "succeeded", agent: "diagnostician", model_groups: ["default"], cost_usd: 0 });
    expect(d.calls).toMatchObject([{ provider: "ollama", model_group: "default", model: "llama3.1:8b", decision: "local", reason: "within_context" }]);
    expect(d.proposals.filter((p) => p.accepted)).toHaveLength(1);
    expect(d.proposals.filter((p) => !p.accepted).map((p) => p.reason)).toEqual([
      expect.stringContaining("not in the action catalog"),
      expect.stringContaining("service 'ghost' is not declared"),
      expect.stringContaining("node 'node9' is not declared"),
    ]);
    const actions = await actionsOf(sql);
    expect(actions).toHaveLength(1);
    expect(actions[0]).toMatchObject({ node: "node1", service: "api", kind: "restart", state: "pending", proposed_by: "planner", task_id: "t-local", diagnosis: "api cannot reach the database" });
    expect(String(actions[0]?.["traceparent"])).toContain("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(only(await auditOf(sql), "actor", "channel", "to_state")).toEqual([{ actor: "planner", channel: "system", to_state: "pending" }]);
    expect(d.proposals.find((p) => p.accepted)?.action_id).toBe(actions[0]?.["id"]);
    // Evidence reached the model; secrets and env values did not.
    const sent = allOllamaText();
    expect(sent).toContain("connection refused");
    expect(sent).not.toContain(SECRET_VALUE);
    expect(sent).not.toContain(PLAIN_ENV);
    expect(sent).not.toContain("abcdef0123456789");
    expect(ollama.chats()[0]?.stream).toBe(true);
    expect(ollama.chats()[0]?.format).toMatchObject({ type: "object" });
    expect(anthropic.requests).toHaveLength(0);
    expect(d.task.answer).toContain("Proposed actions");
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/steward_planner_overhead_seconds_count\{[^}]*\} 1/);
  });

  it("yields no action for a malformed model answer", async () => {
    ollama.script({ content: "Sure! I would restart everything with rm -rf" });
    const { url } = await start();
    await post(url, envelope("t-bad-json"));
    const d = await done(url, "t-bad-json");
    expect(d.task.state).toBe("succeeded");
    expect(d.task.answer).toContain("could not be used");
    expect(d.proposals).toEqual([]);
    expect(await actionsOf(sql)).toHaveLength(0);
  });

  it("escalates a context overflow to Claude and records the cost", async () => {
    anthropic.script({ json: { diagnosis: "db down", answer: "The database is down.", proposals: [{ kind: "restart", node: "node2", service: "db", reason: "db exited" }] }, inputTokens: 1200, outputTokens: 100 });
    const { url } = await start({ MODEL_GROUPS: JSON.stringify({ tiny: { model: "llama3.1:8b", num_ctx: 1024, escalate_above_tokens: 500 } }) });
    await post(url, envelope("t-big"));
    const d = await done(url, "t-big");
    expect(ollama.chats()).toHaveLength(0);
    expect(anthropic.messages()).toHaveLength(1);
    expect(anthropic.messages()[0]?.tool_choice).toMatchObject({ type: "tool" });
    const cost = (1200 * 3 + 100 * 15) / 1e6;
    expect(d.calls).toMatchObject([{ provider: "anthropic", model_group: "claude", decision: "claude", reason: "context_overflow", input_tokens: 1200, output_tokens: 100, cost_usd: cost }]);
    expect(d.task.model_groups).toEqual(["claude"]);
    expect(await sql`SELECT state, actual_usd::float AS usd FROM planner_cost_ledger`).toEqual([{ state: "settled", usd: cost }]);
    const report = CostReport.parse((await get(url, "/cost")).json);
    expect(report.today.global.usd).toBeCloseTo(cost);
    expect(report.by_source).toEqual([{ source: "cli", usd: cost, calls: 1 }]);
    expect(report.headroom.global_day_usd).toBeCloseTo(30 - cost);
    expect(JSON.stringify(anthropic.requests.map((r) => r.body))).not.toContain(SECRET_VALUE);
  });

  it("falls back to Claude when the local model is down", async () => {
    ollama.setMode("down");
    const { url } = await start();
    await post(url, envelope("t-down"));
    const d = await done(url, "t-down");
    expect(d.calls).toMatchObject([{ provider: "anthropic", reason: "local_down" }]);
  });

  it("degrades to the rule-based diagnoser when the local model is down and Claude is off, and says so", async () => {
    ollama.setMode("down");
    const { url } = await start({ CLAUDE_ENABLED: "false" });
    await post(url, envelope("t-rules"));
    const d = await done(url, "t-rules");
    expect(d.calls).toMatchObject([{ provider: "rules", model_group: "rules", decision: "rules", reason: "claude_disabled" }]);
    expect(d.task.answer).toContain("No model could be used");
    expect(d.task.answer).toContain("crash_loop");
    expect(d.proposals).toMatchObject([{ action_kind: "restart", node: "node1", service: "api", accepted: true }]);
    expect(anthropic.requests).toHaveLength(0);
  });

  it("falls back when Claude is overloaded, releasing the reservation", async () => {
    ollama.setMode("down");
    anthropic.script({ error: "overloaded" });
    const { url } = await start();
    await post(url, envelope("t-529"));
    const d = await done(url, "t-529");
    expect(anthropic.messages()).toHaveLength(1);
    expect(d.calls).toMatchObject([{ provider: "rules", reason: "claude_unavailable" }]);
    expect(await sql`SELECT state FROM planner_cost_ledger`).toEqual([{ state: "released" }]);
  });

  it("never lets a restricted task reach the Anthropic server", async () => {
    const { url } = await start({ MODEL_GROUPS: JSON.stringify({ tiny: { model: "llama3.1:8b", num_ctx: 1024, escalate_above_tokens: 500 } }) });
    ollama.script(answer([]));
    await post(url, envelope("t-r1", { restricted: true }));
    const d1 = await done(url, "t-r1");
    expect(d1.calls).toMatchObject([{ provider: "ollama", reason: "restricted" }]);
    // Trimmed to fit the local group.
    expect(JSON.stringify(ollama.chats()[0]?.messages).length / 4).toBeLessThan(1024);
    ollama.setMode("down");
    await post(url, envelope("t-r2", { restricted: true }));
    const d2 = await done(url, "t-r2");
    expect(d2.calls).toMatchObject([{ provider: "rules", reason: "restricted" }]);
    expect(anthropic.requests).toHaveLength(0);
  });

  it("a conversation with a restricted turn, then an unrestricted follow-up while Claude is enabled: the Anthropic stand-in receives no request containing restricted text (question, attached evidence, tool output, the answer drawn from them)", async () => {
    const RESTRICTED_TEXT = "vault passphrase hint: blue-heron-1187";
    const RESTRICTED_EVIDENCE = "customer ledger row 77-ALPHA-QUINCE";
    const RESTRICTED_LOG = "payroll export path /srv/hr/salaries-2026.csv";
    const RESTRICTED_ANSWER = "the restricted answer names ledger 77-ALPHA-QUINCE";
    // Tool output gathered for the restricted task: the service's log tail.
    const sources = makeSources({ logTail: async (node, service) => ({ ok: true, node, service, text: `starting\n${RESTRICTED_LOG}\nerror: connection refused\n`, bytes: 90, truncated: false }) });
    // No circuit: each call asks Ollama again, so the test can take it down and bring it back.
    const { url } = await start({ OLLAMA_CIRCUIT_MS: "1" }, { sources });
    ollama.script(answer([], RESTRICTED_ANSWER));
    await post(url, envelope("cr-1", { conversation_id: "conv-r", restricted: true, content: `why is api down? ${RESTRICTED_TEXT}`, evidence: { note: RESTRICTED_EVIDENCE } }));
    expect((await done(url, "cr-1")).calls).toMatchObject([{ provider: "ollama" }]);
    // The local model did see all of it: the texts were in play, so their absence below means something.
    for (const t of [RESTRICTED_TEXT, RESTRICTED_EVIDENCE, RESTRICTED_LOG]) expect(allOllamaText()).toContain(t);
    // The follow-up itself is not restricted, Claude is enabled and the local model is down: still local-only.
    ollama.setMode("down");
    await post(url, envelope("cr-2", { conversation_id: "conv-r", content: "and what should I do now?" }));
    const d2 = await done(url, "cr-2");
    expect(d2.calls).toMatchObject([{ provider: "rules", reason: "restricted" }]);
    expect(d2.steps.map((s) => s.message)).toContain("local only: this conversation holds restricted turns");
    // With the local model back, the follow-up is served locally, history included.
    ollama.setMode("up");
    ollama.script(answer([]));
    await post(url, envelope("cr-3", { conversation_id: "conv-r", content: "is it fixed?" }));
    expect((await done(url, "cr-3")).calls).toMatchObject([{ provider: "ollama" }]);
    const lastLocal = JSON.stringify(ollama.chats().at(-1)?.messages);
    expect(lastLocal).toContain(RESTRICTED_TEXT);
    expect(lastLocal).toContain(RESTRICTED_ANSWER);
    const toClaude = JSON.stringify(anthropic.requests.map((r) => r.body));
    for (const t of [RESTRICTED_TEXT, RESTRICTED_EVIDENCE, RESTRICTED_LOG, RESTRICTED_ANSWER]) expect(toClaude).not.toContain(t);
    expect(anthropic.requests).toHaveLength(0);
    // A conversation without restricted turns still escalates: the check is on the data, not a blanket rule.
    ollama.setMode("down");
    anthropic.script({ json: { diagnosis: "d", answer: "a", proposals: [] } });
    await post(url, envelope("cu-1", { conversation_id: "conv-u", content: "why is web slow?" }));
    expect((await done(url, "cu-1")).calls[0]?.provider).toBe("anthropic");
  });

  it("continues a conversation across tasks", async () => {
    ollama.script(answer([], "first diagnosis: the db port is closed"), answer([]));
    const { url } = await start();
    await post(url, envelope("c-1", { conversation_id: "conv-1", content: "why is api down?" }));
    await done(url, "c-1");
    await post(url, envelope("c-2", { conversation_id: "conv-1", content: "and what should I do now?" }));
    await done(url, "c-2");
    const second = JSON.stringify(ollama.chats()[1]?.messages);
    expect(second).toContain("why is api down?");
    expect(second).toContain("first diagnosis: the db port is closed");
    expect((await get(url, "/tasks?conversation_id=conv-1")).json.tasks?.map((t) => t.id)).toEqual(["c-2", "c-1"]);
  });

  it("runs tasks on several workers without running any twice", async () => {
    const { url } = await start({ WORKERS: "3" });
    for (let i = 0; i < 6; i++) await post(url, envelope(`w-${i}`, { content: `question ${i} about api` }));
    for (let i = 0; i < 6; i++) expect((await done(url, `w-${i}`)).task.state).toBe("succeeded");
    expect(ollama.chats()).toHaveLength(6);
  });
});

describe("queue", () => {
  it("expires a task past its TTL to the dead-letter table", async () => {
    let now = Date.now();
    const { url, planner } = await start({ WORKERS: "0" }, { clock: () => new Date(now) });
    await post(url, envelope("t-ttl", { ttl_s: 1 }));
    now += 2000;
    expect(await planner.sweep()).toEqual({ expired: ["t-ttl"], dead: [] });
    expect((await get(url, "/tasks/t-ttl")).json.task?.state).toBe("expired");
    expect(await planner.store.deadLetter("t-ttl")).toMatchObject({ state: "expired", reason: "ttl_expired" });
    expect(ollama.chats()).toHaveLength(0);
  });

  it("retries with backoff, then dead-letters with the reason", async () => {
    class BrokenSaver extends MemorySaver {
      override async put(): Promise<never> {
        throw new Error("checkpoint store unavailable");
      }
    }
    const { url, planner } = await start({ MAX_ATTEMPTS: "2" }, { checkpointer: new BrokenSaver() });
    await post(url, envelope("t-dead"));
    const d = await done(url, "t-dead");
    expect(d.task).toMatchObject({ state: "dead", attempts: 2 });
    expect(d.steps.filter((s) => s.kind === "error").map((s) => s.message)).toEqual([expect.stringContaining("retrying at"), expect.stringContaining("dead-lettered")]);
    expect(await planner.store.deadLetter("t-dead")).toMatchObject({ state: "dead", reason: "attempts_exhausted", detail: expect.stringContaining("checkpoint store unavailable") });
  });
});

describe("cost caps", () => {
  it("200 concurrent escalations never take spend past any cap", async () => {
    const caps = { perTaskUsd: 0.05, perAgentDayUsd: 0.2, globalDayUsd: 0.3 };
    const ledger = createCostLedger(sql, caps);
    const cfg = config({ MODEL_GROUPS: JSON.stringify({ tiny: { model: "llama3.1:8b", num_ctx: 1024, escalate_above_tokens: 100 } }) });
    anthropic.reset();
    const caller = createModelCaller({
      config: cfg,
      local: { health: async () => "up", chat: async () => ({ text: answer([]).content, inputTokens: 1, outputTokens: 1, model: "llama3.1:8b" }), trip: () => undefined },
      claude: createClaudeBackend({ apiKey: "sk-ant-test-key-0123456789abcdef", baseUrl: anthropic.url, model: "claude-test", maxRetries: 0, timeoutMs: 10_000 }),
      ledger,
      store: { addCall: async () => undefined, addStep: async () => undefined },
      metrics: createPlannerMetrics(createRegistry("cap-test", false)),
      logger: silentLogger(),
    });
    const prompt = () => buildPrompt("diagnostician", "x".repeat(2000), [], null);
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, (_, i) => caller.call({ taskId: `task-${i % 20}`, agent: i % 2 ? "diagnostician" : "operator-answerer", source: "api", restricted: false, parent: context.active() }, prompt)),
    );
    const claudeServed = outcomes.filter((o) => o.served === "model" && o.provider === "anthropic").length;
    expect(claudeServed).toBeGreaterThan(0);
    expect(claudeServed).toBeLessThan(200);
    expect(anthropic.messages()).toHaveLength(claudeServed);
    const day = utcDay(new Date());
    const [g] = await sql<{ usd: number }[]>`SELECT coalesce(sum(coalesce(actual_usd, reserved_usd)), 0)::float AS usd FROM planner_cost_ledger WHERE state <> 'released' AND day = ${day}`;
    const perAgent = await sql<{ usd: number }[]>`SELECT sum(actual_usd)::float AS usd FROM planner_cost_ledger WHERE state = 'settled' GROUP BY agent`;
    const perTask = await sql<{ usd: number }[]>`SELECT sum(actual_usd)::float AS usd FROM planner_cost_ledger WHERE state = 'settled' GROUP BY task_id`;
    expect(g?.usd).toBeLessThanOrEqual(caps.globalDayUsd);
    for (const a of perAgent) expect(a.usd).toBeLessThanOrEqual(caps.perAgentDayUsd);
    for (const t of perTask) expect(t.usd).toBeLessThanOrEqual(caps.perTaskUsd);
    expect(await sql`SELECT id FROM planner_cost_ledger WHERE state = 'reserved'`).toHaveLength(0);
    // The refused ones fell back to the local model with the reason.
    expect(outcomes.some((o) => o.served === "model" && o.provider === "ollama" && o.route.reason === "budget_exhausted")).toBe(true);
  });
});
