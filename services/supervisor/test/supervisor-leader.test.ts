import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Sql } from "@steward/platform/db";
import { beforeAll, describe, expect, it } from "vitest";
import { SUPERVISOR_LOCK_KEY } from "../src/leader.js";
import { waitFor } from "@steward/testkit";
import { node, snapshot, specYaml, svc } from "./fixtures.js";
import { actions, fresh, make, metric, putSnapshot, live, useSupervisorHarness } from "./harness.js";

/** One leading supervisor among several: the Postgres advisory lock, handed over on stop or a lost connection. */
useSupervisorHarness();
let sql: Sql, dir: string;
beforeAll(() => ({ sql, dir } = live));

describe("leader lock", () => {
  const lockHolder = async (): Promise<number | undefined> => {
    const [row] = await sql<{ pid: number }[]>`
      SELECT pid FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid::text::bigint = ${SUPERVISOR_LOCK_KEY}::bigint
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
    return row?.pid;
  };

  it("of two supervisors only one proposes; stopping it hands over within seconds, without duplicates", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [])])));
    const specPath = join(dir, "fleet-leader.yaml");
    await writeFile(specPath, specYaml({ n1: ["api"] }));
    const a = await make({ specPath, ownSql: true, id: "sup-a" });
    const b = await make({ specPath, ownSql: true, id: "sup-b" });
    await a.sup.start();
    await b.sup.start();
    expect(a.sup.isLeader()).toBe(true);
    expect(b.sup.isLeader()).toBe(false);
    expect(await b.sup.runCycle()).toEqual({ status: "standby" });
    expect((await a.sup.runCycle()).status).toBe("ok");
    expect(await metric(b.registry, "steward_supervisor_is_leader")).toBe(0);
    const rows = await actions();
    expect(rows.map((r) => r.proposed_by)).toEqual(["sup-a"]);

    const t0 = Date.now();
    await a.sup.stop();
    // Within seconds (b retries the lock every 200 ms), not after a lease or session timeout.
    await waitFor("b to take over", () => b.sup.isLeader(), 15_000);
    expect(Date.now() - t0).toBeLessThan(10_000);
    const r = await b.sup.runCycle();
    expect(r.status === "ok" && r.proposed).toEqual([]);
    await writeFile(specPath, specYaml({ n1: ["api", "web"] }));
    await b.sup.runCycle();
    await b.sup.runCycle();
    const after = await actions();
    expect(after.map((x) => `${x.drift_key}@${x.proposed_by}`)).toEqual(["missing:n1/api@sup-a", "missing:n1/web@sup-b"]);
  });

  it("when the leader's connection dies the lock is released and exactly one supervisor leads again", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [svc("api")])])));
    const specPath = join(dir, "fleet-leader2.yaml");
    await writeFile(specPath, specYaml({ n1: ["api"] }));
    const a = await make({ specPath, ownSql: true, id: "sup-c" });
    const b = await make({ specPath, ownSql: true, id: "sup-d" });
    await a.sup.start();
    await b.sup.start();
    const first = await lockHolder();
    expect(first).toBeDefined();
    await sql`SELECT pg_terminate_backend(${first!})`;
    await waitFor("a new lock holder", async () => {
      const pid = await lockHolder();
      return pid !== undefined && pid !== first;
    }, 20_000);
    await waitFor("exactly one leader", () => a.sup.isLeader() !== b.sup.isLeader(), 20_000);
    const leaders = [a, b].filter((x) => x.sup.isLeader());
    expect(leaders).toHaveLength(1);
    expect((await leaders[0]!.sup.runCycle()).status).toBe("ok");
  });
});
