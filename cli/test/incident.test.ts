/**
 * `steward incident ls|show|postmortem` through the CLI against a real planner (its HTTP API, its own nats-server and
 * PostgreSQL). Incidents come the way they do in a stack: an action fails (moved by the actions repository as the
 * executor moves it), the supervisor's escalator sends it to the planner, the planner's task diagnoses it. The
 * post-mortem is drafted from the timeline while no model serves, and by a stand-in Ollama once one does.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IncidentDetail, Incident, PostmortemReply } from "@steward/contracts/incident";
import type { TaskDetail } from "@steward/contracts/task";
import type { Snapshot } from "@steward/contracts/world-state";
import { eventSubject } from "@steward/contracts/subjects";
import { createActionsRepository, type ActionsRepository } from "@steward/actions/repository";
import { createPlanner, loadConfig, type Planner } from "@steward/planner";
import { createPlannerClient } from "@steward/planner/client";
import { createEscalator } from "@steward/supervisor";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { connectNats, ensureStreams, jetstream, type NatsConnection } from "@steward/platform/bus";
import { silentLogger } from "@steward/platform/logger";
import { createRegistry, type Registry } from "@steward/platform/metrics";
import { createTestDatabase, metricValue, startFakeOllama, startNats, waitFor, type FakeOllama, type NatsServerHandle, type OllamaChatRequest, type TestDatabase } from "@steward/testkit";
import { runCli } from "../src/cli.js";

const TOKEN = "cli-incident-test-token-0123456789";

function capture(env: NodeJS.ProcessEnv) {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s), env }, out, err, text: () => out.join("\n"), errors: () => err.join("\n") };
}

/** The stand-in model: a diagnosis for the planner's tasks, the prose of a post-mortem for the incident writer. */
function answer(req: OllamaChatRequest) {
  const system = req.messages[0]?.content ?? "";
  if (system.includes("incident writer")) {
    return { content: JSON.stringify({ summary: "STAND-IN SUMMARY: api on n1 kept exiting with code 3.", root_cause: "Its config file was missing.", what_fixed_it: "Nothing yet.", prevention: ["Check the config file in CI before deploying."] }) };
  }
  return { content: JSON.stringify({ diagnosis: "api exits with code 3: its config file is missing", answer: "api exits with code 3: its config file is missing.", proposals: [] }) };
}

let nats: NatsServerHandle;
let db: TestDatabase;
let nc: NatsConnection;
let sql: Sql;
let dir = "";
let planner: Planner;
let ollama: FakeOllama;
let repo: ActionsRepository;
let registry: Registry;
let url = "";
const env = () => ({ STEWARD_PLANNER_URL: url, STEWARD_PLANNER_TOKEN: TOKEN, STEWARD_HOME: dir });

function snapshot(node: string): Snapshot {
  const now = new Date().toISOString();
  const api = { name: "api", state: "exited" as const, health: "none" as const, exit_code: 3, starts: 2, declared: true, since: now, updated_at: now, checks: {}, last_event_id: "ev-1" };
  return { written_at: now, observer_id: "test", world: { version: 1, last_seq: 1, events_applied: 1, event_time: now, nodes: { [node]: { name: node, status: "up", last_heartbeat: now, heartbeat_interval_ms: 1000, agent_started_at: now, dropped_events: 0, host: null, services: { api } } } } };
}

/** A restart of api on `node` that fails as the executor records it, escalated by the supervisor's own escalator; resolves with its task id. */
async function failedRestart(node: string): Promise<string> {
  const p = await repo.propose({ node, service: "api", kind: "restart", reason: "api is down", driftKey: `down:${node}/api`, proposedBy: "supervisor", channel: "supervisor", auditDetail: "drift down", now: new Date(), ttlMs: 3_600_000, traceparent: null });
  if (!p.proposed) throw new Error("not proposed");
  await repo.approve(p.action.id, "olga", "cli");
  const claimed = await repo.claimNext("exec-test", 60_000);
  if (claimed?.id !== p.action.id) throw new Error("not claimed");
  await repo.finish(p.action.id, "failed", "exited with code 3 within 2 s", { executorId: "exec-test" });
  // The node's own record of it, on the events stream: the incident's timeline shows it.
  await jetstream(nc).publish(eventSubject(node, "service"), JSON.stringify({ type: "service", id: `ev-${node}-${Date.now()}`, node, ts: new Date().toISOString(), service: "api", state: "exited", health: "none", exit_code: 3, starts: 2, declared: true }));
  const escalator = createEscalator({ plannerUrl: url, token: TOKEN, windowMs: 3_600_000, crashLoopCount: 3, healthFailCount: 3, logger: silentLogger() });
  const sent = await escalator.observe({ actions: repo, drifts: [], snapshot: snapshot(node), now: new Date() });
  const e = sent.find((x) => x.node === node);
  if (!e) throw new Error(`no escalation for ${node}`);
  const client = createPlannerClient({ url, token: TOKEN });
  const tasks = await client.tasks({ conversationId: `supervisor:${node}/api` });
  const task = tasks.find((t) => t.content.includes(`The restart of api on ${node} failed`));
  if (!task) throw new Error("no task");
  await waitFor(`the planner's task about ${node}/api`, async () => ["succeeded", "failed", "dead"].includes((await client.task(task.id)).task.state), 60_000, 100);
  return task.id;
}

