/**
 * The checkpointer's pg pool survives its connections being cut (what a PostgreSQL restart does): an idle one, and
 * one checked out between two queries, whose `error` event pg-pool does not listen for. Either, unheard, would be an
 * uncaught exception that ends the planner.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectDb, type Sql } from "@steward/platform/db";
import { silentLogger } from "@steward/platform/logger";
import { createTestDatabase, waitFor, type TestDatabase } from "@steward/testkit";
import { createCheckpointerPool } from "../src/checkpointer-pool.js";

let db: TestDatabase;
let admin: Sql;

beforeAll(async () => {
  db = await createTestDatabase("steward_ckpt_pool");
  admin = connectDb(db.url, { max: 1 });
});

afterAll(async () => {
  await admin?.end({ timeout: 1 });
  await db?.drop();
});

const uncaught: unknown[] = [];
const record = (err: unknown) => uncaught.push(err);

describe("the checkpointer's pg pool", () => {
  it("a connection cut while checked out or idle: no uncaught error, and the pool answers again", async () => {
    process.on("uncaughtException", record);
    try {
      const pool = createCheckpointerPool(db.url, silentLogger());
      const held = await pool.connect();
      const idle = await pool.connect();
      const pidOf = async (c: typeof held) => (await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
      const [heldPid, idlePid] = [await pidOf(held), await pidOf(idle)];
      idle.release();
      let ended = 0;
      held.on("end", () => ended++);
      // What a fast shutdown sends every backend: "terminating connection due to administrator command".
      await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN (${heldPid}, ${idlePid})`;
      await waitFor("the held connection to end", () => ended > 0, 10_000, 10);
      await waitFor("the idle connection to leave the pool", () => pool.idleCount === 0, 10_000, 10);
      await new Promise((r) => setImmediate(r));
      expect(uncaught).toEqual([]);
      // The checkout's next query fails (the caller hands its task back); the pool serves new ones.
      await expect(held.query("SELECT 1")).rejects.toThrow();
      held.release(true);
      expect((await pool.query<{ one: number }>("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
      await pool.end();
    } finally {
      process.off("uncaughtException", record);
    }
  });
});
