import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { seedAction, clearActions } from "@steward/actions/testing";
import { EVENTS_STREAM, eventSubject, logTailSubject } from "@steward/contracts/subjects";
import { TaskDetail } from "@steward/contracts/task";
import type { ActionKind } from "@steward/contracts/action";
import { connectNats, ensureStreams, jetstream, jetstreamManager, openWorldBucket, type NatsConnection } from "@steward/platform/bus";
import { connectDb, type Sql } from "@steward/platform/db";
import { silentLogger } from "@steward/platform/logger";
import { createRegistry } from "@steward/platform/metrics";
import { putDriftReport, putWorldSnapshot } from "@steward/world/testing";
import { gitSync } from "@steward/testkit";
import { createPlanner, investigationTools, loadConfig, type PlannerConfig } from "@steward/planner";
import { splitAction, splitRef, type EvalFixture } from "./fixture.js";
import { scoreTask, type FixtureScore } from "./score.js";
import { fixtureDrift, fixtureEvents, fixtureLogTail, fixtureSnapshot } from "./world.js";

/**
 * Runs fixtures through the real planner (createPlanner: its graph, investigation loop and tools, trust boundary,
 * cost ledger, task store and HTTP API) with its real sources: the world and drift in the NATS KV bucket, the node's
 * events in JetStream, log tails answered over NATS by a responder standing in for the node-agents, the actions
 * history in PostgreSQL, the fleet spec from a fleet.yaml file. Fixtures run one after the other on one planner.
 */

/** The loop's tools (services/planner/src/tools.ts): a task step naming one of them is a model's tool call. */
export const LOOP_TOOLS: readonly string[] = investigationTools("fleet.yaml", () => Promise.resolve([])).map((t) => t.name);

export const EVAL_TOKEN = "steward-eval-token-0123456789abcdef";

/** The model under evaluation: the planner settings that select it, and a hook run before each fixture. */
export interface EvalTarget {
  label: string;
  /** Planner settings (as env) that select the model: OLLAMA_URL, MODEL_GROUPS, ANTHROPIC_API_KEY, CLAUDE_MODEL, … */
  env: Record<string, string>;
  /** The stand-ins set the fixture's script here; a real model needs nothing. */
  beforeFixture?(f: EvalFixture): void;
}

export interface RunEvalOptions {
  fixtures: readonly EvalFixture[];
  target: EvalTarget;
  natsUrl: string;
  databaseUrl: string;
  /** How long one task may take (a real model on a CPU can take minutes). */
  taskTimeoutMs?: number;
  onResult?(s: FixtureScore): void;
}

