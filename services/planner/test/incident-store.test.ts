import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { createTestDatabase, type TestDatabase } from "@steward/testkit";
import type { TaskEnvelope } from "@steward/contracts/task";
import { createTaskStore, type TaskStore } from "../src/store.js";
import { createIncidentStore } from "../src/incidents/incident-store.js";

/** The incident tables on a real PostgreSQL: linking under concurrency, full-text similarity, recurrence rows. */
let db: TestDatabase;
let sql: Sql;
let other: Sql;
let tasks: TaskStore;
const RECUR = { count: 3, windowMs: 30 * 86_400_000 };

beforeAll(async () => {
  db = await createTestDatabase("steward_incident_store");
  sql = connectDb(db.url, { max: 4 });
  other = connectDb(db.url, { max: 4 });
  await migrate(sql);
  tasks = createTaskStore(sql);
});

afterAll(async () => {
  await other?.end({ timeout: 2 });
  await sql?.end({ timeout: 2 });
  await db?.drop();
});

/** A supervisor escalation about node/service, answered with `answer` (as the worker would record it). */
async function escalation(id: string, node: string, service: string, answer: string, evidence: Record<string, unknown>, now = new Date()): Promise<void> {
  const e: TaskEnvelope = { task_id: id, content: `${service} on ${node} misbehaves`, source: "supervisor", user: "supervisor", conversation_id: `supervisor:${node}/${service}`, restricted: false, evidence };
  await tasks.enqueue(e, { now, defaultTtlS: 3600, maxAttempts: 3, traceparent: null });
  await sql`UPDATE planner_tasks SET state = 'succeeded', answer = ${answer} WHERE id = ${id}`;
}

const down = (code: number) => ({ signal: "crash_loop", drift: { kind: "down" }, service_state: { state: "exited", health: "none", exit_code: code } });

describe("incident store", () => {
  it("two planners linking the same escalations at once open one incident per service, every task in it", async () => {
    for (let i = 0; i < 6; i++) await escalation(`c-${i}`, "n1", i % 2 === 0 ? "api" : "db", `${i % 2 === 0 ? "api" : "db"} crashed`, down(1));
    const [a, b] = await Promise.all([createIncidentStore(sql).link(new Date(), RECUR), createIncidentStore(other).link(new Date(), RECUR)]);
    expect([...a.opened, ...b.opened]).toHaveLength(2);
    const open = await createIncidentStore(sql).open();
    expect(open.map((i) => `${i.node}/${i.service}:${i.tasks}`).sort()).toEqual(["n1/api:3", "n1/db:3"]);
    expect(open.every((i) => i.diagnosis?.endsWith("crashed"))).toBe(true);
  });

  it("finds past incidents by the words of their diagnoses and post-mortems, best match first, and by service and signature", async () => {
    const store = createIncidentStore(sql);
    for (const i of await store.open()) await store.resolve(i.id, new Date(), "running again");
    await escalation("w-1", "n2", "cache", "the disk /var/lib/cache filled up and writes failed", down(2));
    await escalation("w-2", "n3", "queue", "out of memory: the kernel killed the worker", down(137));
    await store.link(new Date(), RECUR);
    const [cache] = (await store.list({ limit: 10 })).filter((i) => i.service === "cache");
    await store.resolve(cache!.id, new Date(), "running again after restart 12345678 succeeded");
    const [queue] = (await store.list({ limit: 10 })).filter((i) => i.service === "queue");
    await store.resolve(queue!.id, new Date(), "running again");
    await store.savePostmortem(queue!.id, "# Post-mortem\n\nThe OOM killer stopped the worker; memory limits were raised.", new Date());

    const disk = await store.similar({ text: "writes fail: disk full on /var/lib" });
    expect(disk[0]).toMatchObject({ id: cache!.id, match: "text", outcome: "running again after restart 12345678 succeeded" });
    const oom = await store.similar({ text: "killed by the OOM killer" });
    expect(oom[0]).toMatchObject({ id: queue!.id, match: "text" });
    expect(await store.similar({ text: "the the and of" })).toEqual([]);
    expect(await store.similar({ text: "disk full", service: "queue" })).toEqual([]);
    const same = await store.similar({ service: "api", node: "n9", signature: "down:exit=1" });
    expect(same.map((s) => [s.service, s.match])).toEqual([["api", "signature"]]);
  });

  it("records a recurrence once per window and finds it for later incidents in that window", async () => {
    const store = createIncidentStore(sql);
    const now = Date.now();
    for (let k = 0; k < 4; k++) {
      await escalation(`r-${k}`, "n4", "web", "web fails", down(3), new Date(now - (4 - k) * 3_600_000));
      const r = await store.link(new Date(now - (4 - k) * 3_600_000 + 1000), RECUR);
      expect(r.recurrences.length).toBe(k === 2 ? 1 : 0);
      for (const i of await store.open()) await store.resolve(i.id, new Date(now - (4 - k) * 3_600_000 + 2000), "running again");
    }
    const web = (await store.list({ limit: 50 })).filter((i) => i.service === "web").sort((a, b) => a.id - b.id);
    const [active] = await store.activeRecurrences(new Date());
    expect(active).toMatchObject({ node: "n4", service: "web", signature: "down:exit=3", count: 3, incident_ids: web.slice(0, 3).map((i) => i.id) });
    expect((await store.recurrenceOf(web[3]!))?.id).toBe(active!.id);
    expect(await store.activeRecurrences(new Date(now + 31 * 86_400_000))).toEqual([]);
  });
});
