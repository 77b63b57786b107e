/**
 * Restart drills end to end, driven through the CLI as an operator would (`steward drill`, `steward approve`,
 * `steward drill show|ls`), against a stack whose parts are all real and in this process: a drill that passes its
 * objective, one that misses it (the alerter pushes it to ntfy), and one refused because its node is stale.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPEN_ACTION_STATES, type Action } from "@steward/contracts/action";
import type { DrillDetailReply, DrillListReply, DrillProposeReply } from "@steward/contracts/executor-api";
import type { Snapshot } from "@steward/contracts/world-state";
import { actionsOf } from "@steward/actions/testing";
import { freePort, startFakeNtfy, waitFor, type FakeNtfy } from "@steward/testkit";
import { CLI } from "../cli/test/steward-process.js";
import { startStack, type Stack } from "./support/stack.js";

let stack: Stack;
let ntfy: FakeNtfy;
let dir: string;

const node = JSON.stringify(process.execPath);
const idle = `[${node}, "-e", "setInterval(() => {}, 1000)"]`;

/** Where n1/slow listens once it is ready. */
let slowPort = 0;

const fleet = (_dir: string) => `version: 1
nodes:
  n1:
    services:
      db:
        kind: process
        command: ${idle}
        recovery_objective: 30s
      web:
        kind: process
        command: ${idle}
        depends_on: [db]
        recovery_objective: 30s
      slow:
        kind: process
        # Listening only 3 s after each start: it cannot meet a 1 s objective. The port closes with the killed process,
        # so nothing the previous start left behind reads as the new one being ready (a ready-file did, under load:
        # checked before the new shell had removed it).
        command: [${node}, "-e", ${JSON.stringify(`setTimeout(() => require("node:net").createServer().listen(${slowPort}, "127.0.0.1"), 3000); setInterval(() => {}, 1000)`)}]
        health:
          - type: tcp
            port: ${slowPort}
            interval: 200ms
            retries: 1
        recovery_objective: 1s
  n2:
    services:
      api:
        kind: process
        command: ${idle}
        recovery_objective: 30s
`;

beforeAll(async () => {
  ntfy = await startFakeNtfy();
  dir = await mkdtemp(join(tmpdir(), "steward-drill-e2e-"));
  slowPort = await freePort();
  stack = await startStack({
    dbPrefix: "steward_drill_e2e",
    dir,
    fleet,
    observer: { SNAPSHOT_MAX_INTERVAL_MS: "1000" },
    supervisor: true,
    // The stack gives the executor no spec by default; drills need it (objectives, dependencies).
    executor: { POLL_MS: "200", VERIFY_POLL_MS: "50", FLEET_SPEC: join(dir, "fleet.yaml") },
    agents: { n1: {}, n2: {} },
    alerter: { NTFY_URL: ntfy.url, NTFY_TOPIC: "steward-drills", ALERT_EVAL_MS: "500", RETRY_BASE_MS: "100" },
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await ntfy?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Run<T> {
  code: number;
  stdout: string;
  stderr: string;
  json: T;
}

/** `steward ARGS` as a separate process (async: the stack answers from this process's event loop). */
function steward<T = unknown>(args: string[]): Promise<Run<T>> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, STEWARD_API_URL: stack.executorUrl, STEWARD_TOKEN: stack.token, STEWARD_USER: "drill-operator", NO_COLOR: "1" }, timeout: 30_000 }, (err, stdout, stderr) => {
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr, json: json as T });
    });
  });
}

/** Signs in to the web console with the stack's token (as a browser would post the form) and reads one page. */
async function consolePage(path: string): Promise<string> {
  const login = await fetch(`${stack.executorUrl}/console/login`, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded", origin: stack.executorUrl }, body: new URLSearchParams({ token: stack.token, name: "drill-operator" }).toString() });
  expect(login.status).toBe(303);
  const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0]!;
  const res = await fetch(stack.executorUrl + path, { headers: { cookie } });
  expect(res.status).toBe(200);
  return res.text();
}

async function healthy(nodeName: string, services: string[]): Promise<void> {
  await waitFor(`${nodeName}: ${services.join(", ")} running and healthy in the world`, async () => {
    const r = await steward<Snapshot>(["status", "--json"]);
    const n = r.json?.world.nodes[nodeName];
    return n?.status === "up" && services.every((s) => n.services[s]?.state === "running" && ["healthy", "none"].includes(n.services[s]?.health ?? "")) ? true : undefined;
  }, 60_000, 200);
}

/**
 * Proposes a drill with the CLI, approves it with the CLI, and waits through `steward drill show` for its result and
 * its action's end: the executor keeps the result before it ends the action, so one can be seen without the other.
 */
async function drill(service: string, extra: string[]): Promise<DrillDetailReply> {
  const proposed = await steward<DrillProposeReply>(["drill", service, ...extra, "--json"]);
  expect(proposed.code, proposed.stderr).toBe(0);
  expect(proposed.json.refused).toEqual([]);
  const [action] = proposed.json.proposed;
  expect(action).toMatchObject({ kind: "drill", service, state: "pending", proposed_by: "admin" });
  const approved = await steward(["approve", action!.id.slice(0, 8)]);
  expect(approved.code, approved.stderr).toBe(0);
  return waitFor(`drill ${service} finished`, async () => {
    const r = await steward<DrillDetailReply>(["drill", "show", action!.id, "--json"]);
    const open: readonly string[] = OPEN_ACTION_STATES;
    return r.json?.result && !open.includes(r.json.action.state) ? r.json : undefined;
  }, 120_000, 250);
}

