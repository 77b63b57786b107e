import { MemorySaver } from "@langchain/langgraph";
import { beforeAll, describe, expect, it } from "vitest";
import type { FakeOllama } from "@steward/testkit";
import { CostReport } from "@steward/contracts/task";
import { start, post, get, done, envelope, answer, live, usePlannerHarness } from "./harness.js";

/** Task intake and the queue: the inbox API (auth, 422s, idempotency), TTL expiry, retries and dead letters. */
usePlannerHarness();
let ollama: FakeOllama;
beforeAll(() => ({ ollama } = live));

describe("inbox", () => {
  it("authenticates, answers 422 naming each invalid field, and counts rejections", async () => {
    const { url, registry } = await start({ WORKERS: "0" });
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
    const metrics = await registry.metrics();
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