beforeAll(async () => {
  [nats, db, dir] = await Promise.all([startNats(), createTestDatabase("steward_cli_incident"), mkdtemp(join(tmpdir(), "steward-cli-incident-"))]);
  nc = await connectNats(nats.url, "cli-incident-test");
  sql = connectDb(db.url, { max: 8 });
  await Promise.all([migrate(sql), ensureStreams(nc)]);
  const fleet = join(dir, "fleet.yaml");
  await writeFile(fleet, `version: 1\nnodes:\n  n1:\n    services:\n      api:\n        kind: process\n        command: ["sleep", "3600"]\n  n2:\n    services:\n      api:\n        kind: process\n        command: ["sleep", "3600"]\n`);
  ollama = await startFakeOllama({ defaultAnswer: answer });
  ollama.setMode("down");
  const config = loadConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, API_TOKEN: TOKEN, FLEET_SPEC: fleet, HTTP_PORT: "0", CLAUDE_ENABLED: "false", OLLAMA_URL: ollama.url, OLLAMA_CIRCUIT_MS: "100", OLLAMA_HEALTH_TIMEOUT_MS: "5000", INCIDENT_CHECK_MS: "200" });
  registry = createRegistry("planner", false);
  planner = createPlanner({ config, sql, nc, logger: silentLogger(), registry });
  url = `http://127.0.0.1:${(await planner.start()).port}`;
  repo = createActionsRepository(sql);
}, 60_000);

