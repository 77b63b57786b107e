/**
 * The database and the bus restart under the services (an upgrade, a crash, a host reboot) while work is in flight:
 * tasks queued and running in the planner, a proposal waiting for approval (pushed to ntfy with a signed Approve
 * button), an approved action to run. Every service (observer, supervisor, executor, planner, alerter, node-agent)
 * runs as its real process (`dist/main.js`). Nothing may exit, the executor says 503 database_unreachable while
 * PostgreSQL is down, work resumes within seconds of it coming back (each service's own work counter moves again),
 * and nothing runs twice.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes, randomUUID } from "node:crypto";
import { generateSigningKey } from "@steward/contracts/command-keys";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnService, type ServiceName, type ServiceProcess } from "./support/service-process.js";
import { natsSecurity, type NatsSecurity } from "./support/secure-nats.js";
import { startFakeNtfy, startFakeOllama, startNats, startPrivatePostgres, stopProcess, waitFor, waitForTicks, type FakeNtfy, type FakeOllama, type NatsServerHandle, type PrivatePostgres } from "@steward/testkit";

const TOKEN = randomBytes(24).toString("hex");
/** The alerter's own, scoped executor credential. */
const ALERTER_TOKEN = randomBytes(24).toString("hex");

let pg: PrivatePostgres;
let nats: NatsServerHandle;
let security: NatsSecurity;
let ollama: FakeOllama;
let dir = "";
/** The fleet spec and how it is written, so that a test can declare one more service. */
let fleet = "";
let fleetYaml = "";
const procs: ServiceProcess[] = [];
let executorUrl = "";
let plannerUrl = "";
let ntfy: FakeNtfy;
/** Each service's /metrics, to see its own work go on after a restart. */
const metricsOf: Record<string, string> = {};

/** The sum of a counter's samples whose labels contain `labels` (e.g. `result="ok"`). */
async function counter(url: string, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(url, { signal: AbortSignal.timeout(10_000) })).text();
  let n = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, "gm"))) if ((m[1] ?? "").includes(labels)) n += Number(m[2]);
  return n;
}

/** What each service does on its own, every few hundred ms: after a restart each must move again. */
const WORK: [service: string, counter: string, labels?: string][] = [
  ["observer", "steward_observer_events_folded_total"],
  ["node-agent", "steward_node_agent_events_published_total"],
  ["supervisor", "steward_supervisor_cycles_total", 'result="ok"'],
  ["executor", "steward_executor_claim_polls_total"],
  ["alerter", "steward_alerter_evaluations_total", 'result="ok"'],
];

async function everyServiceWorks(): Promise<void> {
  await Promise.all(
    WORK.map(([svc, name, labels]) =>
      waitForTicks(`${svc} ${name}`, () => counter(metricsOf[svc]!, name, labels), 2, 60_000).catch((err: Error) => {
        const p = procs.filter((x) => x.name === svc).at(-1);
        throw new Error(`${err.message}; ${svc}'s last output:\n${p?.output.slice(-6000) ?? "(none)"}`);
      }),
    ),
  );
}

function launch(name: ServiceName, env: Record<string, string>): ServiceProcess {
  const p = spawnService(name, env);
  procs.push(p);
  return p;
}

