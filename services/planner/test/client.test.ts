import { MemorySaver } from "@langchain/langgraph";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskEnvelope } from "@steward/contracts/task";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { createRegistry } from "@steward/platform/metrics";
import { silentLogger } from "@steward/platform/logger";
import { createTestDatabase, freePort, importGraph, listenOnLoopback, readJsonLoose, type TestDatabase } from "@steward/testkit";
import { ApiBadResponse, ApiError, ApiUnreachable, createPlannerClient } from "../src/client.js";
import { loadConfig } from "../src/config.js";
import { createPlanner, type Planner } from "../src/planner.js";

const TOKEN = "planner-client-token-0123456789";
const TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

const envelope = (task_id: string, over: Partial<TaskEnvelope> = {}): TaskEnvelope => ({
  task_id,
  content: "why does api keep restarting?",
  source: "cli",
  user: "op",
  restricted: false,
  ...over,
});

const noSources = {
  spec: () => Promise.reject(new Error("not in this test")),
  world: async () => undefined,
  drift: async () => undefined,
  events: async () => [],
  logTail: () => Promise.reject(new Error("not in this test")),
  containerInspect: () => Promise.reject(new Error("not in this test")),
};

/** The typed client against the real planner API (real PostgreSQL; no worker, so tasks stay queued). */
describe("@steward/planner/client", () => {
  let db: TestDatabase;
  let sql: Sql;
  let planner: Planner;
  let url: string;

  beforeAll(async () => {
    db = await createTestDatabase("steward_planner_client");
    sql = connectDb(db.url, { max: 4 });
    await migrate(sql);
    const config = loadConfig({ DATABASE_URL: db.url, API_TOKEN: TOKEN, FLEET_SPEC: "/nonexistent/fleet.yaml", HTTP_PORT: "0", OLLAMA_URL: "http://127.0.0.1:9", WORKERS: "0" });
    planner = createPlanner({ config, sql, logger: silentLogger(), registry: createRegistry("planner-client-test", false), sources: noSources, checkpointer: new MemorySaver() });
    const { port } = await planner.start();
    url = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await planner?.stop();
    await sql?.end({ timeout: 1 });
    await db?.drop();
  });

  const client = () => createPlannerClient({ url, token: TOKEN });
  const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

  it("submits once per idempotency key, lists and shows tasks, reads the cost report", async () => {
    const c = client();
    const first = await c.submit(envelope("t-1", { idempotency_key: "k-1", conversation_id: "conv-1" }), { headers: { traceparent: TP } });
    expect(first).toMatchObject({ created: true, task: { id: "t-1", state: "queued", source: "cli" } });
    const again = await c.submit(envelope("t-1-again", { idempotency_key: "k-1", conversation_id: "conv-1" }));
    expect(again).toMatchObject({ created: false, task: { id: "t-1" } });
    await c.submit(envelope("t-2"));

    expect((await c.tasks()).map((t) => t.id).sort()).toEqual(["t-1", "t-2"]);
    expect((await c.tasks({ conversationId: "conv-1", limit: 5 })).map((t) => t.id)).toEqual(["t-1"]);
    const detail = await c.task("t-1");
    expect(detail.task).toMatchObject({ id: "t-1", conversation_id: "conv-1" });
    expect(detail.steps).toEqual(expect.any(Array));
    const cost = await c.cost();
    expect(cost).toMatchObject({ by_day: expect.any(Array) });
  });

  it("4xx answers carry the planner's code: 422 naming the field, 404, 400, 401", async () => {
    const blank = await failure(client().submit(envelope("t-bad", { content: "  " })));
    expect(blank).toBeInstanceOf(ApiError);
    expect(blank).toMatchObject({ status: 422, code: "invalid", message: "content must not be blank" });
    expect(await failure(client().task("no-such-task"))).toMatchObject({ status: 404, code: "not_found", message: "no task with id 'no-such-task'" });
    expect(await failure(client().tasks({ limit: 100_000 }))).toMatchObject({ status: 400, code: "invalid", message: "limit must be an integer from 1 to 500" });
    expect(await failure(createPlannerClient({ url, token: "wrong-token-0123456789" }).cost())).toMatchObject({ status: 401, code: "unauthorized" });
    expect(await failure(createPlannerClient({ url, token: undefined }).cost())).toMatchObject({ status: 401, code: "unauthorized" });
  });

  it("nothing listening → ApiUnreachable; a timeout says how long it waited", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const err = await failure(createPlannerClient({ url: dead, token: TOKEN }).cost());
    expect(err).toBeInstanceOf(ApiUnreachable);
    expect((err as Error).message).toMatch(new RegExp(`^cannot reach the planner at ${dead}: `));
    const silent = await listenOnLoopback(() => undefined);
    try {
      const slow = await failure(createPlannerClient({ url: silent.url, token: TOKEN, timeoutMs: 200 }).tasks());
      expect(slow).toMatchObject({ code: "unreachable", reason: "no answer within 200 ms" });
    } finally {
      await silent.close();
    }
  });

  it("an answer that is not JSON, or JSON off the contract → ApiBadResponse; the envelope is sent as given", async () => {
    const sent: unknown[] = [];
    const standIn = await listenOnLoopback(async (req, res) => {
      if (req.method === "POST") sent.push(await readJsonLoose(req));
      if (req.url === "/cost") return res.writeHead(200).end("not json at all");
      res.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify({ task: { id: 7 }, created: true }));
    });
    try {
      const c = createPlannerClient({ url: standIn.url, token: TOKEN });
      expect(await failure(c.cost())).toMatchObject({ status: 200, problem: "not_json", message: "the planner answered 200 with a body that is not JSON" });
      const off = await failure(c.submit(envelope("t-x")));
      expect(off).toBeInstanceOf(ApiBadResponse);
      expect(off).toMatchObject({ status: 202, problem: "off_contract", message: expect.stringMatching(/^unexpected answer from the planner's \/inbox: task\.id: /) });
      expect(sent).toEqual([envelope("t-x")]);
    } finally {
      await standIn.close();
    }
  });

  it("loads only contracts, zod and the HTTP helper (the CLI imports it on every command)", () => {
    const graph = importGraph("@steward/planner/client");
    expect(graph.filter((m) => !/^libs\/contracts\/dist\//.test(m))).toEqual(["libs/platform/dist/http-client.js", "services/planner/dist/client.js", "zod"]);
  });
});
