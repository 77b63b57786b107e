/**
 * A small local server speaking the planner's HTTP contract (POST /inbox, GET /tasks, GET /tasks/:id, GET /cost)
 * and the few executor routes `steward chat` uses to approve/reject. Each task advances one scripted frame per
 * GET /tasks/:id, so progress output is deterministic without sleeping.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import type { Action } from "@steward/contracts/action";
import type { CostReport, ModelCall, Task, TaskDetail, TaskEnvelope, TaskProposal, TaskStep } from "@steward/contracts/task";

export interface Frame {
  state: Task["state"];
  steps?: Omit<TaskStep, "at">[];
  answer?: string;
  error?: string;
  agent?: string;
  proposals?: TaskProposal[];
  calls?: Omit<ModelCall, "at">[];
}

export interface Received {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: unknown;
}

export interface FakePlanner {
  url: string;
  token: string;
  received: Received[];
  envelopes: TaskEnvelope[];
  tasks: Map<string, TaskDetail>;
  actions: Map<string, Action>;
  /** The frames the next submitted task walks through (default: a short successful diagnosis). */
  script: (env: TaskEnvelope) => Frame[];
  cost: CostReport;
  /** Answer every route with this instead (to test bad responses). */
  override?: { status: number; body: string } | undefined;
  close(): Promise<void>;
}

export const defaultFrames = (env: TaskEnvelope): Frame[] => [
  { state: "queued" },
  { state: "running", agent: "diagnostician", steps: [{ kind: "triage", message: "diagnostician: a question about a service" }] },
  { state: "running", agent: "diagnostician", steps: [{ kind: "tool", message: "recent events of demo-a/web: 3 exits in 2 minutes" }] },
  {
    state: "succeeded",
    agent: "diagnostician",
    steps: [{ kind: "diagnosis", message: "crash loop" }, { kind: "report", message: "answered" }],
    answer: `About "${env.content}": web exits right after start (crash loop).`,
    calls: [{ agent: "diagnostician", provider: "ollama", model_group: "local-small", model: "qwen2.5:7b", decision: "local", reason: "within_context", input_tokens: 812, output_tokens: 96, cost_usd: 0 }],
    proposals: [
      { action_kind: "restart", node: "demo-a", service: "web", accepted: true, reason: "crash loop: restart with backoff", action_id: "SET-BY-FAKE" },
      { action_kind: "shell", node: "demo-a", service: null, accepted: false, reason: "not in the action catalog", action_id: null },
    ],
  },
];

const now = () => new Date().toISOString();

function newAction(id: string, p: TaskProposal, taskId: string): Action {
  return { id, node: p.node ?? "", service: p.service ?? "", kind: "restart", state: "pending", reason: p.reason, drift_key: null, proposed_by: "planner", diagnosis: "crash loop", created_at: now(), updated_at: now(), expires_at: new Date(Date.now() + 3600_000).toISOString(), result: null, traceparent: null, task_id: taskId };
}

