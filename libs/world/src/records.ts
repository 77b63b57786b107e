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
}

/** In-flight KV writes at once: enough to pipeline, few enough not to flood the connection on a full write. */
const CONCURRENCY = 128;

/** Puts (value) or deletes (null) records concurrently; returns the ones that failed. */
export async function putAll(kv: KV, records: readonly { key: string; value: string | null }[]): Promise<WriteFailure[]> {
  const failures: WriteFailure[] = [];
  let next = 0;
  async function lane(): Promise<void> {
    while (next < records.length) {
      const r = records[next++] as { key: string; value: string | null };
      try {
        if (r.value === null) await kv.delete(r.key);
        else await kv.put(r.key, r.value);
      } catch (err) {
        failures.push({ key: r.key, message: (err as Error).message });
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, records.length) }, lane));
  return failures;
}
