import { readFile } from "node:fs/promises";
import { Snapshot } from "@steward/contracts/world-state";
import type { SpecSkipReason } from "@steward/fleet/load";

/**
 * Why the world could not be read. A bounded set: it is a metric label. `snapshot_incomplete`: node records newer
 * than the world store's header hide the ones as of it (a write in progress, or the observer died in the middle of
 * one): unknown, never a smaller world.
 */
export type SnapshotSkipReason = "snapshot_missing" | "snapshot_unreadable" | "snapshot_invalid" | "snapshot_incomplete";
/** Why a cycle was skipped: the spec or the world could not be read. */
export type SkipReason = SpecSkipReason | SnapshotSkipReason;

export type Loaded<T> = { ok: true; value: T } | { ok: false; reason: SkipReason; detail: string };

const fail = <T>(reason: SkipReason, detail: string): Loaded<T> => ({ ok: false, reason, detail });

/** Parses snapshot text. Empty, truncated or schema-invalid text is an error, never an empty world. */
export function parseSnapshot(text: string, source: string): Loaded<Snapshot> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return fail("snapshot_invalid", `${source}: not valid JSON (${text.length} bytes): ${(err as Error).message}`);
  }
  const res = Snapshot.safeParse(raw);
  if (!res.success) {
    const first = res.error.issues[0];
    return fail("snapshot_invalid", `${source}: not a snapshot: ${first ? `${first.path.join(".") || "(root)"}: ${first.message}` : "schema mismatch"}`);
  }
  return { ok: true, value: res.data };
}

export async function loadSnapshotFromFile(path: string): Promise<Loaded<Snapshot>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return fail(code === "ENOENT" ? "snapshot_missing" : "snapshot_unreadable", `${path}: cannot read: ${code ?? String(err)}`);
  }
  return parseSnapshot(text, path);
}
