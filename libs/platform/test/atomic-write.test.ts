import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { writeFileAtomic } from "@steward/platform/atomic-write";

describe("writeFileAtomic", () => {
  let dir = "";
  afterAll(async () => rm(dir, { recursive: true, force: true }));
  it("replaces the content and leaves no temp files", async () => {
    dir = await mkdtemp(join(tmpdir(), "steward-aw-"));
    const f = join(dir, "world.json");
    await writeFileAtomic(f, "one");
    await Promise.all(Array.from({ length: 20 }, (_, i) => writeFileAtomic(f, JSON.stringify({ i, pad: "x".repeat(10_000) }))));
    const parsed = JSON.parse(await readFile(f, "utf8")) as { i: number };
    expect(parsed.i).toBeGreaterThanOrEqual(0);
    expect(await readdir(dir)).toEqual(["world.json"]);
  });
  it("fails cleanly when the directory does not exist", async () => {
    await expect(writeFileAtomic(join(dir, "nope", "x.json"), "x")).rejects.toThrow(/ENOENT/);
  });
});