describe("steward drill", () => {
  it("a drill that meets its objective: killed, seen down, restart proposed and approved by the drill (only that one), healthy again", async () => {
    await healthy("n1", ["db", "web"]);
    const d = await drill("web", ["--node", "n1", "--approve"]);
    const r = d.result!;
    expect(r.verdict, r.reason).toBe("passed");
    expect(d.action.state).toBe("succeeded");
    expect(d.action.result).toMatch(/^drill passed: healthy again after/);
    // Every step was seen, in order, within the objective.
    const steps = [r.detected_ms, r.proposed_ms, r.approved_ms, r.recovered_ms];
    expect(steps.every((x) => typeof x === "number")).toBe(true);
    expect(r.detected_ms!).toBeLessThanOrEqual(r.recovered_ms!);
    expect(r.proposed_ms!).toBeLessThanOrEqual(r.approved_ms!);
    expect(r.approved_ms!).toBeLessThanOrEqual(r.recovered_ms!);
    expect(r.recovered_ms!).toBeLessThanOrEqual(30_000);
    // The restart was the supervisor's, approved by the drill as its actor, audited as such.
    // The drill ends when the world shows the service healthy; the restart's own verification may end a moment later.
    expect(d.restart?.action).toMatchObject({ kind: "restart", node: "n1", service: "web" });
    await waitFor("the restart succeeded", async () => ((await steward<{ action: Action }>(["actions", "show", d.restart!.action.id, "--json"])).json?.action.state === "succeeded" ? true : undefined), 60_000, 200);
    expect(r.approved_by).toBe(`drill:${d.action.id}`);
    const approval = d.restart!.audit.find((e) => e.to_state === "approved");
    expect(approval).toMatchObject({ actor: `drill:${d.action.id}`, channel: "policy" });
    expect(approval?.detail).toMatch(/approved by restart drill .*the restart this drill caused by killing n1\/web/);
    // The drill approved nothing else.
    const all = await actionsOf(stack.sql);
    const byDrill = (await Promise.all(all.map(async (a: Action) => ((await stack.executor!.store.audit(a.id)).some((e) => e.actor.startsWith("drill:")) ? a.id : null)))).filter(Boolean);
    expect(byDrill).toEqual([d.restart!.action.id]);

    const text = await steward(["drill", "show", d.action.id.slice(0, 8)]);
    expect(text.stdout).toMatch(/verdict: PASSED/);
    expect(text.stdout).toMatch(/down in the world/);
    expect(text.stdout).toMatch(new RegExp(`restart approved by drill:${d.action.id}`));
  }, 240_000);

  it("a drill that misses its objective: the result says by how much and the alerter pushes it", async () => {
    await healthy("n1", ["slow"]);
    const d = await drill("slow", ["--approve"]);
    const r = d.result!;
    expect(r.verdict, r.reason).toBe("missed");
    expect(r.recovered_ms!).toBeGreaterThan(1000);
    expect(r.reason).toMatch(/^healthy again after .* s, over the objective 1\.0 s/);
    // Alone it reads as the drill's alert, naming the action; when the slow service's own drift alert is still open on
    // n1 (timing: it recovers over the objective), the two come as one notice on n1 that lists both titles.
    const push = await ntfy.waitFor((m) => m.title === "Drill missed its objective: n1/slow" || /^\d+ alerts on n1: .*Drill missed its objective: n1\/slow/.test(m.title ?? ""), 30_000);
    if (push.title === "Drill missed its objective: n1/slow") expect(push.message).toContain(d.action.id.slice(0, 8));

    const ls = await steward<{ drills: DrillListReply["drills"] }>(["drill", "ls", "--json"]);
    expect(ls.json.drills.map((x) => [x.action.service, x.result?.verdict])).toEqual([
      ["slow", "missed"],
      ["web", "passed"],
    ]);
    const table = await steward(["drill", "ls"]);
    expect(table.stdout).toMatch(/MISSED\s+n1\/slow/);
    expect(table.stdout).toMatch(/PASSED\s+n1\/web/);

    // The console's Drills page shows the same two drills, as an operator signed in there sees them.
    const page = await consolePage("/console/drills");
    const row = (service: string) => new RegExp(`<tr class="drill"[^>]*data-status="([a-z_]+)" data-objective="([a-z ]+)">(?:(?!</tr>)[\\s\\S])*?>n1/${service}</a>[\\s\\S]*?</tr>`).exec(page);
    expect(row("slow")?.slice(1)).toEqual(["missed", "missed"]);
    expect(row("slow")?.[0]).toContain(r.reason); // plain words and digits: the same escaped or not
    expect(row("web")?.slice(1)).toEqual(["passed", "met"]);
  }, 240_000);

  it("a drill of a service on a stale node is refused with the reason, and nothing changes", async () => {
    await healthy("n2", ["api"]);
    await stack.agents["n2"]!.stop();
    await waitFor("n2 stale in the world", async () => ((await steward<Snapshot>(["status", "--json"])).json?.world.nodes["n2"]?.status === "stale" ? true : undefined), 30_000, 200);
    const before = await actionsOf(stack.sql);
    const r = await steward(["drill", "api"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refused, nothing was changed: n2\/api: node n2 is stale \(last heartbeat .*\): a drill needs a node that reports/);
    expect(r.stderr).toMatch(/HTTP 409, drill_refused/);
    // Nothing was proposed, approved or sent; the drill list has no entry for it.
    expect((await actionsOf(stack.sql)).map((a) => [a.id, a.state])).toEqual(before.map((a) => [a.id, a.state]));
    expect((await steward<{ drills: DrillListReply["drills"] }>(["drill", "ls", "--json"])).json.drills.some((x) => x.action.node === "n2")).toBe(false);
  }, 120_000);
});
