import { z } from "zod";
import { CostReport, Task } from "@steward/contracts/task";

export type PlannerRead<T> = { ok: true; value: T } | { ok: false; message: string };

const TasksBody = z.object({ tasks: z.array(Task) });

/**
 * Reads the planner's task list and cost report for the console. The planner is optional and may be down:
 * every failure is returned as an operator-readable message (never the token), never thrown.
 */
export function createPlannerClient(opts: { baseUrl: string; token: string; timeoutMs?: number; fetch?: typeof fetch }) {
  const base = opts.baseUrl.replace(/\/+$/, "");
  const doFetch = opts.fetch ?? fetch;
  const timeoutMs = opts.timeoutMs ?? 3000;

  async function get<S extends z.ZodType>(path: string, schema: S): Promise<PlannerRead<z.output<S>>> {
    let res: Response;
    try {
      res = await doFetch(base + path, { headers: { authorization: `Bearer ${opts.token}`, accept: "application/json" }, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const e = err as Error;
      const why = e.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : ((e.cause as Error | undefined)?.message ?? e.message);
      return { ok: false, message: `planner at ${base} is unreachable (${why})` };
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      return { ok: false, message: `planner answered ${res.status} to GET ${path}` };
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      return { ok: false, message: `planner's answer to GET ${path} is not JSON` };
    }
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return { ok: false, message: `planner's answer to GET ${path} does not match the contract (${issue?.path.join(".") || "(body)"}: ${issue?.message ?? "invalid"})` };
    }
    return { ok: true, value: parsed.data };
  }

  return {
    baseUrl: base,
    async tasks(): Promise<PlannerRead<Task[]>> {
      const r = await get("/tasks", TasksBody);
      return r.ok ? { ok: true, value: r.value.tasks } : r;
    },
    cost: (): Promise<PlannerRead<CostReport>> => get("/cost", CostReport),
  };
}

export type PlannerClient = ReturnType<typeof createPlannerClient>;
