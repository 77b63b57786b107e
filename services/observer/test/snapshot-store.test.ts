import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { emptyWorld, type Snapshot } from "@steward/contracts/world-state";
import { loadSnapshotFromFile as readSnapshotFile } from "@steward/world/read";
import { removeLeftoverTempFiles, writeSnapshotFile } from "../src/snapshot-store.js";

const writeSnapshot = (p: string, s: Snapshot) => writeSnapshotFile(p, JSON.stringify(s));
import { loadConfig } from "../src/config.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "observer-snap-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const snap = (last_seq: number): Snapshot => ({ world: { ...emptyWorld(), last_seq }, written_at: new Date(0).toISOString(), observer_id: "t" });

describe("readSnapshotFile", () => {
  const cases: { name: string; content: string | null; reason: "snapshot_missing" | "snapshot_invalid" }[] = [
    { name: "missing file", content: null, reason: "snapshot_missing" },
    { name: "truncated JSON", content: JSON.stringify(snap(3)).slice(0, 20), reason: "snapshot_invalid" },
    { name: "empty file", content: "", reason: "snapshot_invalid" },
    { name: "empty object is not an empty world", content: "{}", reason: "snapshot_invalid" },
    { name: "wrong version", content: JSON.stringify({ ...snap(1), world: { ...emptyWorld(), version: 2 } }), reason: "snapshot_invalid" },
  ];
  it.each(cases)("$name → $reason", async ({ name, content, reason }) => {
    const p = join(dir, `${name.replace(/\W/g, "_")}.json`);
    if (content !== null) await writeFile(p, content);
    const r = await readSnapshotFile(p);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toBe(reason);
      expect(r.detail.length).toBeGreaterThan(0);
    }
  });

  it("reads back what writeSnapshot wrote, with last_seq", async () => {
    const p = join(dir, "world.json");
    await writeSnapshot(p, snap(41));
    await writeSnapshot(p, snap(42));
    const r = await readSnapshotFile(p);
    expect(r).toEqual({ ok: true, value: snap(42) });
    expect((await readdir(dir)).filter((n) => n.endsWith(".tmp"))).toEqual([]);
  });

  it("removes temp files an interrupted write left behind, and nothing else", async () => {
    const p = join(dir, "w2.json");
    await writeSnapshot(p, snap(1));
    await writeFile(join(dir, ".w2.json.123.abcd.tmp"), "{");
    await writeFile(join(dir, ".other.json.1.a.tmp"), "{");
    expect(await removeLeftoverTempFiles(p)).toBe(1);
    const names = await readdir(dir);
    expect(names).toContain("w2.json");
    expect(names).toContain(".other.json.1.a.tmp");
    expect(names).not.toContain(".w2.json.123.abcd.tmp");
  });
});

describe("loadConfig", () => {
  it("has defaults", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ natsUrl: "nats://127.0.0.1:4222", snapshotPath: "./.steward/world.json", snapshotDebounceMs: 50, staleCheckMs: 1000, missedHeartbeats: 3, snapshotMaxIntervalMs: 5000, metricsPort: 9465, streamReplicas: 1 });
    expect(c.observerId).toMatch(/-\d+$/);
  });
  it.each([
    ["SNAPSHOT_DEBOUNCE_MS", "0"],
    ["MISSED_HEARTBEATS", "-1"],
    ["METRICS_PORT", "70000"],
    ["STREAM_REPLICAS", "abc"],
    ["LEADER_LEASE_MS", "0"],
  ])("rejects %s=%s naming the setting", (k, v) => {
    expect(() => loadConfig({ [k]: v })).toThrow(new RegExp(k));
  });
  it("refuses a lease shorter than three lock checks (a healthy observer would lose its lock)", () => {
    expect(() => loadConfig({ LEADER_RETRY_MS: "1000", LEADER_LEASE_MS: "2999" })).toThrow(/LEADER_LEASE_MS: must be at least 3 x LEADER_RETRY_MS \(3000 ms\), got 2999 ms/);
    expect(loadConfig({ LEADER_RETRY_MS: "1000", LEADER_LEASE_MS: "3000" }).leaderLeaseMs).toBe(3000);
  });
});
