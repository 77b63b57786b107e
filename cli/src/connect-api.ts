import { createExecutorClient, type ExecutorClient } from "@steward/executor/client";
import { ApiError } from "@steward/platform/http-client";
import { NoStackError } from "./errors.js";
import { httpFetch } from "./http-fetch.js";
import { readStackFile, refuseOtherStacks } from "./stack-file.js";

export type { ExecutorClient };

/**
 * The executor's typed client, as the CLI configures it: STEWARD_API_URL / STEWARD_TOKEN win; otherwise the stack
 * file written by `steward up`, and then only answers carrying that stack's id are accepted.
 */
export async function connectApi(env: NodeJS.ProcessEnv = process.env): Promise<ExecutorClient> {
  const url = env["STEWARD_API_URL"];
  const token = env["STEWARD_TOKEN"];
  // One answer per run: zod's compiled fast path would cost more than it saves (jitless).
  if (url && token) return createExecutorClient({ url, token, fetch: httpFetch, jitless: true });
  const stack = await readStackFile(env);
  if (!stack) throw new NoStackError();
  const apiUrl = url ?? stack.api_url;
  return createExecutorClient({ url: apiUrl, token: token ?? stack.token, fetch: httpFetch, jitless: true, onReply: url ? undefined : refuseOtherStacks(stack.stack_id, apiUrl) });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Accepts a full id or a unique prefix (as printed by `steward actions`). */
export async function resolveActionId(api: ExecutorClient, idOrPrefix: string): Promise<string> {
  if (UUID.test(idOrPrefix)) return idOrPrefix;
  const hits = (await api.actions({ limit: 500 })).filter((a) => a.id.startsWith(idOrPrefix.toLowerCase()));
  if (hits.length === 1 && hits[0]) return hits[0].id;
  if (hits.length === 0) throw new ApiError(404, "not_found", `no action with id ${idOrPrefix}`);
  throw new ApiError(400, "ambiguous", `id prefix ${idOrPrefix} matches ${hits.length} actions; give more characters`);
}
