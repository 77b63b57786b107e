import { mkdir, readdir, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "@steward/platform/atomic-write";
import type { Logger } from "@steward/platform/logger";

/**
 * What a node-agent remembers about each `process` service it started, in `STATE_DIR/processes/<service>.json`:
 * the process group it runs in (the leader's pid is the group id: services start with `detached`) and the leader's
 * start time from /proc/<pid>/stat, so a later agent can tell the process it started from another that got the
 * same pid. Written when the service starts, removed when the agent sees it exit; one left behind means the agent
 * died (kill -9, OOM, power) while the service ran.
 */
export interface ProcessRecord {
  version: 1;
  service: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks since boot when the process started; with the pid, unique per boot. */
  start_time: string;
  started_at: string;
  command: string[];
}

/** The fields of /proc/<pid>/stat the agent needs. */
export interface ProcStat {
  /** R, S, D, T, Z, ... (Z: exited, not yet reaped). */
  state: string;
  pgrp: number;
  startTime: string;
}

/** Pure: parses /proc/<pid>/stat (the command name in parentheses may itself hold spaces and parentheses). */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  // After "pid (comm) ": state is field 3, pgrp field 5, starttime field 22.
  const f = text.slice(close + 2).trim().split(/\s+/);
  const state = f[0];
  const pgrp = Number(f[2]);
  const startTime = f[19];
  if (!state || !Number.isInteger(pgrp) || !startTime || !/^\d+$/.test(startTime)) return undefined;
  return { state, pgrp, startTime };
}

export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined; // gone
  }
}

/** Live (not zombie) processes in process group `pgid`, from /proc. */
export async function groupMembers(pgid: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const st = await readProcStat(Number(name));
    if (st && st.pgrp === pgid && st.state !== "Z") out.push(Number(name));
  }
  return out;
}

/** What is left of a recorded service now. */
export type Leftover =
  /** Its process group still has live members: the service the dead agent started (or what it spawned), to stop. */
  | { kind: "running"; pids: number[] }
  /** Nothing of it runs: the record is stale. */
  | { kind: "gone" }
  /** The pid now names another process: never signalled. */
  | { kind: "reused" };

/**
 * Pure: whether a recorded group is still ours. A pid stays allocated while any process uses it as its group id, so
 * while members of the group live the pid cannot have been handed to a new process: a leader with another start time
 * means the whole group died before the pid was reused, and members of that pgid belong to the newcomer.
 */
export function classifyLeftover(rec: Pick<ProcessRecord, "pid" | "start_time">, leader: ProcStat | undefined, members: readonly number[]): Leftover {
  if (leader && leader.startTime !== rec.start_time) return { kind: "reused" };
  // `members` are live ones (zombies left out): a leader that exited leaves its group to whatever it spawned.
  return members.length > 0 ? { kind: "running", pids: [...members].sort((a, b) => a - b) } : { kind: "gone" };
}

/** The record files of one agent (one node: STATE_DIR is per node). */
export interface ProcessRecords {
  /** Records the group `pid` leads for `service`; resolves once it is on disk. */
  save(service: string, pid: number, command: readonly string[]): Promise<void>;
  remove(service: string): Promise<void>;
  list(): Promise<ProcessRecord[]>;
}

export function createProcessRecords(deps: { stateDir: string; logger: Logger; now?: () => Date }): ProcessRecords {
  const dir = join(deps.stateDir, "processes");
  const path = (service: string) => join(dir, `${service}.json`);
  return {
    async save(service, pid, command) {
      const st = await readProcStat(pid);
      // Exited already (or no /proc): nothing to find later.
      if (!st) return;
      const rec: ProcessRecord = { version: 1, service, pid, start_time: st.startTime, started_at: (deps.now?.() ?? new Date()).toISOString(), command: [...command] };
      await mkdir(dir, { recursive: true });
      await writeFileAtomic(path(service), JSON.stringify(rec, null, 2));
    },
    async remove(service) {
      await unlink(path(service)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "ENOENT") throw err;
      });
    },
    async list() {
      const names = await readdir(dir).catch(() => [] as string[]);
      const out: ProcessRecord[] = [];
      for (const name of names.filter((n) => n.endsWith(".json") && !n.startsWith("."))) {
        try {
          const r = JSON.parse(await readFile(join(dir, name), "utf8")) as Partial<ProcessRecord>;
          if (r.version === 1 && typeof r.service === "string" && Number.isInteger(r.pid) && typeof r.start_time === "string") out.push(r as ProcessRecord);
          else deps.logger.warn({ file: join(dir, name) }, "process record not understood; ignoring it");
        } catch (err) {
          deps.logger.warn({ file: join(dir, name), err: (err as Error).message }, "process record unreadable; ignoring it");
        }
      }
      return out;
    },
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    // Gone meanwhile.
  }
}

/** SIGTERM to the group, SIGKILL once `graceMs` passed; resolves true once no member lives (false: still some after the kill). */
export async function stopGroup(pgid: number, graceMs: number): Promise<boolean> {
  signalGroup(pgid, "SIGTERM");
  const killAt = Date.now() + graceMs;
  const giveUpAt = killAt + 5000;
  let killed = false;
  for (;;) {
    if ((await groupMembers(pgid)).length === 0) return true;
    if (!killed && Date.now() >= killAt) {
      signalGroup(pgid, "SIGKILL");
      killed = true;
    }
    if (Date.now() >= giveUpAt) return false;
    await sleep(50);
  }
}

/**
 * At start, before anything is started: the processes an earlier agent of this node left running are stopped (their
 * whole group: SIGTERM, then SIGKILL after `graceMs`) and their records removed. Resolves with the services that
 * were running, which the agent then starts fresh whatever their `autostart`: they ran, so they were wanted.
 *
 * Stop-and-start rather than adopt: an adopted process is not this agent's child, so its exit could only be polled
 * (late) and its exit code and signal are lost (its new parent reaps it), so the world would read `exited` without a
 * reason and the executor's fail-fast verdicts would lose theirs; it would also keep the environment and secrets it
 * was started with, while the spec may have changed under the dead agent. A fresh start costs each service one
 * restart after an agent crash, and is as correct as a first start.
 */
export async function reclaimLeftovers(records: ProcessRecords, graceMs: number, logger: Logger): Promise<string[]> {
  const wasRunning: string[] = [];
  for (const rec of await records.list()) {
    const left = classifyLeftover(rec, await readProcStat(rec.pid), await groupMembers(rec.pid));
    if (left.kind === "running") {
      logger.warn({ service: rec.service, pid: rec.pid, pids: left.pids, started_at: rec.started_at }, "left running by an earlier agent of this node: stopping its process group to start it fresh");
      const stopped = await stopGroup(rec.pid, graceMs);
      if (!stopped) logger.error({ service: rec.service, pid: rec.pid }, "process group still has members after SIGKILL");
      wasRunning.push(rec.service);
    } else if (left.kind === "reused") {
      logger.info({ service: rec.service, pid: rec.pid }, "process record names a pid now used by another process; not touching it");
    }
    await records.remove(rec.service);
  }
  return wasRunning;
}
