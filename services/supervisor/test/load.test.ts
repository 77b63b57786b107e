import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSnapshotFromFile, parseSnapshot } from "@steward/world/read";
import { createSpecCache, loadSpecSafe } from "@steward/fleet/load";
import { node, snapshot, specYaml, svc } from "./fixtures.js";

const good = JSON.stringify(snapshot([node("n1", [svc("api")])]));

describe("parseSnapshot", () => {
  it.each([
    { name: "empty text", text: "", reason: "snapshot_invalid" },
    { name: "truncated JSON", text: good.slice(0, Math.floor(good.length / 2)), reason: "snapshot_invalid" },
    { name: "an empty object is not an empty world", text: "{}", reason: "snapshot_invalid" },
    { name: "world without written_at", text: JSON.stringify({ world: snapshot([]).world, observer_id: "o" }), reason: "snapshot_invalid" },
    { name: "null", text: "null", reason: "snapshot_invalid" },
  ])("$name → skipped ($reason)", ({ text, reason }) => {
    const r = parseSnapshot(text, "test");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toBe(reason);
  });

  it("a complete snapshot parses", () => {
    const r = parseSnapshot(good, "test");
    expect(r.ok && Object.keys(r.value.world.nodes)).toEqual(["n1"]);
  });
});

describe("file loading", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "supervisor-load-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("a missing snapshot file is snapshot_missing, a directory is unreadable", async () => {
    expect(await loadSnapshotFromFile(join(dir, "nope.json"))).toMatchObject({ ok: false, reason: "snapshot_missing" });
    expect(await loadSnapshotFromFile(dir)).toMatchObject({ ok: false, reason: "snapshot_unreadable" });
  });

  it("spec: missing file is unreadable, bad content is invalid, good content loads", async () => {
    expect(await loadSpecSafe(join(dir, "none.yaml"))).toMatchObject({ ok: false, reason: "spec_unreadable" });
    const bad = join(dir, "bad.yaml");
    await writeFile(bad, "version: 1\nnodes:\n  n1:\n    services:\n      api:\n        kind: process\n");
    const r = await loadSpecSafe(bad);
    expect(r).toMatchObject({ ok: false, reason: "spec_invalid" });
    if (!r.ok) expect(r.detail).toContain("nodes.n1.services.api.command");
    const ok = join(dir, "ok.yaml");
    await writeFile(ok, specYaml({ n1: ["api"] }));
    expect(await loadSpecSafe(ok)).toMatchObject({ ok: true });
  });

  it("spec cache: parsed once per content, an edit is seen at the next load, a broken edit is invalid, missing is unreadable", async () => {
    const cache = createSpecCache();
    const p = join(dir, "cached.yaml");
    await writeFile(p, specYaml({ n1: ["api"] }));
    const first = await cache.load(p);
    expect(first).toMatchObject({ ok: true, parsed: true });
    const again = await cache.load(p);
    expect(again).toMatchObject({ ok: true, parsed: false });
    // The same parsed spec, not a re-parse.
    expect(again.ok && first.ok && again.value === first.value).toBe(true);
    await writeFile(p, specYaml({ n1: ["api", "web"] }));
    const edited = await cache.load(p);
    expect(edited).toMatchObject({ ok: true, parsed: true });
    expect(edited.ok && Object.keys(edited.value.nodes["n1"]?.services ?? {}).sort()).toEqual(["api", "web"]);
    await writeFile(p, "version: 1\nnodes:\n  n1:\n    services:\n      api:\n        kind: process\n");
    expect(await cache.load(p)).toMatchObject({ ok: false, reason: "spec_invalid", parsed: true });
    expect(await cache.load(p)).toMatchObject({ ok: false, reason: "spec_invalid", parsed: false });
    await rm(p);
    expect(await cache.load(p)).toMatchObject({ ok: false, reason: "spec_unreadable" });
  });

  it("spec cache: an unchanged file is not read again; an edit of the same size, or a rename over it, is seen", async () => {
    const cache = createSpecCache();
    const p = join(dir, "stamped.yaml");
    await writeFile(p, specYaml({ n1: ["aaa"] }));
    expect(await cache.load(p)).toMatchObject({ ok: true, parsed: true });
    // Same bytes written again: read and hashed again (its times changed), not parsed again.
    await writeFile(p, specYaml({ n1: ["aaa"] }));
    expect(await cache.load(p)).toMatchObject({ ok: true, parsed: false });
    await writeFile(p, specYaml({ n1: ["bbb"] }));
    const sameSize = await cache.load(p);
    expect(sameSize.ok && Object.keys(sameSize.value.nodes["n1"]?.services ?? {})).toEqual(["bbb"]);
    const tmp = join(dir, "stamped.yaml.tmp");
    await writeFile(tmp, specYaml({ n1: ["ccc"] }));
    await rename(tmp, p);
    const renamed = await cache.load(p);
    expect(renamed.ok && Object.keys(renamed.value.nodes["n1"]?.services ?? {})).toEqual(["ccc"]);
  });
});
