import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "@steward/platform/atomic-write";
import type { Logger } from "@steward/platform/logger";
import type { StackRevision } from "./compose-model.js";

/** What the node remembers about a stack across restarts: what it deployed and what ran before. Secret-free. */
export interface StackRecord {
  version: 1;
  deployed: StackRevision | null;
  previous: StackRevision | null;
  /** Containers ran before Steward's first deploy of this stack: they cannot be re-created by a rollback. */
  previous_unknown: boolean;
}

export const EMPTY_RECORD: StackRecord = { version: 1, deployed: null, previous: null, previous_unknown: false };

/** Stack records in `STATE_DIR/compose/<stack>.json`, written atomically. */
export interface StackRecords {
  /** The stack's record; never deployed (or unreadable, logged) is the empty record. */
  load(stack: string): Promise<StackRecord>;
  save(stack: string, r: StackRecord): Promise<void>;
}

/**
 * Pure: the record a deploy of `r` writes before it touches a container. The first deploy notes whether
 * containers ran before it (Steward cannot re-create those); a new revision pushes the deployed one to previous;
 * re-deploying the same revision keeps what ran before.
 */
export function recordDeploy(rec: StackRecord, r: StackRevision, containersRanBefore: boolean): StackRecord {
  if (rec.deployed === null) return { ...rec, deployed: r, previous: null, previous_unknown: containersRanBefore };
  if (rec.deployed.hash !== r.hash) return { ...rec, deployed: r, previous: rec.deployed, previous_unknown: false };
  return { ...rec, deployed: r };
}

export function createStackRecords(deps: { stateDir: string; logger: Logger }): StackRecords {
  const dir = join(deps.stateDir, "compose");
  const path = (stack: string) => join(dir, `${stack}.json`);
  return {
    async load(stack) {
      try {
        const r = JSON.parse(await readFile(path(stack), "utf8")) as StackRecord;
        return r.version === 1 ? { ...EMPTY_RECORD, ...r } : { ...EMPTY_RECORD };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") deps.logger.warn({ stack, err: (err as Error).message }, "stack record unreadable; treating as never deployed");
        return { ...EMPTY_RECORD };
      }
    },
    async save(stack, r) {
      await mkdir(dir, { recursive: true });
      await writeFileAtomic(path(stack), JSON.stringify(r, null, 2));
    },
  };
}
