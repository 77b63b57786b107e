import { readFile, readdir, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Snapshot } from "@steward/contracts/world-state";
import { WORLD_KEY } from "@steward/contracts/subjects";
import { writeFileAtomic } from "@steward/platform/atomic-write";
import type { KV } from "@steward/platform/bus";

export type SnapshotReadFailure = { ok: false; reason: "missing" | "unparseable" | "invalid"; detail: string };
export type SnapshotRead = { ok: true; snapshot: Snapshot } | SnapshotReadFailure;

/** Why a snapshot could not be written; the cause says which store failed. */
export class SnapshotWriteError extends Error {
  constructor(readonly store: "file" | "kv", readonly path: string, cause: unknown) {
    super(`writing the world snapshot to ${store === "file" ? path : `KV key ${path}`} failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = "SnapshotWriteError";
  }
}

/** Validates a snapshot's text; a torn or foreign document is a failure with a reason, never an empty world. */
export function parseSnapshot(text: string): SnapshotRead {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: "unparseable", detail: (err as Error).message };
  }
  const res = Snapshot.safeParse(raw);
  if (!res.success) {
    const first = res.error.issues[0];
    return { ok: false, reason: "invalid", detail: first ? `${first.path.join(".") || "(root)"}: ${first.message}` : "invalid snapshot" };
  }
  return { ok: true, snapshot: res.data };
}

export async function readSnapshotFile(path: string): Promise<SnapshotRead> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { ok: false, reason: "missing", detail: `${path} does not exist` };
    return { ok: false, reason: "unparseable", detail: `${path}: ${(err as Error).message}` };
  }
  return parseSnapshot(text);
}

export async function readSnapshotKv(kv: KV): Promise<SnapshotRead> {
  const entry = await kv.get(WORLD_KEY);
  if (!entry || entry.operation !== "PUT" || entry.length === 0) return { ok: false, reason: "missing", detail: `KV key ${WORLD_KEY} is empty` };
  return parseSnapshot(entry.string());
}

/**
 * Writes the snapshot atomically to the file, then the same JSON to KV (when given).
 * The file comes first: it is what a restarted observer trusts first.
 */
export async function writeSnapshot(path: string, snapshot: Snapshot, kv?: KV): Promise<void> {
  const json = JSON.stringify(snapshot);
  try {
    await writeFileAtomic(path, json);
  } catch (err) {
    throw new SnapshotWriteError("file", path, err);
  }
  if (kv) {
    try {
      await kv.put(WORLD_KEY, json);
    } catch (err) {
      throw new SnapshotWriteError("kv", WORLD_KEY, err);
    }
  }
}

/** Removes temp files a killed writer left next to the snapshot (`.<name>.<pid>.<rand>.tmp`). Returns how many. */
export async function removeLeftoverTempFiles(path: string): Promise<number> {
  const dir = dirname(path);
  const prefix = `.${basename(path)}.`;
  let removed = 0;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  for (const n of names) {
    if (n.startsWith(prefix) && n.endsWith(".tmp")) {
      await unlink(join(dir, n)).then(
        () => removed++,
        () => undefined,
      );
    }
  }
  return removed;
}
