/** The cost report: today's spend and calls and the breakdowns by day come from one set of calls with one UTC day. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { createTestDatabase, type TestDatabase } from "@steward/testkit";
import { costReport, createCostLedger, type CallGroup } from "../src/cost-ledger.js";

const caps = { perTaskUsd: 5, perAgentDayUsd: 10, globalDayUsd: 30 };
const now = new Date("2026-12-01T00:30:00.000Z");
const g = (day: string, agent: string, model_group: string, usd: number, calls: number, source = "cli"): CallGroup => ({ day, agent, model_group, source, usd: String(usd), calls: String(calls) });

describe("costReport (pure)", () => {
  it.each([
    ["no calls at all", [], { usd: 0, calls: 0 }, []],
    ["two local calls today (no Claude spend): 2 calls today, as by day says", [g("2026-12-01", "diagnostician", "local", 0, 2)], { usd: 0, calls: 2 }, [{ day: "2026-12-01", usd: 0, calls: 2 }]],
    ["calls only yesterday (UTC): none today", [g("2026-11-30", "diagnostician", "claude", 0.5, 3)], { usd: 0, calls: 0 }, [{ day: "2026-11-30", usd: 0.5, calls: 3 }]],
    [
      "local and Claude calls of two agents today, one yesterday",
      [g("2026-12-01", "diagnostician", "local", 0, 4), g("2026-12-01", "diagnostician", "claude", 0.25, 1, "supervisor"), g("2026-12-01", "operator-answerer", "claude", 0.5, 2), g("2026-11-30", "operator-answerer", "local", 0, 1)],
      { usd: 0.75, calls: 7 },
      [{ day: "2026-12-01", usd: 0.75, calls: 7 }, { day: "2026-11-30", usd: 0, calls: 1 }],
    ],
  ] as const)("%s", (_what, calls, today, byDay) => {
    const r = costReport({ now, caps, calls, reservedToday: {} });
    expect(r.today.global).toEqual(today);
    expect(r.by_day).toEqual(byDay);
    // The invariant the operator reads: today's line and today's row of "by day" agree.
    const todayRow = r.by_day.find((d) => d.day === "2026-12-01") ?? { usd: 0, calls: 0 };
    expect({ usd: todayRow.usd, calls: todayRow.calls }).toEqual(r.today.global);
    expect(Object.values(r.today.by_agent).reduce((a, s) => a + s.calls, 0)).toBe(r.today.global.calls);
  });

  it("breakdowns are ranked by spend, then name; headroom counts reservations in flight", () => {
    const r = costReport({
      now,
      caps,
      calls: [g("2026-12-01", "b", "local", 0, 5), g("2026-12-01", "a", "claude", 1, 1, "telegram"), g("2026-11-29", "c", "local", 0, 1)],
      reservedToday: { a: 1, b: 2 },
    });
    expect(r.by_agent.map((x) => x.agent)).toEqual(["a", "b", "c"]);
    expect(r.by_model_group).toEqual([{ model_group: "claude", usd: 1, calls: 1 }, { model_group: "local", usd: 0, calls: 6 }]);
    expect(r.by_source).toEqual([{ source: "telegram", usd: 1, calls: 1 }, { source: "cli", usd: 0, calls: 6 }]);
    expect(r.headroom.global_day_usd).toBe(27);
    expect(r.headroom.per_agent_day_usd["b"]).toBe(8);
    expect(r.today.by_agent).toEqual({ a: { usd: 1, calls: 1 }, b: { usd: 0, calls: 5 } });
  });
});

describe("the ledger's report on PostgreSQL whose session time zone is not UTC", () => {
  let db: TestDatabase;
  let sql: Sql;
  beforeAll(async () => {
    db = await createTestDatabase("steward_cost");
    const admin = connectDb(db.url, { max: 1 });
    // Far from UTC: a day boundary or window taken in the session's zone would move calls between days.
    await admin.unsafe(`ALTER DATABASE ${db.name} SET timezone TO 'Pacific/Kiritimati'`);
    await admin.end();
    sql = connectDb(db.url, { max: 2 });
    await migrate(sql);
  }, 60_000);
  afterAll(async () => {
    await sql?.end();
    await db?.drop();
  });

  it("counts calls by UTC day: today's line equals today's row of by day, the 30-day window starts at UTC midnight", async () => {
    expect((await sql<{ tz: string }[]>`SELECT current_setting('TimeZone') AS tz`)[0]?.tz).toBe("Pacific/Kiritimati");
    await sql`INSERT INTO planner_tasks (id, state, source, "user", content, conversation_id) VALUES ('t1', 'succeeded', 'cli', 'ann', 'why', 'c1')`;
    const call = (at: string, group: string, usd: number) => sql`
      INSERT INTO planner_model_calls (task_id, at, agent, provider, model_group, model, decision, reason, cost_usd)
      VALUES ('t1', ${at}::timestamptz, 'diagnostician', ${group === "claude" ? "anthropic" : "ollama"}, ${group}, 'm', 'd', 'r', ${usd})`;
    await call("2026-12-01T00:10:00Z", "local", 0); // today (UTC)
    await call("2026-12-01T00:20:00Z", "local", 0); // today (UTC)
    await call("2026-11-30T23:50:00Z", "claude", 0.5); // yesterday (UTC), already "today" in Kiritimati
    await call("2026-11-02T00:00:00Z", "local", 0); // the first instant of the 30-day window
    await call("2026-11-01T23:59:00Z", "local", 0); // just before it
    const r = await createCostLedger(sql, caps).report(now);
    expect(r.today.global).toEqual({ usd: 0, calls: 2 });
    expect(r.by_day).toEqual([
      { day: "2026-12-01", usd: 0, calls: 2 },
      { day: "2026-11-30", usd: 0.5, calls: 1 },
      { day: "2026-11-02", usd: 0, calls: 1 },
    ]);
  });
});
