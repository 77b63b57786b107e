import { CostReport, Task, TaskDetail, type TaskEnvelope } from "@steward/contracts/task";
import { z } from "zod";

/** The planner's HTTP API, as far as the alerter needs it: the cost report, the inbox and a task's detail. */
export interface PlannerClient {
  cost(): Promise<CostReport>;
  submit(env: TaskEnvelope): Promise<Task>;
  task(id: string): Promise<TaskDetail>;
}

export class PlannerError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "PlannerError";
  }
}

export function createPlannerClient(o: { url: string; token: string | undefined; timeoutMs: number; fetch?: typeof fetch }): PlannerClient {
  const f = o.fetch ?? fetch;
  async function call<S extends z.ZodType>(method: string, path: string, schema: S, body?: unknown): Promise<z.output<S>> {
    let res: Response;
    try {
      res = await f(`${o.url}${path}`, {
        method,
        headers: { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(o.timeoutMs),
      });
    } catch (err) {
      throw new PlannerError(0, `cannot reach the planner: ${(err as Error).message}`);
    }
    let j: unknown;
    try {
      j = await res.json();
    } catch {
      throw new PlannerError(res.status, `the planner answered ${res.status} without JSON`);
    }
    if (!res.ok) {
      const e = (j as { error?: { message?: string; field?: string } })?.error;
      throw new PlannerError(res.status, `the planner answered ${res.status}: ${e?.field ? `${e.field}: ` : ""}${e?.message ?? "error"}`);
    }
    const p = schema.safeParse(j);
    if (!p.success) throw new PlannerError(res.status, `unexpected answer from the planner's ${path.split("?")[0]}: ${p.error.issues[0]?.message ?? "invalid"}`);
    return p.data;
  }
  return {
    cost: () => call("GET", "/cost", CostReport),
    submit: async (env) => (await call("POST", "/inbox", z.object({ task: Task }).passthrough(), env)).task,
    task: (id) => call("GET", `/tasks/${encodeURIComponent(id)}`, TaskDetail),
  };
}
