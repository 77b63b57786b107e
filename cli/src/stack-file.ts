import { readFile, mkdir, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { ApiError, type JsonHttpOptions } from "@steward/platform/http-client";
import { STACK_ID_HEADER } from "@steward/platform/stack-member";

/** What `steward up` leaves behind so other terminals can talk to the stack it runs. */
export const StackFile = z.object({
  api_url: z.string().url(),
  /** The planner's HTTP API (task inbox, tasks, cost); absent when the stack runs without a planner. */
  planner_url: z.string().url().optional(),
  /** The executor's bootstrap admin credential (`admin`). */
  token: z.string().min(1),
  /** The planner's API token; absent in files of older versions (the planner then took `token`). */
  planner_token: z.string().min(1).optional(),
  nats_url: z.string(),
  /** The CLI's NATS seed file (mode 0600) for its direct world reads; absent when the stack's NATS is open. */
  nats_seed_file: z.string().optional(),
  /** The CA of the stack's NATS TLS certificate; absent when its NATS runs without TLS. */
  nats_ca_file: z.string().optional(),
  database_url: z.string(),
  fleet_spec: z.string(),
  dir: z.string(),
  /** Every process of the stack answers HTTP with this id (header x-steward-stack); absent in files of older versions. */
  stack_id: z.string().min(1).optional(),
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
  // Loaded here, not at the top: every command that talks to the API reads this file, only `up` writes it.
  const { writeFileAtomic } = await import("@steward/platform/atomic-write");
  await writeFileAtomic(p, JSON.stringify(s, null, 2) + "\n");
  return p;
}

export async function readStackFile(env: NodeJS.ProcessEnv = process.env): Promise<StackFile | undefined> {
  try {
    // Parsed once per run: zod's compiled fast path would cost more than it saves.
    const parsed = StackFile.safeParse(JSON.parse(await readFile(stackFilePath(env), "utf8")), { jitless: true });
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export async function removeStackFile(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  await rm(stackFilePath(env), { force: true });
}

/**
 * A stack's API answers with its stack id: an answer without it, or with another, comes from a process that is not
 * the stack the stack file names (that stack is gone and something else took its port). Undefined when all is well.
 */
export function wrongStack(res: { headers: { get(name: string): string | null } }, expected: string | undefined, url: string): string | undefined {
  if (expected === undefined) return undefined;
  const got = res.headers.get(STACK_ID_HEADER);
  if (got === expected) return undefined;
  return `${url} is not the stack in the stack file (stack ${expected}; it answers ${got ? `for stack ${got}` : "without a stack id"}): that stack is gone; start it again with \`steward up\``;
}

/** For the API clients: an answer that is not from the stack the stack file names is refused (wrong_stack, exit 1). */
export function refuseOtherStacks(expected: string | undefined, url: string): JsonHttpOptions["onReply"] {
  if (expected === undefined) return undefined;
  return (reply) => {
    const wrong = wrongStack(reply, expected, url);
    if (wrong) throw new ApiError(0, "wrong_stack", wrong);
  };
}
