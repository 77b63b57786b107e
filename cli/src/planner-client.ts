import { CostReport, Task, TaskDetail, type TaskEnvelope } from "@steward/contracts/task";
import { z } from "zod";
import { ApiError } from "./errors.js";
import { httpFetch, type FetchLike } from "./http-fetch.js";
import { readStackFile, wrongStack } from "./stack-file.js";

/** No planner URL anywhere: neither STEWARD_PLANNER_URL nor a stack file from `steward up` that runs one. */
export class NoPlannerError extends ApiError {
  constructor() {
    super(0, "no_planner", "no Steward planner configured: set STEWARD_PLANNER_URL and STEWARD_TOKEN, or run `steward up` in another terminal");
    this.name = "NoPlannerError";
  }
}

const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string().optional(), field: z.string().optional() }).passthrough() });
const Submitted = z.object({ task: Task, created: z.boolean() });

export interface PlannerClientOptions {
  url: string;
  token: string;
  /** When the URL comes from the stack file: the stack id its answers must carry. */
  stackId?: string | undefined;
  fetch?: FetchLike;
  timeoutMs?: number;
}

/** What the CLI sends; the envelope's `source` is always `cli` here. */
export type NewTask = Omit<TaskEnvelope, "source" | "restricted"> & { restricted?: boolean };

/** Talks to the planner's HTTP API (the task inbox, tasks, and the cost ledger). */
export class PlannerClient {
  constructor(private readonly opts: PlannerClientOptions) {}

  get url(): string {
    return this.opts.url;
  }

  /** STEWARD_PLANNER_URL / STEWARD_TOKEN win; otherwise the stack file written by `steward up`. */
  static async fromEnv(env: NodeJS.ProcessEnv = process.env): Promise<PlannerClient> {
    const url = env["STEWARD_PLANNER_URL"];
    const token = env["STEWARD_TOKEN"];
    if (url && token) return new PlannerClient({ url, token });
    const stack = await readStackFile(env);
    const stackUrl = url ?? stack?.planner_url;
    const stackToken = token ?? stack?.token;
    if (!stackUrl || !stackToken) throw new NoPlannerError();
    return new PlannerClient({ url: stackUrl, token: stackToken, stackId: url ? undefined : stack?.stack_id });
  }

  private async call<T>(method: string, path: string, schema: z.ZodType<T>, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; data: T }> {
    const f = this.opts.fetch ?? httpFetch;
    let res: Awaited<ReturnType<FetchLike>>;
    try {
      res = await f(new URL(path, this.opts.url), {
        method,
        headers: { authorization: `Bearer ${this.opts.token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 15_000),
      });
    } catch (err) {
      throw new ApiError(0, "unreachable", `cannot reach the Steward planner at ${this.opts.url}: ${(err as Error).message}`);
    }
    const wrong = wrongStack(res, this.opts.stackId, this.opts.url);
    if (wrong) throw new ApiError(0, "wrong_stack", wrong);
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new ApiError(res.status, "bad_response", `the planner answered ${res.status} with a body that is not JSON`);
    }
    if (!res.ok) {
      const e = ErrorBody.safeParse(json);
      if (e.success) {
        const { code, message, field } = e.data.error;
        const text = message ?? code;
        // The planner's 422 names the field; say it once.
        throw new ApiError(res.status, code, field && !text.includes(field) ? `${field}: ${text}` : text);
      }
      if (res.status === 401) throw new ApiError(401, "unauthorized", "the planner refused the token (STEWARD_TOKEN or the stack file's token)");
      throw new ApiError(res.status, "http_error", `the planner answered ${res.status}`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ApiError(res.status, "bad_response", `unexpected answer from the planner's ${path.split("?")[0]}: ${issue ? `${issue.path.join(".")}: ${issue.message}` : ""}`);
    }
    return { status: res.status, data: parsed.data };
  }

  /** POST /inbox. `created` is false when the idempotency key was seen before: the existing task comes back, nothing runs twice. */
  async submit(t: NewTask, traceHeaders: Record<string, string> = {}): Promise<{ task: Task; created: boolean }> {
    const envelope: TaskEnvelope = { ...t, source: "cli", restricted: t.restricted ?? false };
    return (await this.call("POST", "/inbox", Submitted, envelope, traceHeaders)).data;
  }

  async tasks(opts: { limit?: number; conversationId?: string } = {}): Promise<Task[]> {
    const q = new URLSearchParams({ limit: String(opts.limit ?? 50) });
    if (opts.conversationId) q.set("conversation_id", opts.conversationId);
    return (await this.call("GET", `/tasks?${q.toString()}`, z.object({ tasks: z.array(Task) }))).data.tasks;
  }

  async task(id: string): Promise<TaskDetail> {
    return (await this.call("GET", `/tasks/${encodeURIComponent(id)}`, TaskDetail)).data;
  }

  async cost(): Promise<CostReport> {
    return (await this.call("GET", "/cost", CostReport)).data;
  }

  /** Accepts a full id or a unique prefix of a recent task (as printed by `steward task ls`). */
  async resolveTaskId(idOrPrefix: string): Promise<string> {
    if (idOrPrefix.length >= 32) return idOrPrefix;
    const hits = (await this.tasks({ limit: 500 })).filter((t) => t.id.toLowerCase().startsWith(idOrPrefix.toLowerCase()));
    if (hits.length === 1 && hits[0]) return hits[0].id;
    if (hits.length === 0) throw new ApiError(404, "not_found", `no recent task with id ${idOrPrefix}`);
    throw new ApiError(400, "ambiguous", `id prefix ${idOrPrefix} matches ${hits.length} tasks; give more characters`);
  }
}

export const TERMINAL_STATES: ReadonlySet<Task["state"]> = new Set(["succeeded", "failed", "expired", "dead"]);
