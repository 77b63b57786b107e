import type { Task, TaskEnvelope } from "@steward/contracts/task";
import { createPlannerClient, type PlannerClient } from "@steward/planner/client";
import { ApiError } from "@steward/platform/http-client";
import { httpFetch } from "./http-fetch.js";
import { readStackFile, refuseOtherStacks } from "./stack-file.js";

export type { PlannerClient };

/** No planner URL anywhere: neither STEWARD_PLANNER_URL nor a stack file from `steward up` that runs one. */
export class NoPlannerError extends ApiError {
  constructor() {
    super(0, "no_planner", "no Steward planner configured: set STEWARD_PLANNER_URL and STEWARD_TOKEN, or run `steward up` in another terminal");
    this.name = "NoPlannerError";
  }
}

/** What the CLI sends; the envelope's `source` is always `cli` here. */
export type NewTask = Omit<TaskEnvelope, "source" | "restricted"> & { restricted?: boolean };

export const cliEnvelope = (t: NewTask): TaskEnvelope => ({ ...t, source: "cli", restricted: t.restricted ?? false });

/**
 * The planner's typed client, as the CLI configures it: STEWARD_PLANNER_URL / STEWARD_PLANNER_TOKEN (or STEWARD_TOKEN) win; otherwise the stack
 * file written by `steward up`, and then only answers carrying that stack's id are accepted.
 */
export async function connectPlanner(env: NodeJS.ProcessEnv = process.env): Promise<PlannerClient> {
  const url = env["STEWARD_PLANNER_URL"];
  // The planner has its own token (STEWARD_PLANNER_TOKEN); STEWARD_TOKEN where one token serves both (older set-ups).
  const token = env["STEWARD_PLANNER_TOKEN"] ?? env["STEWARD_TOKEN"];
  // A few answers per run: zod's compiled fast path would cost more than it saves (jitless).
  if (url && token) return createPlannerClient({ url, token, fetch: httpFetch, jitless: true });
  const stack = await readStackFile(env);
  const stackUrl = url ?? stack?.planner_url;
  const stackToken = token ?? stack?.planner_token ?? stack?.token;
  if (!stackUrl || !stackToken) throw new NoPlannerError();
  return createPlannerClient({ url: stackUrl, token: stackToken, fetch: httpFetch, jitless: true, onReply: url ? undefined : refuseOtherStacks(stack?.stack_id, stackUrl) });
}

/** Accepts a full id or a unique prefix of a recent task (as printed by `steward task ls`). */
export async function resolveTaskId(planner: PlannerClient, idOrPrefix: string): Promise<string> {
  if (idOrPrefix.length >= 32) return idOrPrefix;
  const hits = (await planner.tasks({ limit: 500 })).filter((t) => t.id.toLowerCase().startsWith(idOrPrefix.toLowerCase()));
  if (hits.length === 1 && hits[0]) return hits[0].id;
  if (hits.length === 0) throw new ApiError(404, "not_found", `no recent task with id ${idOrPrefix}`);
  throw new ApiError(400, "ambiguous", `id prefix ${idOrPrefix} matches ${hits.length} tasks; give more characters`);
}

export const TERMINAL_STATES: ReadonlySet<Task["state"]> = new Set(["succeeded", "failed", "expired", "dead"]);
