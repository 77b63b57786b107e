import type { CostReport, Task } from "@steward/contracts/task";
import { ApiBadResponse, ApiUnreachable, createPlannerClient as createTypedPlannerClient } from "@steward/planner/client";

export type PlannerRead<T> = { ok: true; value: T } | { ok: false; message: string };

/** Pure: a failed planner read in the console's words (never the token). */
export function plannerReadFailure(err: unknown, base: string, path: string): string {
  if (err instanceof ApiUnreachable) return `planner at ${base} is unreachable (${err.reason})`;
  if (err instanceof ApiBadResponse && err.status >= 200 && err.status < 300) {
    return err.problem === "not_json" ? `planner's answer to GET ${path} is not JSON` : `planner's answer to GET ${path} does not match the contract (${err.detail})`;
  }
  const status = (err as { status?: unknown } | null)?.status;
  return typeof status === "number" && status > 0 ? `planner answered ${status} to GET ${path}` : `planner read failed: ${(err as Error)?.message ?? String(err)}`;
}

/**
 * Reads the planner's task list and cost report for the console, through the planner's typed client. The planner
 * is optional and may be down: every failure is returned as an operator-readable message, never thrown.
 */
export function createPlannerClient(opts: { baseUrl: string; token: string; timeoutMs?: number; fetch?: typeof fetch }) {
  const base = opts.baseUrl.replace(/\/+$/, "");
  const client = createTypedPlannerClient({ url: base, token: opts.token, timeoutMs: opts.timeoutMs ?? 3000, fetch: opts.fetch });

  async function read<T>(path: string, get: () => Promise<T>): Promise<PlannerRead<T>> {
    try {
      return { ok: true, value: await get() };
    } catch (err) {
      return { ok: false, message: plannerReadFailure(err, base, path) };
    }
  }

  return {
    baseUrl: base,
    tasks: (): Promise<PlannerRead<Task[]>> => read("/tasks", () => client.tasks()),
    cost: (): Promise<PlannerRead<CostReport>> => read("/cost", () => client.cost()),
  };
}

export type PlannerClient = ReturnType<typeof createPlannerClient>;