export interface EvalResult {
  scores: FixtureScore[];
  config: PlannerConfig;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runEval(o: RunEvalOptions): Promise<EvalResult> {
  const dir = await mkdtemp(join(tmpdir(), "steward-eval-"));
  const fleetPath = join(dir, "fleet.yaml");
  const tag = randomBytes(4).toString("hex");
  let nc: NatsConnection | undefined;
  let sql: Sql | undefined;
  let planner: ReturnType<typeof createPlanner> | undefined;
  let current: EvalFixture | undefined;
  const subs: { unsubscribe(): void }[] = [];
  try {
    await writeFile(fleetPath, o.fixtures[0]?.fleet ?? "version: 1\nnodes: {}\n");
    nc = await connectNats(o.natsUrl, "steward-eval", {}, null);
    await ensureStreams(nc);
    const kv = await openWorldBucket(nc);
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    sql = connectDb(o.databaseUrl, { max: 4 });
    const config = loadConfig({
      ...o.target.env,
      DATABASE_URL: o.databaseUrl,
      NATS_URL: o.natsUrl,
      API_TOKEN: EVAL_TOKEN,
      FLEET_SPEC: fleetPath,
      HTTP_PORT: "0",
      HTTP_HOST: "127.0.0.1",
      WORKERS: "1",
      POLL_MS: "50",
    });
    planner = createPlanner({ config, sql, nc, logger: silentLogger(), registry: createRegistry("steward-eval", false) });
    const { port } = await planner.start();
    const url = `http://127.0.0.1:${port}`;
    const scores: FixtureScore[] = [];
    for (const f of o.fixtures) {
      current = f;
      const now = new Date();
      // The fixture's world, as the observer, the supervisor and the node-agents would have written it.
      await writeFleet(dir, f);
      await putWorldSnapshot(kv, fixtureSnapshot(f, now));
      await putDriftReport(kv, fixtureDrift(f, now));
      await jsm.streams.purge(EVENTS_STREAM);
      for (const ev of fixtureEvents(f, now, tag)) await js.publish(eventSubject(ev.node, ev.type), JSON.stringify(ev), { msgID: ev.id });
      for (const s of subs.splice(0)) s.unsubscribe();
      for (const node of Object.keys(f.spec.nodes)) {
        subs.push(
          nc.subscribe(logTailSubject(node), {
            callback: (_err, m) => {
              const req = m.json<{ service?: string; max_bytes?: number }>();
              if (current) m.respond(JSON.stringify(fixtureLogTail(current, node, String(req.service ?? ""), req.max_bytes ?? 4096)));
            },
          }),
        );
      }
      await nc.flush();
      await clearActions(sql);
      for (const a of f.actions) {
        const { kind, node, service } = splitAction(a.action);
        const at = new Date(now.getTime() - a.ago_s * 1000);
        await seedAction(sql, { node, service, kind: kind as ActionKind, state: a.state, reason: a.reason, proposedBy: a.proposed_by, createdAt: at, updatedAt: at });
      }
      await clearIncidents(sql);
      o.target.beforeFixture?.(f);

      const id = `eval-${tag}-${f.id}`;
      const { node, service } = splitRef(f.task.target);
      const drift = f.drift.find((d) => d.ref === f.task.target);
      const envelope =
        f.task.source === "supervisor"
          ? { task_id: id, content: f.task.content, source: "supervisor", user: "supervisor", conversation_id: `supervisor:${f.task.target}`, evidence: { drift: { key: `${drift?.kind ?? "down"}:${f.task.target}`, kind: drift?.kind ?? "down", node, service, message: drift?.message ?? f.task.content, proposes: drift?.proposes ?? null } } }
          : { task_id: id, content: f.task.content, source: "cli", user: "eval" };
      const t0 = performance.now();
      const res = await fetch(`${url}/inbox`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${EVAL_TOKEN}` }, body: JSON.stringify(envelope) });
      if (res.status >= 300) throw new Error(`fixture ${f.id}: the planner refused the task (${res.status}): ${(await res.text()).slice(0, 300)}`);
      const detail = await waitDone(url, id, o.taskTimeoutMs ?? 600_000);
      const score = scoreTask(f, detail, performance.now() - t0, LOOP_TOOLS);
      scores.push(score);
      o.onResult?.(score);
    }
    return { scores, config };
  } finally {
    for (const s of subs) s.unsubscribe();
    await planner?.stop();
    await sql?.end({ timeout: 2 });
    await nc?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Empties the planner's incident tables between fixtures. The planner keeps running meanwhile, and its incident work
 * for the fixture before (linking the task, the recurrence check) can hold a lock on one of the tables while TRUNCATE
 * holds another: PostgreSQL then ends one of the two with "deadlock detected" (40P01), seen once in CI. The reset is
 * idempotent, so it is tried again.
 */
async function clearIncidents(sql: Sql): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await sql`TRUNCATE planner_incident_recurrences, planner_incident_tasks, planner_incidents CASCADE`;
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== "40P01" || attempt >= 5) throw err;
      await sleep(50 * attempt);
    }
  }
}

/** The fixture's fleet.yaml, with its history as commits of a fresh git repo when it has one (for fleet_git_log). */
async function writeFleet(dir: string, f: EvalFixture): Promise<void> {
  const file = join(dir, "fleet.yaml");
  await rm(join(dir, ".git"), { recursive: true, force: true });
  if (f.fleet_history.length > 0) gitSync(dir, "init", "-q");
  for (const [i, subject] of f.fleet_history.entries()) {
    if (i < f.fleet_history.length - 1) await writeFile(file, `${f.fleet}# revision ${i + 1}\n`);
    else await replaceFile(file, f.fleet);
    gitSync(dir, "add", "fleet.yaml");
    gitSync(dir, "commit", "-q", "-m", subject);
  }
  if (f.fleet_history.length === 0) await replaceFile(file, f.fleet);
}

/** A new file in place (a new inode: the planner's spec cache sees the change even within the same millisecond). */
async function replaceFile(file: string, text: string): Promise<void> {
  await writeFile(`${file}.tmp`, text);
  await rename(`${file}.tmp`, file);
}

async function waitDone(url: string, id: string, timeoutMs: number): Promise<TaskDetail> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${url}/tasks/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${EVAL_TOKEN}` } });
    if (res.status === 200) {
      const d = TaskDetail.parse(await res.json());
      if (["succeeded", "failed", "dead", "expired"].includes(d.task.state)) return d;
    } else await res.text();
    if (Date.now() > until) throw new Error(`task ${id} did not finish within ${timeoutMs} ms`);
    await sleep(50);
  }
}
