import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectDb, type Sql } from "@steward/platform/db";
import { isDatabaseUnreachable, jsonApi, listenHttp, sendJson, type HttpListener } from "@steward/platform/http";
import { silentLogger } from "@steward/platform/logger";
import { createTestDatabase, freePort, waitFor, type TestDatabase } from "@steward/testkit";

/** The errors come from real PostgreSQL situations, not hand-made objects: the classification must match what postgres.js throws. */
async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the query to fail");
}

describe("a database that is down is a 503 naming it, not a 500", () => {
  let db: TestDatabase;
  let sql: Sql;
  let closedPortSql: Sql;
  let api: HttpListener;
  beforeAll(async () => {
    db = await createTestDatabase("steward_dbdown");
    sql = connectDb(db.url, { max: 2 });
    closedPortSql = connectDb(`postgres://postgres@127.0.0.1:${await freePort()}/none`, { max: 1, connect_timeout: 2 });
    api = await listenHttp(
      jsonApi(
        async (req, res) => {
          if (req.url === "/down") await closedPortSql`SELECT 1`;
          if (req.url === "/bad") await sql`SELECT * FROM no_such_table`;
          sendJson(res, 200, { ok: true });
          return { route: req.url ?? "", status: 200 };
        },
        { logger: silentLogger(), count: () => undefined },
      ),
      0,
      "127.0.0.1",
    );
  });
  afterAll(async () => {
    await api.close();
    await sql.end();
    await closedPortSql.end();
    await db.drop();
  });

  it("a refused connection is unreachable", async () => {
    expect(isDatabaseUnreachable(await errorOf(closedPortSql`SELECT 1`))).toBe(true);
  });

  it("a backend terminated by the server (as on a restart) is unreachable", async () => {
    const victim = connectDb(db.url, { max: 1 });
    try {
      const [{ pid }] = (await victim`SELECT pg_backend_pid() AS pid`) as unknown as [{ pid: number }];
      const pending = errorOf(victim`SELECT pg_sleep(30)`);
      // Terminate once the sleep is running on the server (a signal, not a fixed delay).
      await waitFor(
        "the sleep to run on the server",
        async () => (await sql`SELECT 1 FROM pg_stat_activity WHERE pid = ${pid} AND wait_event = 'PgSleep'`).length === 1,
        10_000,
        10,
      );
      await sql`SELECT pg_terminate_backend(${pid})`;
      expect(isDatabaseUnreachable(await pending)).toBe(true);
    } finally {
      // postgres.js waits forever on end() after the server closed the connection; the services pass a timeout too.
      await victim.end({ timeout: 1 });
    }
  });

  it("a transaction whose backend is terminated rejects as unreachable, the process lives on, the pool answers again", async () => {
    // postgres.js 3.4.9 threw from a setImmediate here (its own ROLLBACK written after the socket was gone), which no
    // caller can catch: the planner died on a database restart (porsager/postgres#1208; patched in patches/).
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on("uncaughtException", onUncaught);
    const victim = connectDb(db.url, { max: 2 });
    try {
      for (let round = 0; round < 3; round++) {
        let pid = 0;
        const tx = errorOf(
          victim.begin(async (t) => {
            pid = ((await t`SELECT pg_backend_pid() AS pid`) as unknown as [{ pid: number }])[0].pid;
            await t`SELECT pg_sleep(30)`;
          }),
        );
        await waitFor(
          "the transaction's sleep to run on the server",
          async () => pid !== 0 && (await sql`SELECT 1 FROM pg_stat_activity WHERE pid = ${pid} AND wait_event = 'PgSleep'`).length === 1,
          10_000,
          10,
        );
        await sql`SELECT pg_terminate_backend(${pid})`;
        expect(isDatabaseUnreachable(await tx)).toBe(true);
        // The next query may still meet the old backend's goodbye (57P01, unreachable too); then it answers.
        await waitFor("the pool to answer again", () => victim`SELECT 1 AS one`.then(() => true, (err: unknown) => (expect(isDatabaseUnreachable(err)).toBe(true), false)), 10_000, 20);
      }
      // The late write ran from a setImmediate long before: the pool has answered since, many turns of the loop later.
      expect(uncaught).toEqual([]);
    } finally {
      process.off("uncaughtException", onUncaught);
      await victim.end({ timeout: 1 });
    }
  });

  it("a query error is not", async () => {
    expect(isDatabaseUnreachable(await errorOf(sql`SELECT * FROM no_such_table`))).toBe(false);
  });

  it("the API answers 503 database_unreachable while it is down, 500 for a real bug", async () => {
    const down = await fetch(`http://127.0.0.1:${api.port}/down`);
    expect(down.status).toBe(503);
    expect(await down.json()).toEqual({ error: { code: "database_unreachable", message: expect.stringMatching(/database is unreachable/) } });
    expect((await fetch(`http://127.0.0.1:${api.port}/bad`)).status).toBe(500);
    expect((await fetch(`http://127.0.0.1:${api.port}/fine`)).status).toBe(200);
  });
});
