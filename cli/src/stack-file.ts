import { readFile, mkdir, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "@steward/platform/atomic-write";

/** What `steward up` leaves behind so other terminals can talk to the stack it runs. */
export const StackFile = z.object({
  api_url: z.string().url(),
  /** The planner's HTTP API (task inbox, tasks, cost); absent when the stack runs without a planner. */
  planner_url: z.string().url().optional(),
  token: z.string().min(1),
  nats_url: z.string(),
  database_url: z.string(),
  fleet_spec: z.string(),
  dir: z.string(),
  pid: z.number().int(),
  started_at: z.string(),
  metrics: z.record(z.string(), z.string()).default({}),
  /** pid of each process the stack runs (nats-server, observer, ..., node-agent-<node>). */
  processes: z.record(z.string(), z.number().int()).default({}),
});
export type StackFile = z.infer<typeof StackFile>;

export function stewardHome(env: NodeJS.ProcessEnv = process.env): string {
  return env["STEWARD_HOME"] ?? join(homedir(), ".steward");
}

export const stackFilePath = (env: NodeJS.ProcessEnv = process.env): string => join(stewardHome(env), "stack.json");

export async function writeStackFile(s: StackFile, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  await mkdir(stewardHome(env), { recursive: true, mode: 0o700 });
  const p = stackFilePath(env);
  await writeFileAtomic(p, JSON.stringify(s, null, 2) + "\n");
  return p;
}

export async function readStackFile(env: NodeJS.ProcessEnv = process.env): Promise<StackFile | undefined> {
  try {
    const parsed = StackFile.safeParse(JSON.parse(await readFile(stackFilePath(env), "utf8")));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export async function removeStackFile(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  await rm(stackFilePath(env), { force: true });
}
