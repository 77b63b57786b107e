/**
 * A human "no" sticks, end to end through the CLI: a rejected restart is not proposed again while its drift stays
 * the same (10 supervisor cycles), is proposed again once the drift changes; a `--for` hold ends by itself; an
 * operator's `steward hold release` ends one early. Real node-agent with a real child process, observer,
 * supervisor and executor in this process.
 */
import { rm, writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "@steward/cli";
import { freePort, metricValue, waitFor, waitForTicks } from "@steward/testkit";
import { useProcessNode } from "./support/process-node.js";

let port = 0;
beforeAll(async () => {
  port = await freePort();
});

const n = useProcessNode({
  node: "h1",
  services: () => ({
    // Healthy until the marker file exists, then every check answers 500.
    sick: {
      script: (marker) => `const fs = require('fs'); require('http').createServer((q, s) => { s.statusCode = fs.existsSync(${marker}) ? 500 : 200; s.end() }).listen(${port}, '127.0.0.1')`,
      health: [{ type: "http", url: `http://127.0.0.1:${port}/`, interval: "300ms", retries: 2 }],
    },
  }),
  supervisor: { RECHECK_MS: "300" },
});
const sickMarker = () => n.marker("sick");

let aliceToken = "";
type Action = { id: string; kind: string; service: string; state: string; drift_key: string | null; created_at: string };

async function cli(...args: string[]): Promise<{ code: number | null; out: string }> {
  const lines: string[] = [];
  // alice's own approver credential (created on first use): its name is the actor of what she decides.
  if (!aliceToken) {
    const alice = await n.stack.executor!.credentials.create("alice", "approver", "admin");
    if (!alice.ok) throw new Error(alice.message);
    aliceToken = alice.token;
  }
  const io = { out: (s: string) => lines.push(s), err: (s: string) => lines.push(s), env: { STEWARD_API_URL: n.stack.executorUrl, STEWARD_TOKEN: aliceToken } };
  const code = await runCli(args, io);
  return { code, out: lines.join("\n") };
}

async function cliJson<T>(...args: string[]): Promise<T> {
  const r = await cli(...args, "--json");
  expect(r.code, r.out).toBe(0);
  return JSON.parse(r.out) as T;
}

const pendingRestarts = async (): Promise<Action[]> => (await cliJson<{ actions: Action[] }>("actions", "--state", "pending")).actions.filter((a) => a.service === "sick" && a.kind === "restart");

const waitPending = (what: string, not: readonly string[] = []) =>
  waitFor(what, async () => (await pendingRestarts()).find((a) => !not.includes(a.id)), 30_000, 100);

const okCycles = () => metricValue(n.stack.registries["supervisor"]!, "steward_supervisor_cycles_total", { result: "ok" });

describe("a rejection sticks", () => {
  const seen: string[] = [];

  it("reject → no new proposal for 10 cycles, held in steward drift → the drift changes → proposed again", async () => {
    await waitFor("sick healthy", () => n.agent.status().find((s) => s.service === "sick")?.health === "healthy", 30_000);
    await writeFile(sickMarker(), "");
    const first = await waitPending("a pending restart of the unhealthy service");
    expect(first.drift_key).toBe("unhealthy:h1/sick");
    seen.push(first.id);

    const rej = await cli("reject", first.id.slice(0, 8), "--reason", "investigating first");
    expect(rej.code, rej.out).toBe(0);
    expect(rej.out).toMatch(/held \(not proposed again\) until it changes or clears/);

    // Ten whole supervisor cycles after the rejection: none of them proposes the same restart again.
    await waitForTicks("supervisor cycles", okCycles, 10, 60_000);
    expect(await pendingRestarts()).toEqual([]);
    type Report = { drifts: { key: string; held?: { action_id: string; held_by: string; reason: string; until: string | null } }[] };
    const report = await cliJson<Report>("drift");
    expect(report.drifts.find((d) => d.key === "unhealthy:h1/sick")?.held).toMatchObject({ action_id: first.id, held_by: "alice", reason: "investigating first", until: null });
    const text = await cli("drift");
    expect(text.out).toMatch(/restart \(HELD\)/);
    expect(text.out).toMatch(/unhealthy:h1\/sick: held by alice \(cli\) .*until the drift changes or clears: investigating first/);
    const ls = await cli("hold", "ls");
    expect(ls.out).toContain(first.id.slice(0, 8));
    expect(ls.out).toContain("investigating first");

    // The drift changes: the process dies (down, not unhealthy). That is a new question for the operator.
    const pid = n.agent.status().find((s) => s.service === "sick")?.pid;
    expect(pid).toBeGreaterThan(0);
    process.kill(pid!, "SIGKILL");
    const second = await waitPending("a new pending restart once the drift changed", seen);
    expect(second.drift_key).toBe("down:h1/sick");
    seen.push(second.id);
    // The supervisor ends the hold in the cycle that sees the change; it may write that row after the new proposal.
    const ended = await waitFor("the hold's end in the first action's audit", async () => {
      const shown = await cliJson<{ audit: { actor: string; detail: string | null }[] }>("actions", "show", first.id);
      return shown.audit.find((a) => a.detail?.startsWith("hold ended"));
    }, 60_000, 200);
    expect(ended.detail).toBe("hold ended: the drift changed (now down:h1/sick)");
  }, 180_000);

  it("a --for hold holds the drift, then ends by itself: proposed again", async () => {
    const current = seen.at(-1)!;
    const rej = await cli("reject", current, "--reason", "after lunch", "--for", "4s");
    expect(rej.code, rej.out).toBe(0);
    const holds = await cliJson<{ holds: { action_id: string; until: string | null }[] }>("hold", "ls");
    const until = Date.parse(holds.holds.find((h) => h.action_id === current)?.until ?? "");
    expect(until).toBeGreaterThan(Date.now());
    await waitForTicks("supervisor cycles", okCycles, 3, 60_000);
    // Only while the hold is still in force does "nothing was proposed" prove anything.
    if (Date.now() < until) expect(await pendingRestarts()).toEqual([]);
    const next = await waitPending("a pending restart once the hold's time ran out", seen);
    expect(Date.parse(next.created_at)).toBeGreaterThanOrEqual(until);
    seen.push(next.id);
  }, 120_000);

  it("steward hold release ends a hold early: proposed again", async () => {
    const current = seen.at(-1)!;
    expect((await cli("reject", current, "--reason", "not yet")).code).toBe(0);
    await waitForTicks("supervisor cycles", okCycles, 3, 60_000);
    expect(await pendingRestarts()).toEqual([]);
    const bad = await cli("reject", "0000", "--reason", "x", "--for", "2 hours");
    expect(bad.code).toBe(2);
    expect(bad.out).toMatch(/--for must be a duration like 90s, 30m, 2h or 1d/);
    const rel = await cli("hold", "release", current.slice(0, 8), "--reason", "found the cause");
    expect(rel.code, rel.out).toBe(0);
    expect(rel.out).toMatch(/released the hold .* proposed again at the supervisor's next cycle/);
    await waitPending("a pending restart once the hold was released", seen);
    expect((await cli("hold", "release", current.slice(0, 8))).out).toMatch(/no hold in force/);
  }, 120_000);

  afterAll(async () => {
    await rm(sickMarker(), { force: true });
  });
});
