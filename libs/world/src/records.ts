import type { KV } from "@steward/platform/bus";
import type { Parsed } from "./kv-cache.js";

/** Parses one record's JSON against its schema; a torn or foreign record is a failure naming the key, never empty. */
/** The part of a zod schema used here (contracts owns the schemas; this library needs no zod of its own). */
export interface Schema<T> {
  safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] } };
}

export function parseRecord<T>(text: string, schema: Schema<T>, source: string): Parsed<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, detail: `${source}: not valid JSON (${text.length} bytes): ${(err as Error).message}` };
  }
  const res = schema.safeParse(raw);
  if (!res.success) {
    const first = res.error.issues[0];
    return { ok: false, detail: `${source}: does not match its schema: ${first ? `${first.path.map(String).join(".") || "(root)"}: ${first.message}` : "invalid"}` };
  }
  return { ok: true, value: res.data };
}

export interface WriteFailure {
  key: string;
  message: string;
  /** The record was not at the revision the writer expected: another writer wrote it since. */
  conflict?: true;
}

/**
 * A record write, optionally conditional: `rev` (the record's KV revision the writer last saw) or `"new"` (the
 * record must not exist, or be deleted) make the write fail with a conflict when another writer got there first.
 */
export interface RecordWrite {
  key: string;
  value: string | null;
  expect?: number | "new";
}

/** JetStream's "wrong last sequence": the conditional write's expected revision was not the record's. */
export function isRevisionConflict(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 10071 || code === 10164 || /wrong last sequence/i.test((err as Error).message ?? "");
}

/** In-flight KV writes at once: enough to pipeline, few enough not to flood the connection on a full write. */
const CONCURRENCY = 128;

/**
 * Puts (value) or deletes (null) records concurrently; returns the ones that failed and the KV revision of each put
 * that landed (a delete's revision is not returned by NATS: the record is then known only as deleted).
 */
export async function writeAll(kv: KV, records: readonly RecordWrite[]): Promise<{ failures: WriteFailure[]; revisions: Map<string, number> }> {
  const failures: WriteFailure[] = [];
  const revisions = new Map<string, number>();
  let next = 0;
  async function lane(): Promise<void> {
    while (next < records.length) {
      const r = records[next++] as RecordWrite;
      try {
        if (r.value === null) await kv.delete(r.key, typeof r.expect === "number" ? { previousSeq: r.expect } : undefined);
        else if (r.expect === "new") revisions.set(r.key, await kv.create(r.key, r.value));
        else if (typeof r.expect === "number") revisions.set(r.key, await kv.update(r.key, r.value, r.expect));
        else revisions.set(r.key, await kv.put(r.key, r.value));
      } catch (err) {
        // create() of a record that exists says so in its own words, not as a sequence error.
        const conflict = isRevisionConflict(err) || (r.expect === "new" && /exists/i.test((err as Error).message ?? ""));
        failures.push({ key: r.key, message: (err as Error).message, ...(conflict ? { conflict: true as const } : {}) });
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, records.length) }, lane));
  return { failures, revisions };
}