afterAll(async () => {
  await planner?.stop();
  await ollama?.close();
  await nc?.close().catch(() => undefined);
  await sql?.end({ timeout: 2 }).catch(() => undefined);
  await db?.drop().catch(() => undefined);
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("steward incident against a running planner", () => {
  let firstTask = "";

  it("a failed action escalated by the supervisor is an incident: ls lists it", async () => {
    firstTask = await failedRestart("n1");
    const json = capture(env());
    expect(await runCli(["incident", "ls", "--json"], json.io)).toBe(0);
    const { incidents } = JSON.parse(json.text()) as { incidents: Incident[] };
    expect(incidents).toHaveLength(1);
    expect(incidents[0]).toMatchObject({ id: 1, node: "n1", service: "api", signature: "down:exit=3", state: "open", title: "api on n1: down (exit 3)", tasks: 1 });
    const text = capture(env());
    expect(await runCli(["incident", "ls"], text.io)).toBe(0);
    expect(text.text()).toMatch(/#1\s+open\s+n1\/api\s+down:exit=3/);
    const none = capture(env());
    expect(await runCli(["incident", "ls", "--state", "resolved"], none.io)).toBe(0);
    expect(none.text()).toBe("no incidents");
  }, 90_000);

  it("show: the timeline holds the escalation, its diagnosis, every audited transition of the action (who, which channel) and the node's event", async () => {
    const json = capture(env());
    expect(await runCli(["incident", "show", "1", "--json"], json.io)).toBe(0);
    const d = JSON.parse(json.text()) as IncidentDetail;
    const lines = d.timeline.map((e) => `${e.source}: ${e.what}`);
    const id8 = d.actions[0]!.id.slice(0, 8);
    expect(lines).toEqual(expect.arrayContaining([
      `action: restart n1/api ${id8} proposed (pending) by supervisor via supervisor: drift down`,
      `action: restart n1/api ${id8} pending → approved by olga via cli`,
      expect.stringMatching(new RegExp(`^action: restart n1/api ${id8} running → failed by .*exited with code 3 within 2 s`)),
      expect.stringMatching(/^task: escalated to the planner \(action_failed\): The restart of api on n1 failed/),
      expect.stringMatching(/^task: task .* diagnosis: rule-based/),
      "event: api exited (health none, exit 3)",
      "incident: incident #1 opened: api on n1: down (exit 3)",
    ]));
    expect(d.tasks.map((t) => t.id)).toEqual([firstTask]);
    expect(d.incident.diagnosis).toBeTruthy();
    const text = capture(env());
    expect(await runCli(["incident", "show", "#1"], text.io)).toBe(0);
    expect(text.text()).toContain("incident #1: api on n1: down (exit 3)");
    expect(text.text()).toContain(`pending → approved by olga via cli`);
    expect(text.text()).toContain("similar past incidents: none");
  });

  it("postmortem with no model serving: drafted from the timeline, and it says so", async () => {
    const c = capture(env());
    expect(await runCli(["incident", "postmortem", "1"], c.io)).toBe(0);
    const md = c.text();
    for (const h of ["# Post-mortem: incident #1, api on n1: down (exit 3)", "## Summary", "## Timeline", "## Impact", "## Root cause", "## What fixed it", "## Prevention"]) expect(md).toContain(h);
    expect(md).toMatch(/no model wrote this \(the local model is down, and Claude is disabled\)/);
    expect(md).toContain("pending → approved by olga via cli");
    expect(c.errors()).toContain("drafted from the timeline");
    const shown = capture(env());
    expect(await runCli(["incident", "show", "1", "--json"], shown.io)).toBe(0);
    expect((JSON.parse(shown.text()) as IncidentDetail).postmortem).toBe(md);
  });

  it("the same failure of api on another node is its own incident, and show lists the first as similar", async () => {
    await failedRestart("n2");
    const c = capture(env());
    expect(await runCli(["incident", "show", "2", "--json"], c.io)).toBe(0);
    const d = JSON.parse(c.text()) as IncidentDetail;
    expect(d.incident).toMatchObject({ node: "n2", service: "api", signature: "down:exit=3" });
    expect(d.similar[0]).toMatchObject({ id: 1, node: "n1", match: "signature" });
    const text = capture(env());
    expect(await runCli(["incident", "show", "2"], text.io)).toBe(0);
    expect(text.text()).toMatch(/#1\s+n1\/api\s+down:exit=3\s+.*same failure/);
  }, 90_000);

  it("postmortem with a model serving (a stand-in Ollama): its prose around the records, its call recorded on a task", async () => {
    ollama.setMode("up");
    const before = ollama.chats().length;
    const c = capture(env());
    const out = join(dir, "pm-1.md");
    await waitFor("the planner to see the local model up", async () => {
      const r = capture(env());
      await runCli(["incident", "postmortem", "1", "--json"], r.io);
      return (JSON.parse(r.text() || "{}") as Partial<PostmortemReply>).by === "model";
    }, 30_000, 300);
    expect(await runCli(["incident", "postmortem", "1", "--out", out, "--json"], c.io)).toBe(0);
    const r = JSON.parse(c.text()) as PostmortemReply;
    expect(r).toMatchObject({ incident_id: 1, by: "model" });
    expect(r.detail).toContain("the local model (default, llama3.1:8b)");
    const md = await readFile(out, "utf8");
    expect(md).toBe(r.markdown);
    expect(md).toContain("STAND-IN SUMMARY: api on n1 kept exiting with code 3.");
    expect(md).toContain("- Check the config file in CI before deploying.");
    expect(md).toContain("pending → approved by olga via cli");
    // What the model read: the records, as an untrusted block.
    const chat = ollama.chats().slice(before).find((x) => (x.messages[0]?.content ?? "").includes("incident writer"));
    expect(chat?.messages.at(-1)?.content).toContain("<<<UNTRUSTED");
    expect(chat?.messages.at(-1)?.content).toContain("approved by olga via cli");
    // Its model call and cost are on a planner task, like any other.
    const task = capture(env());
    expect(await runCli(["task", "show", r.task_id, "--json"], task.io)).toBe(0);
    const t = JSON.parse(task.text()) as TaskDetail;
    expect(t.task.state).toBe("succeeded");
    expect(t.calls.map((x) => x.provider)).toEqual(["ollama"]);
    expect(await metricValue(registry, "steward_planner_incidents_total", { event: "opened" })).toBe(2);
    expect(await metricValue(registry, "steward_planner_postmortems_total", { by: "timeline" })).toBeGreaterThanOrEqual(1);
    expect(await metricValue(registry, "steward_planner_postmortems_total", { by: "model" })).toBeGreaterThanOrEqual(2);
    // --out never overwrites.
    const again = capture(env());
    expect(await runCli(["incident", "postmortem", "1", "--out", out], again.io)).toBe(2);
    expect(again.errors()).toContain("is never overwritten");
  }, 90_000);

  it("bad input: an id that is not an incident number exits 2 naming it; an unknown incident exits 1; a bad state exits 2", async () => {
    const bad = capture(env());
    expect(await runCli(["incident", "show", "abc"], bad.io)).toBe(2);
    expect(bad.errors()).toContain("ID must be an incident number");
    const none = capture(env());
    expect(await runCli(["incident", "show", "99"], none.io)).toBe(1);
    expect(none.errors()).toContain("no incident #99");
    const state = capture(env());
    expect(await runCli(["incident", "ls", "--state", "bogus"], state.io)).toBe(2);
    const api = await fetch(`${url}/incidents?state=bogus`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(api.status).toBe(400);
    expect(((await api.json()) as { error: { field: string } }).error.field).toBe("state");
    expect((await fetch(`${url}/incidents/x1`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(400);
    expect((await fetch(`${url}/incidents`)).status).toBe(401);
  });
});
