import { linkSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { STACK_ID_ENV } from "@steward/platform/stack-member";

/**
 * One `steward up` per STEWARD_HOME: the stack file there is how every other terminal finds "the" stack, so a second
 * `up` on the same home would silently take it over. The claim is a lock file created atomically (link(2) fails when
 * it exists); a claim left by an `up` that is gone is taken over after its leftover processes are stopped.
 */
const Lock = z.object({ pid: z.number().int(), stack_id: z.string(), dir: z.string(), started_at: z.string() });
type Lock = z.infer<typeof Lock>;

export const lockPath = (home: string): string => join(home, "up.lock");

export type ClaimDecision = { take: true } | { take: false; stale: Lock } | { refuse: string };

/** Pure: what to do about an existing lock (undefined: none), given whether its `up` still runs. */
export function decideClaim(home: string, existing: Lock | "unreadable" | undefined, running: boolean): ClaimDecision {
  if (existing === undefined) return { take: true };
  if (existing === "unreadable") return { refuse: `another \`steward up\` is starting with STEWARD_HOME=${home} (${lockPath(home)} is being written); wait for it, or give this one its own STEWARD_HOME` };
  if (running) {
    return {
      refuse: `a Steward stack is already running with STEWARD_HOME=${home}: \`steward up\` pid ${existing.pid}, stack ${existing.stack_id}, since ${existing.started_at}, in ${existing.dir}. Stop it first (Ctrl-C in its terminal, or kill ${existing.pid}), or run a separate stack with its own STEWARD_HOME (STEWARD_HOME=/some/dir steward up)`,
    };
  }
  return { take: false, stale: existing };
}

/** A live `steward up` (not just any process that got the pid later). */
export function isUpRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes("up");
  } catch {
    return true; // no /proc: trust the pid
  }
}

/** Pids of the processes that carry a stack's id in their environment (Linux; elsewhere none are found). */
export function stackProcesses(stackId: string): number[] {
  const needle = `${STACK_ID_ENV}=${stackId}`;
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    try {
      return readFileSync(`/proc/${e}/environ`, "utf8").split("\0").includes(needle) ? [Number(e)] : [];
    } catch {
      return [];
    }
  });
}

async function stopLeftovers(stackId: string): Promise<number> {
  const pids = stackProcesses(stackId);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + 5000;
  while (stackProcesses(stackId).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of stackProcesses(stackId)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  return pids.length;
}

function readLock(path: string): Lock | "unreadable" | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    const r = Lock.safeParse(JSON.parse(text));
    return r.success ? r.data : "unreadable";
  } catch {
    return "unreadable";
  }
}

export interface HomeClaim {
  /** Removes the lock, when it is still ours. */
  release(): void;
}

/** Claims STEWARD_HOME for this `up`, or says clearly why not. `notes` gets what was cleaned up. */
export async function claimHome(home: string, mine: Lock, notes: (line: string) => void): Promise<HomeClaim | { refused: string }> {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const path = lockPath(home);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(mine) + "\n", { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(tmp, path);
        return {
          release() {
            const now = readLock(path);
            if (now !== "unreadable" && now?.stack_id === mine.stack_id) rmSync(path, { force: true });
          },
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const existing = readLock(path);
      const d = decideClaim(home, existing, existing !== undefined && existing !== "unreadable" && isUpRunning(existing.pid));
      if ("refuse" in d) return { refused: d.refuse };
      if (!d.take) {
        const n = await stopLeftovers(d.stale.stack_id);
        notes(`a stack that did not stop (stack ${d.stale.stack_id}, \`steward up\` pid ${d.stale.pid}) left this STEWARD_HOME claimed${n ? `; stopped its ${n} leftover process(es)` : ""}`);
        rmSync(path, { force: true });
        rmSync(join(home, "stack.json"), { force: true });
      }
    }
    return { refused: `could not claim STEWARD_HOME=${home} (${path} keeps reappearing: another \`steward up\` is starting)` };
  } finally {
    rmSync(tmp, { force: true });
  }
}
