import { InboxReply, TaskListReply } from "@steward/contracts/planner-api";
import { CostReport, TaskDetail, type Task, type TaskEnvelope } from "@steward/contracts/task";
import { IncidentDetail, IncidentListReply, PostmortemReply, RecurrenceListReply, type Incident, type IncidentRecurrence, type IncidentState } from "@steward/contracts/incident";
import { ApiBadResponse, ApiError, ApiUnreachable, createJsonHttp, type HttpTransport, type JsonHttpOptions } from "@steward/platform/http-client";

/**
 * The typed client of the planner's HTTP API (`@steward/planner/client`): the task inbox, tasks, the cost ledger and incidents.
 * Imports only contracts and the small HTTP helper (no LangGraph, NATS, PostgreSQL, pino or OpenTelemetry), so the
 * CLI, the alerter, the console and the supervisor load it cheaply.
 * Every failure is an ApiError: ApiUnreachable (no answer), ApiBadResponse (off the contract), or the API's own code.
 */
export { ApiBadResponse, ApiError, ApiUnreachable };
export type { InboxReply };

export interface PlannerClientOptions {
  url: string;
  token: string | undefined;
  /** Per request; default 15 s. */
  timeoutMs?: number | undefined;
  /** The transport; the global `fetch` by default (any fetch-like function fits). */
  fetch?: HttpTransport | undefined;
  /** Sees each answer's status and headers before its body is read; what it throws, the call throws. */
  onReply?: JsonHttpOptions["onReply"];
  /** For a process that parses one answer and exits (the CLI): see JsonHttpOptions. */
  jitless?: boolean | undefined;
  /** How the planner is named in messages; default "the planner". */
  label?: string | undefined;
  /** For `postmortem` (a model may write it); default 300 s. */
  postmortemTimeoutMs?: number | undefined;
}

export interface PlannerClient {
  readonly url: string;
  /**
   * POST /inbox. `created` is false when the idempotency key was seen before: the existing task comes back,
   * nothing runs twice. `headers` carries a `traceparent` so the planner's spans continue the caller's trace.
   */
  submit(envelope: TaskEnvelope, opts?: { headers?: Record<string, string> }): Promise<InboxReply>;
  /** GET /tasks; without a limit the planner's default (50). */
  tasks(opts?: { limit?: number | undefined; conversationId?: string | undefined }): Promise<Task[]>;
  task(id: string): Promise<TaskDetail>;
  cost(): Promise<CostReport>;
  /** GET /incidents, newest first; without a limit the planner's default (50). */
  incidents(opts?: { limit?: number | undefined; state?: IncidentState | undefined }): Promise<Incident[]>;
  /** GET /incidents/:id: the incident with its tasks, actions, timeline, similar past incidents and recurrence. */
  incident(id: number): Promise<IncidentDetail>;
  /** POST /incidents/:id/postmortem: drafts (and keeps) the post-mortem; a model writes it when one serves. */
  postmortem(id: number, opts?: { headers?: Record<string, string> }): Promise<PostmortemReply>;
  /** GET /incidents/recurrences: recurring failures whose window has not ended (what the alerter raises). */
  recurrences(): Promise<IncidentRecurrence[]>;
}

export function createPlannerClient(opts: PlannerClientOptions): PlannerClient {
  const http = createJsonHttp({ url: opts.url, token: opts.token, label: opts.label ?? "the planner", timeoutMs: opts.timeoutMs, fetch: opts.fetch, onReply: opts.onReply, jitless: opts.jitless });
  // A post-mortem may wait on a model: its own, longer timeout.
  const slow = createJsonHttp({ url: opts.url, token: opts.token, label: opts.label ?? "the planner", timeoutMs: opts.postmortemTimeoutMs ?? 300_000, fetch: opts.fetch, onReply: opts.onReply, jitless: opts.jitless });
  return {
    url: opts.url,
    submit: async (envelope, o = {}) => (await http.call("POST", "/inbox", InboxReply, { body: envelope, ...(o.headers ? { headers: o.headers } : {}) })).data,
    async tasks(o = {}) {
      const q = new URLSearchParams();
      if (o.limit !== undefined) q.set("limit", String(o.limit));
      if (o.conversationId) q.set("conversation_id", o.conversationId);
      const query = q.size > 0 ? `?${q.toString()}` : "";
      return (await http.call("GET", `/tasks${query}`, TaskListReply)).data.tasks;
    },
    task: async (id) => (await http.call("GET", `/tasks/${encodeURIComponent(id)}`, TaskDetail)).data,
    cost: async () => (await http.call("GET", "/cost", CostReport)).data,
    async incidents(o = {}) {
      const q = new URLSearchParams();
      if (o.limit !== undefined) q.set("limit", String(o.limit));
      if (o.state) q.set("state", o.state);
      return (await http.call("GET", `/incidents${q.size > 0 ? `?${q.toString()}` : ""}`, IncidentListReply)).data.incidents;
    },
    incident: async (id) => (await http.call("GET", `/incidents/${id}`, IncidentDetail)).data,
    postmortem: async (id, o = {}) => (await slow.call("POST", `/incidents/${id}/postmortem`, PostmortemReply, o.headers ? { headers: o.headers } : {})).data,
    recurrences: async () => (await http.call("GET", "/incidents/recurrences", RecurrenceListReply)).data.recurrences,
  };
}
