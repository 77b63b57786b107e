import { createServer, type Server } from "node:http";
import { signIn as signInAs, type BrowserContext, type Page } from "@steward/testkit/browser";
import type { CostReport, Task } from "@steward/contracts/task";
import { API_TOKEN, type Env } from "./helpers.js";

/** Signs in with this suite's API token (the bootstrap `admin`) unless told otherwise. */
export async function signIn(ctx: BrowserContext, url: string, opts: { token?: string } = {}): Promise<Page> {
  return signInAs(ctx, url, { token: opts.token ?? API_TOKEN });
}

const operatorTokens = new WeakMap<Env, Map<string, string>>();
/** The token of an approver credential named `name` on the env's first executor, created on first use. */
export async function operatorToken(env: Env, name: string): Promise<string> {
  const known = operatorTokens.get(env) ?? new Map<string, string>();
  operatorTokens.set(env, known);
  const had = known.get(name);
  if (had) return had;
  const c = await env.executors[0]!.credentials.create(name, "approver", "test");
  if (!c.ok) throw new Error(c.message);
  known.set(name, c.token);
  return c.token;
}

/** Plays the planner's read API (GET /tasks, GET /cost with the bearer token) for the console. */
export async function startFakePlanner(data: { tasks: Task[]; cost: CostReport }, token = API_TOKEN): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "unauthorized" } }));
      return;
    }
    const body = req.url === "/tasks" ? { tasks: data.tasks } : req.url === "/cost" ? data.cost : undefined;
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export function costReport(over: Partial<CostReport> = {}): CostReport {
  return {
    generated_at: "2026-03-02T10:00:00.000Z",
    caps: { per_task_usd: 0.5, per_agent_day_usd: 2, global_day_usd: 5 },
    today: { global: { usd: 4.2, calls: 31 }, by_agent: { diagnoser: { usd: 1.7, calls: 20 }, "<b>chat</b>": { usd: 0.3, calls: 11 } } },
    headroom: { global_day_usd: 0.8, per_agent_day_usd: { diagnoser: 0.3, "<b>chat</b>": 1.7 } },
    by_day: [
      { day: "2026-02-28", usd: 1.1, calls: 9 },
      { day: "2026-03-01", usd: 6.3, calls: 40 },
      { day: "2026-03-02", usd: 4.2, calls: 31 },
    ],
    by_agent: [{ agent: "diagnoser", usd: 1.7, calls: 20 }],
    by_model_group: [
      { model_group: "local", usd: 0, calls: 25 },
      { model_group: "claude", usd: 4.2, calls: 6 },
    ],
    by_source: [{ source: "supervisor", usd: 4.2, calls: 31 }],
    ...over,
  };
}

export function task(over: Partial<Task> = {}): Task {
  return {
    id: "task-1",
    state: "succeeded",
    source: "supervisor",
    user: "supervisor",
    content: "web on node-1 keeps crashing",
    conversation_id: "c-1",
    agent: "diagnoser",
    answer: "out of memory",
    model_groups: ["local", "claude"],
    cost_usd: 0.0123,
    attempts: 1,
    error: null,
    restricted: false,
    created_at: new Date().toISOString(),
    updated_at: new Date().toISOString(),
    expires_at: null,
    ...over,
  };
}