/** A JSON reply, read field by field by each step (and failing loudly there if a field is missing). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

async function call(base: string, path: string, init: { method?: string; body?: unknown } = {}): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${base}${path}`, {
    method: init.method ?? "GET",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

function expectAllAlive(): void {
  for (const p of procs) {
    expect({ name: p.name, exit: p.child.exitCode, signal: p.child.signalCode }).toEqual({ name: p.name, exit: null, signal: null });
    expect(p.output, `${p.name} logged a fatal error`).not.toMatch(/"level":60/);
  }
}

const postTask = async (content: string) => {
  const r = await call(plannerUrl, "/inbox", { method: "POST", body: { task_id: randomUUID(), content, source: "cli", user: "ops" } });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.task.id as string;
};
const taskState = async (id: string): Promise<string> => (await call(plannerUrl, `/tasks/${id}`)).body?.task?.state ?? "";

beforeAll(async () => {
  // NATS as deployed: TLS and each service its own identity (the restart below keeps the config).
  security = await natsSecurity(["n1"]);
  [pg, nats] = await Promise.all([startPrivatePostgres(), startNats({ config: security.config })]);
  // The model takes a while to answer, so that tasks are running (not only queued) when the database goes away.
  ntfy = await startFakeNtfy();
  ollama = await startFakeOllama({ defaultAnswer: { content: JSON.stringify({ diagnosis: "looked at it", answer: "fine", proposals: [] }), delayMs: 700 } });
  dir = await mkdtemp(join(tmpdir(), "steward-restart-"));
  fleet = join(dir, "fleet.yaml");
  // `extra` is declared but never started: the supervisor proposes its start, and that action waits for approval.
  const sleeper = `[${JSON.stringify(process.execPath)}, "-e", "setInterval(() => {}, 1000)"]`;
  fleetYaml = `version: 1\nnodes:\n  n1:\n    services:\n      web:\n        kind: process\n        command: ${sleeper}\n      extra:\n        kind: process\n        command: ${sleeper}\n        autostart: false\n`;
  await writeFile(fleet, fleetYaml);
  const fleetKey = randomBytes(24).toString("hex");
  const commandKeys = generateSigningKey();
  const common = { NATS_URL: nats.url };
  const withDb = { ...common, DATABASE_URL: pg.url };
  const observer = launch("observer", { ...common, ...security.env("observer"), SNAPSHOT_PATH: join(dir, "world.json"), METRICS_PORT: "0", SNAPSHOT_DEBOUNCE_MS: "20" });
  const agent = launch("node-agent", { ...common, ...security.env("node.n1"), NODE_NAME: "n1", FLEET_SPEC: fleet, FLEET_KEY: fleetKey, NODE_COMMAND_PUBLIC_KEY: commandKeys.publicKey, METRICS_PORT: "0", HEARTBEAT_MS: "500", STATE_DIR: join(dir, "agent") });
  const supervisor = launch("supervisor", { ...withDb, ...security.env("supervisor"), FLEET_SPEC: fleet, METRICS_PORT: "0", RECHECK_MS: "500" });
  const executor = launch("executor", { ...withDb, ...security.env("executor"), API_TOKEN: TOKEN, ALERTER_TOKEN, EXECUTOR_SIGNING_KEY: commandKeys.privateKey, HTTP_PORT: "0", METRICS_PORT: "0", POLL_MS: "200", VERIFY_TIMEOUT_MS: "30000" });
  const planner = launch("planner", { ...withDb, ...security.env("planner"), API_TOKEN: TOKEN, HTTP_PORT: "0", METRICS_PORT: "0", FLEET_SPEC: fleet, OLLAMA_URL: ollama.url, CLAUDE_ENABLED: "false", WORKERS: "2", POLL_MS: "200" });
  executorUrl = await waitFor("executor API", () => /executor API on (http:\/\/\S+)/.exec(executor.output)?.[1], 60_000, 20);
  plannerUrl = await waitFor("planner API", () => /"port":(\d+)[^\n]*"planner started"/.exec(planner.output)?.[1], 60_000, 20).then((p) => `http://127.0.0.1:${p}`);
  // The alerter pushes pending actions to ntfy with Approve/Reject buttons that call the executor with a signed token.
  const alerter = launch("alerter", { ...withDb, ...security.env("alerter"), API_TOKEN: ALERTER_TOKEN, PLANNER_TOKEN: TOKEN, EXECUTOR_URL: executorUrl, PLANNER_URL: plannerUrl, METRICS_PORT: "0", NTFY_URL: ntfy.url, NTFY_TOPIC: "steward", NTFY_TOPIC_PROTECTED: "true", ALERT_EVAL_MS: "300", RETRY_BASE_MS: "200" });
  const alerterUrl = await waitFor("alerter", () => /steward alerter on (http:\/\/\S+) /.exec(alerter.output)?.[1], 60_000, 20);
  metricsOf["observer"] = await waitFor("observer metrics", () => /"port":(\d+)[^\n]*"serving \/metrics"/.exec(observer.output)?.[1], 60_000, 20).then((p) => `http://127.0.0.1:${p}/metrics`);
  metricsOf["node-agent"] = await waitFor("node-agent metrics", () => /"url":"(http:[^"]+)"[^\n]*"serving metrics"/.exec(agent.output)?.[1], 60_000, 20);
  metricsOf["supervisor"] = await waitFor("supervisor metrics", () => /"metrics":"(http:[^"]+)"[^\n]*"supervisor running"/.exec(supervisor.output)?.[1], 60_000, 20);
  // The executor and the planner serve /metrics on a listener of their own, not on their API port.
  metricsOf["executor"] = await waitFor("executor metrics", () => /\(metrics on (http:\/\/\S+)\)/.exec(executor.output)?.[1], 60_000, 20);
  metricsOf["planner"] = await waitFor("planner metrics", () => /"metrics":"(http:[^"]+)"[^\n]*"planner running"/.exec(planner.output)?.[1], 60_000, 20);
  metricsOf["alerter"] = `${alerterUrl}/metrics`;
  // The API ports serve no /metrics (issue 13): only the metrics listeners do.
  for (const api of [executorUrl, plannerUrl]) expect((await fetch(`${api}/metrics`)).status, api).toBe(404);
}, 120_000);

afterAll(async () => {
  // A process that died is the finding: its last words are the post-mortem.
  for (const p of procs) if (p.child.exitCode !== null || p.child.signalCode !== null) console.error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}); its last output:\n${p.output.slice(-4000)}`);
  await Promise.allSettled(procs.map((p) => stopProcess(p.child, 5000)));
  await ollama?.close();
  await ntfy?.close();
  await nats?.stop();
  await security?.remove();
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("restarts under load", () => {
  it("PostgreSQL restarts with tasks in flight and an action waiting: 503 while down, everything resumes, nothing runs twice", async () => {
    const pending = await waitFor(
      "the supervisor to propose starting n1/extra",
      async () => {
        const r = await call(executorUrl, "/api/actions?state=pending");
        return r.status === 200 && (r.body.actions as { id: string; service: string; kind: string }[]).find((a) => a.service === "extra" && a.kind === "start");
      },
      60_000,
      100,
    );
    // The approval in flight: its ntfy push, with a token minted before the restart and pressed after it.
    const push = await ntfy.waitFor((m) => m.actions.some((a) => a.label === "Approve" && a.url?.includes(pending.id as string) === true), 60_000);
    await everyServiceWorks();
    const before = await Promise.all(Array.from({ length: 6 }, (_, i) => postTask(`before the restart #${i}`)));
    await waitFor("a task to be running", async () => (await Promise.all(before.map(taskState))).includes("running"), 30_000, 50);

    await pg.down();
    // While it is down the executor says so, naming it (the CLI prints the message), and the planner refuses new work the same way.
    const down = await waitFor("the executor to answer 503", async () => {
      const r = await call(executorUrl, "/api/actions");
      return r.status === 503 && r.body;
    }, 30_000, 100);
    expect(down.error.code).toBe("database_unreachable");
    expect(down.error.message).toMatch(/database is unreachable/);
    const inbox = await call(plannerUrl, "/inbox", { method: "POST", body: { task_id: randomUUID(), content: "while down", source: "cli", user: "ops" } });
    expect(inbox.status).toBe(503);
    expect(inbox.body.error.code).toBe("database_unreachable");
    expectAllAlive();

    await pg.up();
    const back = Date.now();
    // New work is picked up within seconds of the database coming back, not a lease later.
    const after = await waitFor("the planner to take a task again", async () => {
      const r = await call(plannerUrl, "/inbox", { method: "POST", body: { task_id: randomUUID(), content: "after the restart", source: "cli", user: "ops" } });
      return r.status === 202 && (r.body.task.id as string);
    }, 30_000, 200);
    await waitFor("the new task to finish", async () => (await taskState(after)) === "succeeded", 10_000 + 5_000, 100);
    expect(Date.now() - back).toBeLessThan(15_000);
    // The tasks that were queued or running when it went down all finish: picked up again at once, not a lease later.
    await waitFor("every earlier task to finish", async () => (await Promise.all(before.map(taskState))).every((s) => s === "succeeded"), 60_000, 200);
    const resumedMs = Date.now() - back;
    console.log(`PostgreSQL restart: the 6 tasks queued or running when it went down all finished ${resumedMs} ms after it was back`);
    // The goal is 10 s; a busy 2-core machine gets a margin (a task left to its 5-minute lease would be far past it).
    expect(resumedMs).toBeLessThan(30_000);
    // Each task finished once: 6 from before the restart and 1 after it, no completion counted twice.
    expect(await counter(metricsOf["planner"]!, "steward_planner_tasks_total", 'state="succeeded"')).toBe(7);
    // Every service's own loop runs again, the planner with them. Whether its checkpointer pool had idle connections
    // to lose depends on where the tasks were when the database went (a pool only reports its idle ones): said, not
    // asserted (services/planner/test/checkpointer-pool.test.ts pins that a lost idle connection does not kill it).
    await everyServiceWorks();
    const lostIdle = /checkpointer lost a database connection/.test(procs.find((p) => p.name === "planner")?.output ?? "");
    console.log(`PostgreSQL restart: the planner's checkpointer pool ${lostIdle ? "lost idle connections and carried on" : "had no idle connection to lose"}`);

    // The approval that was waiting goes through with the button pushed before the restart, and the start runs once.
    const pressed = await ntfy.press(push, "Approve");
    expect(pressed.status, JSON.stringify(pressed.body)).toBe(200);
    const done = await waitFor("the start of n1/extra to succeed", async () => {
      const r = await call(executorUrl, `/api/actions/${pending.id}`);
      return ["succeeded", "failed", "failed_unknown"].includes(r.body?.action?.state) && r.body;
    }, 60_000, 200);
    expect(done.action.state).toBe("succeeded");
    const moves = (done.audit as { to_state: string }[]).map((a) => a.to_state);
    expect(moves.filter((m) => m === "running")).toHaveLength(1);
    expect(moves.slice(-3)).toEqual(["approved", "running", "succeeded"]);
    expect((done.audit as { to_state: string; channel: string }[]).find((a) => a.to_state === "approved")?.channel).toBe("ntfy");
    // The alerter saw it decided (its database work resumed too) and says so on ntfy.
    await ntfy.waitFor((m) => (m.title ?? "").startsWith("Resolved: ") && (m.title ?? "").includes("n1/extra"), 30_000);
    expectAllAlive();
  }, 240_000);

  it("NATS restarts: every service reconnects and the loop runs again end to end", async () => {
    const world = async () => (await call(executorUrl, "/api/world")).body?.world as { last_seq: number } | undefined;
    const seqBefore = (await waitFor("a world snapshot", world, 30_000, 100)).last_seq;
    await nats.restart();
    // Heartbeats flow again: the observer folds past where it was, and the executor reads it from KV.
    await waitFor("the world to move on after the restart", async () => ((await world())?.last_seq ?? 0) > seqBefore, 60_000, 200);
    // The planner still investigates (it reads the world and recent events over NATS).
    const id = await postTask("after the bus restart");
    await waitFor("a task after the bus restart to finish", async () => (await taskState(id)) === "succeeded", 30_000, 100);
    await everyServiceWorks();
    // The alerter's world/drift watch resumed (not only its evaluation timer): a drift that first appears after the
    // restart (one more declared service, never started) reaches ntfy as an alert.
    const restartedAt = Date.now();
    await writeFile(fleet, fleetYaml + fleetYaml.slice(fleetYaml.indexOf("      extra:")).replace("extra:", "late:"));
    // Alone it is "Drift missing: n1/late"; grouped with another drift on n1 still open, "2 alerts on n1: …".
    const alert = await ntfy.waitFor((m) => (m.title ?? "").includes("Drift missing: n1/late"), 60_000);
    console.log(`NATS restart: a drift declared after it reached ntfy as an alert ${Date.now() - restartedAt} ms after the spec changed ("${alert.title}")`);
    const alerterLog = procs.find((p) => p.name === "alerter")?.output ?? "";
    console.log(`NATS restart: the alerter's watches ${/world store watch failed/.test(alerterLog) ? "ended and were re-created" : "carried on without ending"}`);
    expectAllAlive();
  }, 180_000);
});
