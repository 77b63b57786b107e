import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import { clearActions, actionsOf, only } from "@steward/actions/testing";
import { createActionsRepository } from "@steward/actions/repository";
import { FAILED_ACTION_STATES } from "@steward/contracts/action";
import type { Drift, DriftReport } from "@steward/contracts/drift";
import type { Snapshot } from "@steward/contracts/world-state";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { connectNats, openWorldBucket, type KV, type NatsConnection } from "@steward/platform/bus";
import { createRegistry, type Registry } from "@steward/platform/metrics";
import { initTracing } from "@steward/platform/tracing";
import { silentLogger } from "@steward/platform/logger";
import { clearWorldStore, putWorldSnapshot } from "@steward/world/testing";
import { readDrift } from "@steward/world/drift-store";
import { createTestDatabase, startNats, type NatsServerHandle, type TestDatabase } from "@steward/testkit";
import { createSupervisor, type Supervisor } from "../src/supervisor.js";
import { holdFailedRevisions as hold, planProposals } from "../src/reconcile.js";
import { applyProposals, type ApplyOptions } from "../src/apply.js";
import { specYaml } from "./fixtures.js";

/**
 * The supervisor's live tests share this set-up: one nats-server, one database and a temp dir per test file,
 * actions and the world store cleared before each case, every supervisor made by `make` stopped after it.
 */
export interface SupervisorHarness {
  nats: NatsServerHandle;
  db: TestDatabase;
  nc: NatsConnection;
  sql: Sql;
  kv: KV;
  dir: string;
}

/** Filled in by the hooks `useSupervisorHarness` registers; read it inside hooks and cases. */
export const live = {} as SupervisorHarness;
const extraSql: Sql[] = [];
const running: Supervisor[] = [];

/** Registers the file's set-up and clean-up hooks; call once at the top of a test file. */
export function useSupervisorHarness(): SupervisorHarness {
  let tracing: { shutdown: () => Promise<void> } | undefined;
  beforeAll(async () => {
    tracing = initTracing({ component: "supervisor-test" });
    [live.nats, live.db] = await Promise.all([startNats(), createTestDatabase("steward_supervisor")]);
    live.nc = await connectNats(live.nats.url, "supervisor-test");
    live.sql = connectDb(live.db.url);
    await migrate(live.sql);
    live.kv = await openWorldBucket(live.nc);
    live.dir = await mkdtemp(join(tmpdir(), "supervisor-test-"));
  });
  afterAll(async () => {
    await Promise.all(running.map((s) => s.stop()));
    await Promise.all(extraSql.map((s) => s.end({ timeout: 1 })));
    await live.sql?.end({ timeout: 1 });
    await live.nc?.close();
    await Promise.all([live.nats?.stop(), live.db?.drop(), live.dir ? rm(live.dir, { recursive: true, force: true }) : undefined]);
    await tracing?.shutdown();
  });
  beforeEach(async () => {
    await clearActions(live.sql);
    await clearWorldStore(live.kv);
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.stop()));
  });
  return live;
}

/** A connection of its own (another writer, or a supervisor whose connection a test kills); ended after the file. */
export function ownSql(): Sql {
  const s = connectDb(live.db.url);
  extraSql.push(s);
  return s;
}

/** One cycle's proposal step on its own: what is open now, then the pure plan, then the write. */
export async function proposeActions(db: Sql, drifts: readonly Drift[], opts: ApplyOptions) {
  const repo = createActionsRepository(db);
  return (await applyProposals(repo, planProposals(drifts, await repo.listOpen()), opts)).proposed;
}

export async function holdFailedRevisions(db: Sql, drifts: readonly Drift[], opts: { now: Date; holdMs: number }): Promise<Drift[]> {
  const failed = await createActionsRepository(db).listFinished({ since: new Date(opts.now.getTime() - opts.holdMs), kinds: ["deploy"], states: FAILED_ACTION_STATES });
  return hold(drifts, failed);
}

let seq = 0;
export interface Made {
  sup: Supervisor;
  registry: Registry;
  specPath: string;
  id: string;
}

export async function make(opts: { nodes?: Record<string, string[]>; specPath?: string; snapshotPath?: string; recheckMs?: number; fullRecheckMs?: number; leaderRetryMs?: number; maxAgeMs?: number; ownSql?: boolean; id?: string } = {}): Promise<Made> {
  seq += 1;
  const specPath = opts.specPath ?? join(live.dir, `fleet-${seq}.yaml`);
  if (opts.nodes) await writeFile(specPath, specYaml(opts.nodes));
  const id = opts.id ?? `supervisor-${seq}`;
  const s = opts.ownSql ? ownSql() : live.sql;
  const registry = createRegistry("supervisor", false);
  const sup = createSupervisor({
    config: {
      fleetSpecPath: specPath,
      snapshotPath: opts.snapshotPath,
      supervisorId: id,
      recheckMs: opts.recheckMs ?? 60_000,
      fullRecheckMs: opts.fullRecheckMs ?? 600_000,
      snapshotMaxAgeMs: opts.maxAgeMs ?? 30_000,
      actionTtlMs: 3_600_000,
      leaderRetryMs: opts.leaderRetryMs ?? 200,
    },
    nc: live.nc,
    sql: s,
    logger: silentLogger(),
    registry,
  });
  running.push(sup);
  return { sup, registry, specPath, id };
}

export const fresh = (s: Snapshot): Snapshot => ({ ...s, written_at: new Date().toISOString() });
export async function putSnapshot(s: Snapshot): Promise<void> {
  await putWorldSnapshot(live.kv, s);
}
export async function readReport(): Promise<DriftReport | undefined> {
  const r = await readDrift(live.kv);
  return r.ok ? r.value : undefined;
}
export type ActionRow = { id: string; node: string; service: string; kind: string; state: string; drift_key: string; traceparent: string | null; proposed_by: string };
export async function actions(): Promise<ActionRow[]> {
  return only(await actionsOf(live.sql), "id", "node", "service", "kind", "state", "drift_key", "traceparent", "proposed_by") as ActionRow[];
}
export async function metric(r: Registry, name: string, labels = ""): Promise<number | undefined> {
  const text = await r.metrics();
  const m = new RegExp(`^${name}\\{[^}]*${labels}[^}]*\\} (\\S+)$|^${name} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1] ?? m[2]) : undefined;
}