export async function startFakePlanner(token = "fake-token"): Promise<FakePlanner> {
  const frames = new Map<string, { frames: Frame[]; at: number; steps: TaskStep[] }>();
  const fake: FakePlanner = {
    url: "",
    token,
    received: [],
    envelopes: [],
    tasks: new Map(),
    actions: new Map(),
    script: defaultFrames,
    cost: {
      generated_at: now(),
      caps: { per_task_usd: 5, per_agent_day_usd: 10, global_day_usd: 30 },
      today: { global: { usd: 1.25, calls: 7 }, by_agent: { diagnostician: { usd: 1.25, calls: 5 }, "operator-answerer": { usd: 0, calls: 2 } } },
      headroom: { global_day_usd: 28.75, per_agent_day_usd: { diagnostician: 8.75, "operator-answerer": 10 } },
      by_day: [{ day: "2025-01-02", usd: 1.25, calls: 7 }, { day: "2025-01-01", usd: 0.004, calls: 1 }],
      by_agent: [{ agent: "diagnostician", usd: 1.254, calls: 6 }],
      by_model_group: [{ model_group: "claude-sonnet", usd: 1.254, calls: 2 }, { model_group: "local-small", usd: 0, calls: 6 }],
      by_source: [{ source: "supervisor", usd: 1.2, calls: 5 }, { source: "cli", usd: 0.054, calls: 3 }],
    },
    close: async () => undefined,
  };

  const advance = (id: string): TaskDetail | undefined => {
    const d = fake.tasks.get(id);
    const f = frames.get(id);
    if (!d || !f) return d;
    const frame = f.frames[Math.min(f.at, f.frames.length - 1)]!;
    if (f.at < f.frames.length) {
      f.at++;
      for (const s of frame.steps ?? []) d.steps.push({ ...s, at: now() });
      for (const c of frame.calls ?? []) d.calls.push({ ...c, at: now() });
      for (const p of frame.proposals ?? []) {
        const actionId = p.accepted ? randomUUID() : null;
        if (actionId) fake.actions.set(actionId, newAction(actionId, p, id));
        d.proposals.push({ ...p, action_id: actionId });
      }
      d.task = {
        ...d.task,
        state: frame.state,
        agent: frame.agent ?? d.task.agent,
        answer: frame.answer ?? d.task.answer,
        error: frame.error ?? d.task.error,
        model_groups: [...new Set([...d.task.model_groups, ...(frame.calls ?? []).map((c) => c.model_group)])],
        cost_usd: d.task.cost_usd + (frame.calls ?? []).reduce((s, c) => s + c.cost_usd, 0),
        updated_at: now(),
      };
    }
    return d;
  };

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };

  const server: Server = createServer((req, res) => {
    let raw = "";
    req.on("data", (d: Buffer) => (raw += d.toString()));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://x");
      let body: unknown;
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        body = raw;
      }
      fake.received.push({ method: req.method ?? "", path: url.pathname + url.search, headers: req.headers, body });
      if (fake.override) {
        res.writeHead(fake.override.status, { "content-type": "application/json" });
        res.end(fake.override.body);
        return;
      }
      if (req.headers.authorization !== `Bearer ${token}`) return send(res, 401, { error: { code: "unauthorized", message: "missing or wrong bearer token" } });
      const m = (re: RegExp) => re.exec(url.pathname);
      if (req.method === "POST" && url.pathname === "/inbox") {
        const env = body as TaskEnvelope;
        if (!env.content?.trim()) return send(res, 422, { error: { code: "invalid", field: "content", message: "content is blank" } });
        if (env.ttl_s !== undefined && env.ttl_s <= 0) return send(res, 422, { error: { code: "invalid", field: "ttl_s", message: "ttl_s must be positive" } });
        if (env.target_agent !== undefined && !["diagnostician", "operator-answerer"].includes(env.target_agent)) return send(res, 422, { error: { code: "invalid", field: "target_agent", message: `unknown agent '${env.target_agent}'` } });
        const dup = env.idempotency_key ? [...fake.tasks.values()].find((d) => fake.envelopes.find((e) => e.task_id === d.task.id)?.idempotency_key === env.idempotency_key) : undefined;
        if (dup) return send(res, 200, { task: dup.task, created: false });
        fake.envelopes.push(env);
        const t: Task = {
          id: env.task_id,
          state: "queued",
          source: env.source,
          user: env.user,
          content: env.content,
          conversation_id: env.conversation_id ?? randomUUID(),
          agent: null,
          answer: null,
          model_groups: [],
          cost_usd: 0,
          attempts: 0,
          error: null,
          restricted: env.restricted ?? false,
          created_at: now(),
          updated_at: now(),
          expires_at: null,
        };
        fake.tasks.set(t.id, { task: t, steps: [], calls: [], proposals: [] });
        frames.set(t.id, { frames: fake.script(env), at: 0, steps: [] });
        return send(res, 202, { task: t, created: true });
      }
      if (req.method === "GET" && url.pathname === "/tasks") {
        const limit = Number(url.searchParams.get("limit") ?? 50);
        const conv = url.searchParams.get("conversation_id");
        const list = [...fake.tasks.values()].map((d) => d.task).filter((t) => !conv || t.conversation_id === conv).reverse().slice(0, limit);
        return send(res, 200, { tasks: list });
      }
      const tm = m(/^\/tasks\/([^/]+)$/);
      if (req.method === "GET" && tm) {
        const d = advance(decodeURIComponent(tm[1]!));
        return d ? send(res, 200, d) : send(res, 404, { error: { code: "not_found", message: `no task ${tm[1]}` } });
      }
      if (req.method === "GET" && url.pathname === "/cost") return send(res, 200, fake.cost);
      // Executor routes used by chat's /approve and /reject.
      if (req.method === "GET" && url.pathname === "/api/actions") {
        const state = url.searchParams.get("state");
        return send(res, 200, { actions: [...fake.actions.values()].filter((a) => !state || a.state === state) });
      }
      const am = m(/^\/api\/actions\/([^/]+)(?:\/(approve|reject))?$/);
      if (am) {
        const a = fake.actions.get(decodeURIComponent(am[1]!));
        if (!a) return send(res, 404, { error: { code: "not_found", message: "no such action" } });
        if (req.method === "GET" && !am[2]) return send(res, 200, { action: a, audit: [] });
        if (req.method === "POST" && am[2]) {
          if (a.state !== "pending") return send(res, 409, { error: { code: "conflict", message: `action is ${a.state}` } });
          const next: Action = { ...a, state: am[2] === "approve" ? "succeeded" : "rejected", updated_at: now(), result: am[2] === "approve" ? "web is running and healthy" : null };
          fake.actions.set(a.id, next);
          return send(res, 200, { action: { ...next, state: am[2] === "approve" ? "approved" : "rejected" } });
        }
      }
      send(res, 404, { error: { code: "not_found", message: `no route ${req.method} ${url.pathname}` } });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const a = server.address();
  fake.url = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`;
  fake.close = () => new Promise<void>((r) => server.close(() => r()));
  return fake;
}
