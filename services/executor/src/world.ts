import type { z } from "zod";
import { DRIFT_KEY, WORLD_KEY } from "@steward/contracts/subjects";
import { DriftReport } from "@steward/contracts/drift";
import { Snapshot } from "@steward/contracts/world-state";
import type { KV } from "@steward/platform/bus";

export type KvRead<T> = { ok: true; value: T } | { ok: false; code: "none" | "unreadable"; message: string };

/** Reads and validates one JSON document from the world bucket. Unreadable is reported, never treated as empty. */
export async function readKvJson<S extends z.ZodType>(kv: KV, key: string, schema: S): Promise<KvRead<z.output<S>>> {
  const entry = await kv.get(key);
  if (!entry || entry.operation !== "PUT" || entry.length === 0) return { ok: false, code: "none", message: `no '${key}' document in the world bucket yet` };
  let raw: unknown;
  try {
    raw = JSON.parse(entry.string());
  } catch {
    return { ok: false, code: "unreadable", message: `'${key}' in the world bucket is not valid JSON` };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) return { ok: false, code: "unreadable", message: `'${key}' in the world bucket does not match its schema: ${parsed.error.issues[0]?.message ?? "invalid"}` };
  return { ok: true, value: parsed.data };
}

export const readSnapshot = (kv: KV): Promise<KvRead<Snapshot>> => readKvJson(kv, WORLD_KEY, Snapshot);
export const readDrift = (kv: KV): Promise<KvRead<DriftReport>> => readKvJson(kv, DRIFT_KEY, DriftReport);
