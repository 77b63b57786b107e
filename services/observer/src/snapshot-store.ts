import { readdir, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { writeFileAtomic } from "@steward/platform/atomic-write";

/**
 * The observer's own resume point: the whole world as one file, written atomically (temp, fsync, rename, fsync the
 * directory). Read back with `loadSnapshotFromFile` from `@steward/world/read`, the one snapshot parser.
 */
export async function writeSnapshotFile(path: string, json: string): Promise<void> {
  await writeFileAtomic(path, json);
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
