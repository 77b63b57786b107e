/**
 * A failure that keeps coming back, end to end on real parts: a process on a node whose health check fails while a
 * marker file exists (node-agent, observer, planner, alerter in this process; NATS and PostgreSQL real; ntfy a local
 * stand-in). Each time it fails, the supervisor's own escalator (fed the unhealthy drift and the world as the
 * supervisor's cycle feeds it; no supervisor runs, so no restart is proposed to hold the incident open) sends the
 * escalation to the planner's inbox; the planner opens an incident and, once the service has
 * been healthy for the quiet period, ends it. The third incident of the same failure links the earlier two and raises
 * "this keeps happening" once; a fourth within the window raises nothing more.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IncidentDetail } from "@steward/contracts/incident";
import type { Drift } from "@steward/contracts/drift";
import { createActionsRepository } from "@steward/actions/repository";
import { createEscalator, type Escalator } from "@steward/supervisor";
import { silentLogger } from "@steward/platform/logger";
import { openWorldBucket } from "@steward/platform/bus";
import { readWorldNodes } from "@steward/world/world-store";
import { createPlannerClient, type PlannerClient } from "@steward/planner/client";
import { freePort, metricValue, startFakeNtfy, waitFor, waitForTicks, type FakeNtfy } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";

let stack: Stack;
let ntfy: FakeNtfy;
let planner: PlannerClient;
let home = "";
let marker = "";
let escalator: Escalator;

const TITLE = "This keeps happening: web on r1";

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "steward-recurrence-"));
  marker = join(home, "broken");
  const [port, plannerPort] = await Promise.all([freePort(), freePort()]);
  ntfy = await startFakeNtfy();
  const server = `require('http').createServer((q,s)=>{s.statusCode=require('fs').existsSync(${JSON.stringify(marker)})?500:200;s.end('x')}).listen(${port},'127.0.0.1')`;
  stack = await startStack({
    dbPrefix: "steward_incident_recurrence",
    fleet: `version: 1\nnodes:\n  r1:\n    services:\n      web:\n        kind: process\n        command: [${JSON.stringify(process.execPath)}, "-e", ${JSON.stringify(server)}]\n        health:\n          - type: http\n            url: http://127.0.0.1:${port}/\n            interval: 300ms\n            retries: 2\n`,
    observer: { SNAPSHOT_MAX_INTERVAL_MS: "1000" },
    executor: { EXECUTOR_WORKER: "false" },
    agents: { r1: {} },
    // No model: the planner's tasks end with its runbooks. Incidents end after 1.5 s of health (10 min in production).
    planner: { HTTP_PORT: String(plannerPort), OLLAMA_URL: `http://127.0.0.1:${await freePort()}`, INCIDENT_QUIET_MS: "1500", INCIDENT_CHECK_MS: "300" },
    alerter: { NTFY_URL: ntfy.url, NTFY_TOPIC: "steward-recurrence", PLANNER_URL: `http://127.0.0.1:${plannerPort}`, COST_POLL_MS: "300", ALERT_EVAL_MS: "500", RETRY_BASE_MS: "100", ALERT_GROUP_WAIT_MS: "300", ALERT_GROUP_INTERVAL_MS: "1000" },
  });
  planner = createPlannerClient({ url: stack.plannerUrl, token: stack.token });
  // One unhealthy episode is enough to escalate here (3 in production), in 1 s buckets so each occurrence is news.
  escalator = createEscalator({ plannerUrl: stack.plannerUrl, token: stack.token, windowMs: 1000, crashLoopCount: 3, healthFailCount: 1, logger: silentLogger() });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await ntfy?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

async function world() {
  const r = await readWorldNodes(await openWorldBucket(stack.nc), ["r1"]);
  return r.ok ? r.value : undefined;
}

/** Breaks web, escalates as the supervisor does, waits for the incident; then heals web and waits for it to end. */
async function occurrence(n: number): Promise<number> {
  await writeFile(marker, "");
  const snapshot = await waitFor(`web unhealthy (occurrence ${n})`, async () => {
    const w = await world();
    return w?.world.nodes["r1"]?.services["web"]?.health === "unhealthy" ? w : undefined;
  }, 30_000, 100);
  const svc = snapshot.world.nodes["r1"]!.services["web"]!;
  const drift: Drift = { key: "unhealthy:r1/web", kind: "unhealthy", node: "r1", service: "web", severity: "action", message: `web on r1 is unhealthy (${svc.detail ?? "check failing"})`, since: svc.updated_at, proposes: "restart" };
  const sent = await escalator.observe({ actions: createActionsRepository(stack.sql), drifts: [drift], snapshot, now: new Date() });
  expect(sent.map((e) => e.signal)).toEqual(["repeated_health_failures"]);
  const incident = await waitFor(`incident ${n} open`, async () => (await planner.incidents({ state: "open" })).find((i) => i.node === "r1" && i.service === "web"), 30_000, 200);
  await waitFor(`task ${n} done`, async () => (await planner.tasks({ conversationId: "supervisor:r1/web" })).every((t) => t.state === "succeeded"), 60_000, 200);
  await rm(marker, { force: true });
  await waitFor(`incident ${n} resolved`, async () => (await planner.incident(incident.id)).incident.state === "resolved", 60_000, 200);
  return incident.id;
}

const recurrenceNotices = () => ntfy.published.filter((m) => m.title?.startsWith(TITLE));

describe("a failure that keeps coming back", () => {
  const ids: number[] = [];

  it("two incidents of the same failure: linked, but not yet a recurrence", async () => {
    ids.push(await occurrence(1), await occurrence(2));
    const second = await planner.incident(ids[1]!);
    expect(second.incident.signature).toMatch(/^unhealthy:check=/);
    expect(second.incident.outcome).toBe("running and healthy again without a Steward action");
    expect(second.similar.map((s) => [s.id, s.match])).toEqual([[ids[0], "signature"]]);
    expect(second.recurrence).toBeNull();
    expect(await planner.recurrences()).toEqual([]);
  }, 240_000);

  it("the third links both earlier ones and raises 'this keeps happening' once, through ntfy", async () => {
    ids.push(await occurrence(3));
    const third: IncidentDetail = await planner.incident(ids[2]!);
    expect(third.similar.filter((s) => s.match === "signature").map((s) => s.id).sort()).toEqual([ids[0], ids[1]].sort());
    expect(third.recurrence).toMatchObject({ node: "r1", service: "web", signature: third.incident.signature, count: 3, incident_ids: ids });
    const notice = await ntfy.waitFor((m) => m.title?.startsWith(TITLE) === true, 30_000);
    expect(notice.message).toContain(`3 incidents of the same failure (${third.incident.signature}) within 30 days: #${ids[0]}, #${ids[1]}, #${ids[2]}`);
    expect(notice.message).toContain(`steward incident show ${ids[2]}`);
  }, 240_000);

  it("a fourth within the window raises nothing more", async () => {
    ids.push(await occurrence(4));
    const fourth = await planner.incident(ids[3]!);
    expect(fourth.recurrence?.incident_ids).toEqual(ids.slice(0, 3));
    expect(await planner.recurrences()).toHaveLength(1);
    // Two whole evaluations after the planner's list was read again: the alert is still the one, told once.
    const evaluations = () => metricValue(stack.registries["alerter"]!, "steward_alerter_evaluations_total");
    await waitForTicks("alerter evaluations", evaluations, 3, 30_000);
    expect(recurrenceNotices()).toHaveLength(1);
    const firing = (await stack.alerter!.store.listFiring()).filter((a) => a.rule === "incident_recurs");
    expect(firing).toHaveLength(1);
  }, 240_000);
});
