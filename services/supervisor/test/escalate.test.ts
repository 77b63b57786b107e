import { createActionsRepository } from "@steward/actions/repository";
import { clearActions, seedAction } from "@steward/actions/testing";
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { TaskEnvelope } from "@steward/contracts/task";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { initTracing } from "@steward/platform/tracing";
import { silentLogger } from "@steward/platform/logger";
import type { Drift } from "@steward/contracts/drift";
import { createTestDatabase, type TestDatabase } from "@steward/testkit";
import type { Action } from "@steward/contracts/action";
import { DriftHistory, createEscalator, detectEscalations, failedActionEscalations, taskIdFor } from "../src/escalate.js";
import { TP, node, snapshot, svc } from "./fixtures.js";

const settings = { windowMs: 600_000, crashLoopCount: 3, healthFailCount: 3 };
const NOW = new Date("2025-01-01T00:10:00.000Z");
const at = (s: number) => new Date(NOW.getTime() - s * 1000).toISOString();

function down(since: string, kind: "down" | "unhealthy" = "down"): Drift {
  return { key: `${kind}:n1/api`, kind, node: "n1", service: "api", severity: "action", message: `api on n1 is ${kind}`, since, proposes: "restart", traceparent: TP };
}

const snap = (starts = 1) => snapshot([node("n1", [svc("api", { state: "exited", exit_code: 1, starts })])]);

describe("detectEscalations", () => {
  it("escalates a service that fails again after its restart succeeded", () => {
    const h = new DriftHistory();
    const d = down(at(30));
    h.record([d], snap(), NOW, settings.windowMs);
    const restart = { id: "a1", node: "n1", service: "api", kind: "restart", updated_at: new Date(NOW.getTime() - 60_000) };
    const [e, ...rest] = detectEscalations([d], snap(), [restart], h, NOW, settings);
    expect(rest).toEqual([]);
    expect(e).toMatchObject({ signal: "restart_failed", key: "supervisor:restart_failed:a1", evidence: { restart_action: { id: "a1" } } });
    // A restart that came after the failure explains nothing.
    const later = { ...restart, updated_at: new Date(NOW.getTime() - 10_000) };
    expect(detectEscalations([d], snap(), [later], h, NOW, settings)).toEqual([]);
  });

  it("escalates a crash loop only after several episodes within the window", () => {
    const h = new DriftHistory();
    for (const s of [300, 200]) h.record([down(at(s))], snap(), NOW, settings.windowMs);
    expect(detectEscalations([down(at(200))], snap(), [], h, NOW, settings)).toEqual([]);
    h.record([down(at(100))], snap(), NOW, settings.windowMs);
    const [e] = detectEscalations([down(at(100))], snap(), [], h, NOW, settings);
    expect(e).toMatchObject({ signal: "crash_loop", node: "n1", service: "api" });
    expect(e?.evidence["episodes"]).toHaveLength(3);
  });

  it("escalates repeated health failures", () => {
    const h = new DriftHistory();
    for (const s of [300, 200, 100]) h.record([down(at(s), "unhealthy")], snap(), NOW, settings.windowMs);
    expect(detectEscalations([down(at(100), "unhealthy")], snap(), [], h, NOW, settings)).toMatchObject([{ signal: "repeated_health_failures" }]);
  });

  it("leaves a single plain failure to the supervisor's own restart proposal", () => {
    const h = new DriftHistory();
    h.record([down(at(10))], snap(), NOW, settings.windowMs);
    expect(detectEscalations([down(at(10))], snap(), [], h, NOW, settings)).toEqual([]);
  });
});

describe("failedActionEscalations", () => {
  const action = (id: string, state: Action["state"], result: string | null): Action => ({ id, node: "n1", service: "api", kind: "restart", state, reason: "api is down", drift_key: null, proposed_by: "s", diagnosis: null, created_at: at(60), updated_at: at(30), expires_at: at(-600), result, traceparent: TP, params: {} });
  it.each<[string, Action[], { key: string; message: RegExp }[]]>([
    ["a failed action: one incident, keyed by the action", [action("a1", "failed", "the world shows api exited (exit code 3)")], [{ key: "supervisor:action_failed:a1", message: /^The restart of api on n1 failed: the world shows api exited \(exit code 3\)\./ }]],
    ["an outcome nobody knows: an incident too", [action("a2", "failed_unknown", null)], [{ key: "supervisor:action_failed:a2", message: /may or may not have run .*: no result recorded/ }]],
    ["a succeeded action: none", [action("a3", "succeeded", "ok")], []],
  ])("%s", (_n, actions, want) => {
    const got = failedActionEscalations(actions, snap());
    expect(got.map((e) => ({ key: e.key, message: e.message }))).toEqual(want.map((w) => ({ key: w.key, message: expect.stringMatching(w.message) })));
    for (const e of got) expect(e).toMatchObject({ signal: "action_failed", node: "n1", service: "api", traceparent: TP, evidence: { service_state: { state: "exited", exit_code: 1 } } });
  });
});

