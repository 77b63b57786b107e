/** Finding what an agent that died left running: /proc parsing and the pure verdict (tables), and real process groups. */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "@steward/platform/logger";
import { waitFor } from "@steward/testkit";
import { classifyLeftover, createProcessRecords, groupMembers, parseProcStat, readProcStat, reclaimLeftovers, type ProcStat } from "../src/process-records.js";

describe("parseProcStat", () => {
  const line = (comm: string) => `4242 (${comm}) S 1 4242 4242 0 -1 4194560 700 0 0 0 3 1 0 0 20 0 7 0 987654 1000000 2000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0`;
  it.each([
    ["a plain name", line("node"), { state: "S", pgrp: 4242, startTime: "987654" }],
    ["a name with spaces and parentheses", line("my (odd) name"), { state: "S", pgrp: 4242, startTime: "987654" }],
    ["truncated", "4242 (node) S 1", undefined],
    ["not a stat line", "hello", undefined],
  ])("%s", (_, text, want) => {
    expect(parseProcStat(text)).toEqual(want);
  });

  it("reads this process's own entry", async () => {
    const me = await readProcStat(process.pid);
    expect(me?.state).toMatch(/[RS]/);
    expect(me?.startTime).toMatch(/^\d+$/);
  });
});

describe("classifyLeftover", () => {
  const rec = { pid: 100, start_time: "5000" };
  const st = (startTime: string, state = "S"): ProcStat => ({ state, pgrp: 100, startTime });
  it.each([
    ["the leader runs with its recorded start time", st("5000"), [100, 101], { kind: "running", pids: [100, 101] }],
    ["the leader is gone, what it spawned still runs in its group", undefined, [101], { kind: "running", pids: [101] }],
    ["the leader is a zombie, its group empty", st("5000", "Z"), [], { kind: "gone" }],
    ["nothing left", undefined, [], { kind: "gone" }],
    ["the pid is another process now (other start time): never ours", st("7777"), [100, 102], { kind: "reused" }],
  ] as const)("%s", (_, leader, members, want) => {
    expect(classifyLeftover(rec, leader, members)).toEqual(want);
  });
});

describe("reclaimLeftovers, with real process groups", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "steward-records-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("stops a recorded group (the leader and what it spawned, one ignoring SIGTERM) and says it ran; leaves a reused pid alone", async () => {
    const records = createProcessRecords({ stateDir: dir, logger: silentLogger() });
    // A service that spawned a child which ignores SIGTERM: only the group's SIGKILL ends it.
    const script = "require('child_process').spawn(process.execPath, ['-e', \"process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)\"], { stdio: 'ignore' }); setInterval(() => {}, 1000)";
    const leader = spawn(process.execPath, ["-e", script], { detached: true, stdio: "ignore" });
    leader.unref();
    const pid = leader.pid!;
    const members = await waitFor("leader and its child in the group", async () => ((await groupMembers(pid)).length === 2 ? groupMembers(pid) : undefined), 10_000, 50);
    expect(members).toContain(pid);
    await records.save("web", pid, [process.execPath, "-e", "..."]);
    // A record whose pid is this test process, with another start time: a pid that was reused. Never signalled.
    await records.save("api", process.pid, ["x"]);
    const file = join(dir, "processes", "api.json");
    const api = JSON.parse(await readFile(file, "utf8")) as { start_time: string };
    await writeFile(file, JSON.stringify({ ...api, start_time: "1" }));

    const ran = await reclaimLeftovers(records, 300, silentLogger());
    expect(ran).toEqual(["web"]);
    expect(await groupMembers(pid)).toEqual([]);
    for (const p of members) expect((await readProcStat(p))?.state ?? "gone").toMatch(/gone|Z/);
    expect(await readdir(join(dir, "processes"))).toEqual([]);
    expect(await records.list()).toEqual([]);
  });

  it("a record of a process that exited is removed and reports nothing running", async () => {
    const records = createProcessRecords({ stateDir: dir, logger: silentLogger() });
    const p = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { detached: true, stdio: "ignore" });
    const pid = p.pid!;
    await records.save("worker", pid, ["x"]);
    const gone = new Promise((r) => p.once("exit", r));
    process.kill(-pid, "SIGKILL");
    await gone;
    expect(await reclaimLeftovers(records, 300, silentLogger())).toEqual([]);
    expect(await records.list()).toEqual([]);
  });
});
