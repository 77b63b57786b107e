import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "@steward/testkit";
import type { KV } from "@steward/platform/bus";
import { createWorldWriter } from "@steward/world/world-store";
import { driftNodeKey } from "@steward/contracts/subjects";
import { node, snapshot, specYaml, svc } from "./fixtures.js";
import { actions, fresh, make, metric, putSnapshot, readReport, live, useSupervisorHarness } from "./harness.js";

/** What starts a cycle (a spec edit, a world write) and what makes one skip (an unreadable snapshot or spec). */
useSupervisorHarness();
let dir: string, kv: KV;
beforeAll(() => ({ dir, kv } = live));

describe("unreadable input skips the cycle", () => {
  it("a truncated snapshot file skips the cycle, proposes nothing and keeps the last good report", async () => {
    const snapPath = join(dir, "world-trunc.json");
    const good = fresh(snapshot([node("n1", [svc("api"), svc("extra", { declared: false })])]));
    await writeFile(snapPath, JSON.stringify(good));
    const { sup, registry } = await make({ nodes: { n1: ["api"] }, snapshotPath: snapPath });
    await sup.start();
    const ok = await sup.runCycle();
    expect(ok.status === "ok" && ok.drifts.map((d) => d.key)).toEqual(["unmanaged:n1/extra"]);
    const goodReport = await readReport();

    const text = JSON.stringify(good);
    for (const broken of [text.slice(0, Math.floor(text.length / 2)), "", "{}"]) {
      await writeFile(snapPath, broken);
      const r = await sup.runCycle();
      expect(r).toMatchObject({ status: "skipped", reason: "snapshot_invalid" });
    }
    expect(await actions()).toEqual([]);
    const report = await readReport();
    expect(report?.drifts).toEqual(goodReport?.drifts);
    expect(report?.computed_at).toBe(goodReport?.computed_at);
    expect(report?.skipped?.reason).toMatch(/^snapshot_invalid/);
    expect(await metric(registry, "steward_supervisor_cycles_skipped_total", 'reason="snapshot_invalid"')).toBe(3);
    expect(await metric(registry, "steward_supervisor_drift", 'kind="unmanaged"')).toBe(1);

    await writeFile(snapPath, JSON.stringify(fresh(snapshot([node("n1", [])]))));
    const back = await sup.runCycle();
    expect(back.status === "ok" && back.proposed.map((a) => a.drift_key)).toEqual(["missing:n1/api"]);
    expect((await readReport())?.skipped).toBeNull();
  });

  it("an invalid spec skips the cycle; fixing it resumes", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [])])));
    const specPath = join(dir, "fleet-invalid.yaml");
    await writeFile(specPath, "version: 1\nnodes:\n  n1:\n    services:\n      api:\n        kind: process\n");
    const { sup, registry } = await make({ specPath });
    await sup.start();
    expect(await sup.runCycle()).toMatchObject({ status: "skipped", reason: "spec_invalid" });
    await writeFile(specPath, "version: 1\nnodes: [unterminated\n");
    expect(await sup.runCycle()).toMatchObject({ status: "skipped", reason: "spec_invalid" });
    expect(await actions()).toEqual([]);
    expect(await metric(registry, "steward_supervisor_cycles_skipped_total", 'reason="spec_invalid"')).toBeGreaterThanOrEqual(2);
    expect((await readReport())?.skipped?.reason).toMatch(/^spec_invalid/);

    await writeFile(specPath, specYaml({ n1: ["api"] }));
    const r = await sup.runCycle();
    expect(r.status === "ok" && r.proposed).toHaveLength(1);
  });
});