describe("escalator", () => {
  let db: TestDatabase;
  let sql: Sql;
  let server: Server;
  let url: string;
  const received: { headers: Record<string, unknown>; body: unknown }[] = [];

  let tracing: { shutdown: () => Promise<void> };

  beforeAll(async () => {
    tracing = initTracing({ component: "escalate-test" });
    db = await createTestDatabase("steward_escalate");
    sql = connectDb(db.url);
    await migrate(sql);
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
        received.push({ headers: req.headers, body });
        const ok = TaskEnvelope.safeParse(body).success && req.headers.authorization === "Bearer planner-token-0123456789";
        res.writeHead(ok ? 202 : 422, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const a = server.address();
    url = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`;
  });

  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await sql?.end({ timeout: 1 });
    await db?.drop();
    await tracing?.shutdown();
  });

  beforeEach(async () => {
    received.length = 0;
    await clearActions(sql);
  });

  it("sends a planner task once per incident, with evidence, idempotency key and trace context", async () => {
    const id = randomUUID();
    const succeeded = new Date(NOW.getTime() - 60_000);
    await seedAction(sql, { id, node: "n1", service: "api", kind: "restart", state: "succeeded", reason: "down", proposedBy: "supervisor", createdAt: succeeded, updatedAt: succeeded, expiresAt: NOW });
    const esc = createEscalator({ ...settings, plannerUrl: url, token: "planner-token-0123456789", logger: silentLogger() });
    const d = down(at(30));
    expect(await esc.observe({ actions: createActionsRepository(sql), drifts: [d], snapshot: snap(), now: NOW })).toHaveLength(1);
    expect(await esc.observe({ actions: createActionsRepository(sql), drifts: [d], snapshot: snap(), now: new Date(NOW.getTime() + 5000) })).toHaveLength(0);
    expect(received).toHaveLength(1);
    const env = TaskEnvelope.parse(received[0]?.body);
    expect(env).toMatchObject({ source: "supervisor", target_agent: "diagnostician", idempotency_key: `supervisor:restart_failed:${id}`, task_id: taskIdFor(`supervisor:restart_failed:${id}`), conversation_id: "supervisor:n1/api" });
    expect(env.evidence).toMatchObject({ signal: "restart_failed", drift: { key: "down:n1/api" }, restart_action: { id } });
    // The drift's trace continues: same trace id, a new parent span.
    expect(String(received[0]?.headers["traceparent"])).toContain(TP.split("-")[1]);
    expect(env.traceparent).toBe(received[0]?.headers["traceparent"]);
  });

  it("every failed action becomes one planner task, once per action, with no drift needed", async () => {
    const id = randomUUID();
    const failedAt = new Date(NOW.getTime() - 30_000);
    await seedAction(sql, { id, node: "n1", service: "api", kind: "restart", state: "failed", reason: "api is down", proposedBy: "supervisor", createdAt: failedAt, updatedAt: failedAt, expiresAt: NOW });
    const esc = createEscalator({ ...settings, plannerUrl: url, token: "planner-token-0123456789", logger: silentLogger() });
    expect(await esc.observe({ actions: createActionsRepository(sql), drifts: [], snapshot: snap(), now: NOW })).toMatchObject([{ signal: "action_failed", key: `supervisor:action_failed:${id}` }]);
    expect(await esc.observe({ actions: createActionsRepository(sql), drifts: [], snapshot: snap(), now: new Date(NOW.getTime() + 5000) })).toHaveLength(0);
    expect(received).toHaveLength(1);
    const env = TaskEnvelope.parse(received[0]?.body);
    expect(env).toMatchObject({ source: "supervisor", idempotency_key: `supervisor:action_failed:${id}`, task_id: taskIdFor(`supervisor:action_failed:${id}`), conversation_id: "supervisor:n1/api" });
    expect(env.evidence).toMatchObject({ signal: "action_failed", action: { id, kind: "restart", state: "failed" } });
  });

  it("retries next cycle when the planner is unreachable, and never throws", async () => {
    const esc = createEscalator({ ...settings, plannerUrl: "http://127.0.0.1:1", token: "planner-token-0123456789", logger: silentLogger() });
    const h = [down(at(300)), down(at(200)), down(at(100))];
    for (const d of h.slice(0, 2)) await esc.observe({ actions: createActionsRepository(sql), drifts: [d], snapshot: snap(), now: NOW });
    await expect(esc.observe({ actions: createActionsRepository(sql), drifts: [h[2] as Drift], snapshot: snap(), now: NOW })).resolves.toEqual([]);
  });
});
