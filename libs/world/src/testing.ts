import type { DriftReport } from "@steward/contracts/drift";
import type { Snapshot } from "@steward/contracts/world-state";
import type { KV } from "@steward/platform/bus";
import { createDriftWriter } from "./drift-store.js";
import { createWorldWriter } from "./world-store.js";

/**
 * Tests and benchmarks only: makes the world store hold exactly this snapshot (a fresh writer writes every node,
 * removes the others, then the header), as if its observer had written it.
 */
export async function putWorldSnapshot(kv: KV, snapshot: Snapshot): Promise<void> {
  await createWorldWriter({ kv, observerId: snapshot.observer_id }).write(snapshot.world, snapshot.written_at);
}

/** Tests and benchmarks only: makes the store hold exactly this drift report, as if a supervisor had written it. */
export async function putDriftReport(kv: KV, report: DriftReport): Promise<void> {
  await createDriftWriter(kv).write(report);
}

/** Tests only: removes every world and drift record (header and nodes), leaving the bucket empty. */
export async function clearWorldStore(kv: KV): Promise<void> {
  const keys = await kv.keys();
  const all: string[] = [];
  for await (const k of keys) all.push(k);
  for (const k of all) await kv.purge(k);
}