describe("triggers", () => {
  it("adding a service to the spec while it runs gets it proposed without a restart", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [svc("api")])])));
    const { sup, specPath } = await make({ nodes: { n1: ["api"] }, recheckMs: 150 });
    await sup.start();
    await waitFor("first report", () => readReport());
    expect(await actions()).toEqual([]);
    await writeFile(specPath, specYaml({ n1: ["api", "web"] }));
    const rows = await waitFor("proposal for web", async () => {
      const r = await actions();
      return r.length > 0 ? r : undefined;
    }, 20_000);
    expect(rows.map((r) => r.drift_key)).toEqual(["missing:n1/web"]);
  });

  it("a new snapshot in KV triggers a cycle promptly, well before RECHECK_MS", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [svc("api")])])));
    const { sup } = await make({ nodes: { n1: ["api"] }, recheckMs: 30_000 });
    await sup.start();
    await waitFor("first report", () => readReport());
    const t0 = Date.now();
    await putSnapshot(fresh(snapshot([node("n1", [svc("api", { state: "exited", starts: 1 })])])));
    await waitFor("restart proposal", async () => (await actions()).length > 0, 20_000, 10);
    // Promptly: a third of RECHECK_MS at most, generous for a busy machine and still far from waiting for the timer.
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeLessThan(10_000);
    expect((await actions())[0]?.kind).toBe("restart");
  });

  it("a change on one node diffs and writes only that node; the full re-check diffs every node and rewrites none", async () => {
    const names = Array.from({ length: 40 }, (_, i) => `n${String(i).padStart(2, "0")}`);
    const world = snapshot(names.map((n, i) => node(n, [svc("api", i % 10 === 0 ? { state: "exited", starts: 1 } : {})])), new Date().toISOString());
    // One writer, as the observer: a later write sends only the node records that changed.
    const writer = createWorldWriter({ kv, observerId: "observer-test" });
    await writer.write(world.world, world.written_at);
    const { sup, registry } = await make({ nodes: Object.fromEntries(names.map((n) => [n, ["api"]])), fullRecheckMs: 600_000 });
    await sup.start();
    await waitFor("first report", async () => (await readReport())?.drifts.length === 4);
    expect(await metric(registry, "steward_supervisor_nodes_diffed_total", 'cycle="full"')).toBe(40);
    const revisions = async () => Object.fromEntries(await Promise.all(names.map(async (n) => [n, (await kv.get(driftNodeKey(n)))?.revision ?? 0] as const)));
    const before = await revisions();

    world.world.nodes["n07"] = node("n07", [svc("api", { state: "failed", starts: 1 })]);
    world.world.last_seq += 1;
    await writer.write(world.world, new Date().toISOString());
    const report = await waitFor("n07 down in the report", async () => {
      const r = await readReport();
      return r?.drifts.some((d) => d.key === "down:n07/api") ? r : undefined;
    });
    expect(report.drifts.map((d) => d.key)).toEqual(["down:n00/api", "down:n07/api", "down:n10/api", "down:n20/api", "down:n30/api"]);
    expect(await metric(registry, "steward_supervisor_nodes_diffed_total", 'cycle="changes"')).toBe(1);
    const after = await revisions();
    expect(names.filter((n) => after[n] !== before[n])).toEqual(["n07"]);
    expect(await metric(registry, "steward_supervisor_nodes_diffed_total", 'cycle="full"')).toBe(40);
  });

  it("the slow full re-check diffs every node without a change, and an unchanged report rewrites no node record", async () => {
    const names = Array.from({ length: 20 }, (_, i) => `n${i}`);
    await putSnapshot(fresh(snapshot(names.map((n) => node(n, [svc("api", { state: "exited", starts: 1 })])))));
    const { sup, registry } = await make({ nodes: Object.fromEntries(names.map((n) => [n, ["api"]])), fullRecheckMs: 300, maxAgeMs: 600_000 });
    await sup.start();
    await waitFor("first report", async () => (await readReport())?.drifts.length === 20);
    const revs = async () => Promise.all(names.map(async (n) => (await kv.get(driftNodeKey(n)))?.revision));
    const before = await revs();
    await waitFor("three more full re-checks", async () => ((await metric(registry, "steward_supervisor_nodes_diffed_total", 'cycle="full"')) ?? 0) >= 80, 20_000);
    expect(await revs()).toEqual(before);
  });

  it("cycles triggered while one runs are coalesced", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [svc("api")])])));
    const { sup, registry } = await make({ nodes: { n1: ["api"] } });
    await sup.start();
    await waitFor("first report", () => readReport());
    const before = (await metric(registry, "steward_supervisor_cycles_total", 'result="ok"')) ?? 0;
    const results = await Promise.all(Array.from({ length: 10 }, () => sup.runCycle()));
    expect(results.every((r) => r.status === "ok")).toBe(true);
    const after = (await metric(registry, "steward_supervisor_cycles_total", 'result="ok"')) ?? 0;
    expect(after - before).toBeLessThanOrEqual(2);
  });
});
