/**
 * One trace from `steward task add` to the node-agent command that carried out the planner's proposal:
 * cli.task_add → planner.inbox → planner.queue.enqueue → planner.worker.run → (evidence, the model call)
 * → planner.propose_action → executor.run → executor.command → node-agent.command.
 * Every component runs in this process (the CLI through runCli), so an in-memory exporter sees every span.
 * The supervisor is left out on purpose: it would propose the same restart first, and the action would then
 * carry the supervisor's trace instead of the CLI's.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { connectNats, ensureStreams, type NatsConnection } from "@steward/platform/bus";
import { createRegistry } from "@steward/platform/metrics";
import { initTracing } from "@steward/platform/tracing";
import { silentLogger } from "@steward/platform/logger";
import { TaskDetail } from "@steward/contracts/task";
import { createNodeAgent, loadConfig as loadAgentConfig } from "@steward/node-agent";
import { createObserver, loadConfig as loadObserverConfig } from "@steward/observer";
import { createExecutor, loadConfig as loadExecutorConfig } from "@steward/executor";
import { createPlanner, loadConfig as loadPlannerConfig } from "@steward/planner";
import { runCli } from "@steward/cli";
import { createTestDatabase, freePort, startFakeOllama, startNats, waitFor, type FakeOllama, type NatsServerHandle, type TestDatabase } from "@steward/testkit";

const exporter = new InMemorySpanExporter();
const tracing = initTracing({ serviceName: "steward-trace-planner-test", exporter });

let nats: NatsServerHandle;
let db: TestDatabase;
let ollama: FakeOllama;
let dir = "";
let nc: NatsConnection;
let sql: Sql;
const stops: (() => Promise<void>)[] = [];
const token = randomBytes(24).toString("hex");
const fleetKey = randomBytes(24).toString("hex");
let apiUrl = "";
let plannerUrl = "";
let agent: ReturnType<typeof createNodeAgent>;

beforeAll(async () => {
  nats = await startNats();
  db = await createTestDatabase();
  ollama = await startFakeOllama();
  dir = await mkdtemp(join(tmpdir(), "steward-trace-planner-"));
  nc = await connectNats(nats.url, "trace-planner-test");
  sql = connectDb(db.url);
  await ensureStreams(nc);
  await migrate(sql);
  const port = await freePort();
  const fleet = join(dir, "fleet.yaml");
  await writeFile(
    fleet,
    `version: 1\nnodes:\n  t1:\n    services:\n      web:\n        kind: process\n        command: [${JSON.stringify(process.execPath)}, "-e", "require('http').createServer((q,s)=>s.end('ok')).listen(${port}, '127.0.0.1')"]\n        health:\n          - type: http\n            url: http://127.0.0.1:${port}/\n            interval: 300ms\n            retries: 1\n`,
  );
  const common = { NATS_URL: nats.url, LOG_LEVEL: "silent" };
  const observer = createObserver({ config: loadObserverConfig({ ...common, SNAPSHOT_PATH: join(dir, "world.json"), SNAPSHOT_DEBOUNCE_MS: "20" }), nc, logger: silentLogger(), registry: createRegistry("observer", false) });
  await observer.start();
  stops.push(() => observer.stop());
  const executor = createExecutor({ config: loadExecutorConfig({ ...common, DATABASE_URL: db.url, API_TOKEN: token, FLEET_KEY: fleetKey, HTTP_PORT: "0", VERIFY_TIMEOUT_MS: "20000" }), nc, sql, logger: silentLogger(), registry: createRegistry("executor", false) });
  apiUrl = (await executor.start()).url;
  stops.push(() => executor.stop());
  agent = createNodeAgent({ config: loadAgentConfig({ ...common, NODE_NAME: "t1", FLEET_SPEC: fleet, FLEET_KEY: fleetKey, HEARTBEAT_MS: "500", LOG_DIR: join(dir, "logs"), METRICS_PORT: "0" }), nc, logger: silentLogger(), registry: createRegistry("node-agent", false) });
  await agent.start();
  stops.push(() => agent.stop());
  const planner = createPlanner({
    config: loadPlannerConfig({ ...common, DATABASE_URL: db.url, API_TOKEN: token, FLEET_SPEC: fleet, HTTP_PORT: "0", OLLAMA_URL: ollama.url, CLAUDE_ENABLED: "false", WORKERS: "1", POLL_MS: "50" }),
    sql,
    nc,
    logger: silentLogger(),
    registry: createRegistry("planner", false),
  });
  plannerUrl = `http://127.0.0.1:${(await planner.start()).port}`;
  stops.push(() => planner.stop());
});

afterAll(async () => {
  for (const s of stops.reverse()) await s().catch(() => undefined);
  await sql?.end();
  await nc?.close();
  await db?.drop();
  await nats?.stop();
  await ollama?.close();
  await tracing.shutdown();
  await rm(dir, { recursive: true, force: true });
});

describe("trace context from the CLI through the planner", () => {
  it("steward task add → planner → proposed action → executor → node-agent is one trace with no orphan span", async () => {
    await waitFor("web healthy", () => agent.status().find((x) => x.service === "web")?.health === "healthy", 20_000);
    ollama.script({ content: JSON.stringify({ diagnosis: "web serves stale data since its config changed", answer: "Restart web on t1.", proposals: [{ kind: "restart", node: "t1", service: "web", reason: "reload the changed config" }] }), promptEvalCount: 900, evalCount: 60 });
    exporter.reset();

    const out: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(s), env: { STEWARD_PLANNER_URL: plannerUrl, STEWARD_API_URL: apiUrl, STEWARD_TOKEN: token, STEWARD_USER: "tracer" } };
    expect(await runCli(["task", "add", "--json", "--timeout", "30", "why", "does", "t1/web", "serve", "stale", "data?"], io), out.join("\n")).toBe(0);
    const detail = TaskDetail.parse(JSON.parse(out.filter((l) => l.startsWith("{")).at(-1)!));
    const proposal = detail.proposals.find((p) => p.accepted && p.action_id);
    expect(proposal, JSON.stringify(detail.proposals)).toBeDefined();
    const actionId = proposal!.action_id!;

    expect(await runCli(["approve", actionId.slice(0, 8)], io), out.join("\n")).toBe(0);
    await waitFor("action succeeded", async () => {
      const r = await fetch(`${apiUrl}/api/actions/${actionId}`, { headers: { authorization: `Bearer ${token}` } });
      const state = ((await r.json()) as { action: { state: string } }).action.state;
      if (state === "failed" || state === "failed_unknown") throw new Error(`action ${state}`);
      return state === "succeeded";
    }, 30_000, 100);

    const root = exporter.getFinishedSpans().find((s) => s.name === "cli.task_add");
    expect(root).toBeDefined();
    const traceId = root!.spanContext().traceId;
    const spans: ReadableSpan[] = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const names = new Set(spans.map((s) => s.name));
    for (const n of ["cli.task_add", "planner.inbox", "planner.queue.enqueue", "planner.worker.run", "chat llama3.1:8b", "planner.propose_action", "executor.run", "executor.command", "node-agent.command"]) {
      expect(names, `span ${n} in the trace; got ${[...names].join(", ")}`).toContain(n);
    }
    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
    // Exactly one root (the CLI); every other span's parent was exported in the same trace.
    expect(spans.filter((s) => !parentOf(s)).map((s) => s.name)).toEqual(["cli.task_add"]);
    for (const s of spans) {
      const p = parentOf(s);
      if (p) expect(byId.has(p), `parent of ${s.name} is exported`).toBe(true);
    }
    const chain = (name: string): string[] => {
      const path: string[] = [];
      let s = spans.find((x) => x.name === name);
      while (s) {
        path.unshift(s.name);
        const p = parentOf(s);
        s = p ? byId.get(p) : undefined;
      }
      return path;
    };
    const cmd = chain("node-agent.command");
    const order = ["cli.task_add", "planner.inbox", "planner.queue.enqueue", "planner.worker.run", "planner.propose_action", "executor.run", "executor.command", "node-agent.command"];
    expect(cmd.filter((n) => order.includes(n))).toEqual(order);
    // The model call hangs off the worker, with the GenAI attributes.
    expect(chain("chat llama3.1:8b")).toContain("planner.worker.run");
    const call = spans.find((s) => s.name === "chat llama3.1:8b")!;
    expect(call.attributes["gen_ai.system"]).toBe("ollama");
    expect(call.attributes["gen_ai.usage.input_tokens"]).toBeGreaterThan(0);
    expect(call.attributes["gen_ai.usage.output_tokens"]).toBe(60);
  });
});
