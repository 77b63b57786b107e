import type { IncomingMessage, ServerResponse } from "node:http";
import { SpanKind } from "@opentelemetry/api";
import { hasUnstorableChars } from "@steward/contracts/limits";
import { allowMethod, HttpError, jsonApi, parseListLimit, readBodyText, requestTarget, sendJson, type JsonApiDeps } from "@steward/platform/http";
import { bearerToken, type Credential, type CredentialsRepository } from "@steward/platform/credentials";
import { logRefusalStart, requestSource, sendTooManyFailures, type FailureLimiter } from "@steward/platform/rate-limit";
import { decidePlannerAccess, decideSubmit, ownsTask, plannerPermits, plannerRouteOf, plannerRoutePermission, type PlannerRole } from "./access.js";
import { answerHealth } from "@steward/platform/metrics";
import { contextFromTraceparent, traceparentOf, withSpan } from "@steward/platform/tracing";
import { MAX_TASK_LIST_LIMIT, type InboxReply, type TaskListReply } from "@steward/contracts/planner-api";
import type { CostLedger } from "./cost-ledger.js";
import { validateEnvelope } from "./inbox.js";
import type { PlannerMetrics } from "./metrics.js";
import type { TaskStore } from "./store.js";
import type { Incidents } from "./incidents/incidents.js";
import { IncidentState, MAX_INCIDENT_LIST_LIMIT, type IncidentListReply, type RecurrenceListReply } from "@steward/contracts/incident";

export const MAX_BODY_BYTES = 256 * 1024;

export interface ApiDeps extends Omit<JsonApiDeps, "apiToken"> {
  /** Who holds a bearer token: the planner's setting credentials, then the named credentials in `api_credentials`. */
  credentials: Pick<CredentialsRepository<PlannerRole>, "resolve">;
  /** Wrong bearer tokens per source address: past the limit a source is answered 429 before its token is looked at. */
  limiter: FailureLimiter;
  store: TaskStore;
  ledger: CostLedger;
  incidents: Pick<Incidents, "list" | "detail" | "postmortem" | "recurrences">;
  metrics: PlannerMetrics;
  defaultTtlS: number;
  maxAttempts: number;
  clock: () => Date;
  /** Called after a task was queued, so an idle worker can start at once. */
  onQueued?: () => void;
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return readBodyText(req, MAX_BODY_BYTES);
}

/**
 * The planner's HTTP API: /inbox, /tasks, /cost, /incidents need a bearer credential whose role allows the route
 * (access.ts); /healthz does not (/metrics is on the metrics listener). A task's user comes from the credential.
 * Wrong tokens are counted per source address (`@steward/platform/rate-limit`, as the executor's are).
 */
export function createApiHandler(deps: ApiDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { store, ledger, metrics, logger } = deps;

  async function inbox(req: IncomingMessage, res: ServerResponse, cred: Credential<PlannerRole>): Promise<number> {
    const text = await readBody(req);
    let raw: unknown;
    try {
      raw = text.trim() === "" ? undefined : JSON.parse(text);
    } catch {
      metrics.rejected.inc({ reason: "invalid_json" });
      throw new HttpError(400, { code: "invalid_json", message: "request body is not valid JSON" });
    }
    const v = validateEnvelope(raw);
    if (!v.ok) {
      metrics.rejected.inc({ reason: v.reason });
      const status = v.reason === "invalid_json" ? 400 : 422;
      throw new HttpError(status, { code: status === 400 ? "invalid_json" : "invalid", field: v.field, message: v.message });
    }
    const who = decideSubmit(cred, v.envelope);
    if (!who.ok) {
      metrics.rejected.inc({ reason: "forbidden" });
      throw new HttpError(who.status, { code: who.code, field: who.field, message: who.message });
    }
    // The body's `user` is never the record: the credential (or whom it vouches for, named with it) is.
    const e = { ...v.envelope, user: who.user };
    const header = typeof req.headers.traceparent === "string" ? req.headers.traceparent : undefined;
    const parent = contextFromTraceparent(header ?? e.traceparent);
    return withSpan("planner.inbox", { parent, kind: SpanKind.SERVER, attributes: { "steward.task_id": e.task_id, "steward.source": e.source, "steward.restricted": e.restricted } }, async (span) => {
      // The enqueue span's context goes into the queue row: the worker's span continues this trace.
      const r = await withSpan("planner.queue.enqueue", { kind: SpanKind.PRODUCER }, () =>
        store.enqueue(e, { now: deps.clock(), defaultTtlS: deps.defaultTtlS, maxAttempts: deps.maxAttempts, traceparent: traceparentOf() ?? null }),
      );
      span.setAttribute("steward.created", r.created);
      metrics.inbox.inc({ result: r.created ? "created" : "duplicate" });
      if (r.created) deps.onQueued?.();
      const body: InboxReply = { task: r.task, created: r.created };
      sendJson(res, r.created ? 202 : 200, body);
      return r.created ? 202 : 200;
    });
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<{ route: string; status: number }> {
    const { url, path, method } = requestTarget(req);
    // /metrics is served by a listener of its own (METRICS_PORT), never here.
    const ops = answerHealth(path, res);
    if (ops) return { route: ops, status: res.statusCode };
    const known = path === "/inbox" || path === "/tasks" || path.startsWith("/tasks/") || path === "/cost" || path === "/incidents" || path.startsWith("/incidents/");
    if (!known) throw new HttpError(404, { code: "not_found", message: `no route ${method} ${path}` });
    const pattern = plannerRouteOf(path);
    const routeLabel = pattern ?? (path.startsWith("/tasks/") ? "/tasks/:id" : path.startsWith("/incidents/") ? "/incidents/:id" : path);
    const source = requestSource(req);
    const wait = deps.limiter.retryAfterMs(source);
    if (wait > 0) {
      metrics.bearerFailures.inc({ result: "rate_limited" });
      if (path === "/inbox") metrics.rejected.inc({ reason: "rate_limited" });
      sendTooManyFailures(res, wait);
      return { route: routeLabel, status: 429 };
    }
    const token = bearerToken(req.headers.authorization);
    const cred = await deps.credentials.resolve(token);
    // A wrong token is a guess; no token at all is not.
    if (!cred && token !== "") {
      metrics.bearerFailures.inc({ result: "wrong_token" });
      logRefusalStart(logger, source, deps.limiter.fail(source));
    }
    if (cred) deps.limiter.succeed(source);
    metrics.limiterSources.set(deps.limiter.size());
    // An unknown sub-path of a known prefix is 404 for a caller that is allowed in at all (as before: after the token).
    const decision = decidePlannerAccess(cred, pattern ? (plannerRoutePermission(pattern) ?? "read") : "read_own_tasks");
    if (!decision.ok || !cred) {
      if (path === "/inbox") metrics.rejected.inc({ reason: decision.ok ? "unauthorized" : decision.code });
      const status = decision.ok ? 401 : decision.status;
      const code = decision.ok ? "unauthorized" : decision.code;
      const message = decision.ok ? "missing, wrong or revoked bearer token" : decision.message;
      sendJson(res, status, { error: { code, message } }, status === 401 ? { "www-authenticate": 'Bearer realm="steward"' } : {});
      return { route: routeLabel, status };
    }
    const allow = (want: string, r: string) => allowMethod(method, want, r);
    if (path === "/inbox") {
      allow("POST", "/inbox");
      return { route: "/inbox", status: await inbox(req, res, cred) };
    }
    if (path === "/tasks") {
      allow("GET", "/tasks");
      const limit = parseListLimit(url.searchParams.get("limit"), MAX_TASK_LIST_LIMIT);
      const conversationId = url.searchParams.get("conversation_id") || undefined;
      // Only storable text was ever stored: anything else cannot match, and PostgreSQL would refuse even to compare it.
      if (conversationId !== undefined && hasUnstorableChars(conversationId)) throw new HttpError(400, { code: "invalid", field: "conversation_id", message: "conversation_id must not contain NUL or unpaired surrogates" });
      const body: TaskListReply = { tasks: await store.list({ limit, conversationId }) };
      sendJson(res, 200, body);
      return { route: "/tasks", status: 200 };
    }
    if (path.startsWith("/tasks/")) {
      allow("GET", "/tasks/:id");
      let id: string;
      try {
        id = decodeURIComponent(path.slice("/tasks/".length));
      } catch {
        throw new HttpError(400, { code: "invalid", field: "id", message: "task id is not valid percent-encoding" });
      }
      const found = hasUnstorableChars(id) ? undefined : await store.get(id);
      // A credential that may read only its own tasks is told nothing about anyone else's: the same 404.
      const detail = found && (plannerPermits(cred.role, "read") || ownsTask(cred, found.task)) ? found : undefined;
      if (!detail) throw new HttpError(404, { code: "not_found", message: `no task with id '${id}'` });
      sendJson(res, 200, detail);
      return { route: "/tasks/:id", status: 200 };
    }
    if (path === "/incidents" || path.startsWith("/incidents/")) return incidentRoute(req, res, url, path, method);
    allow("GET", "/cost");
    sendJson(res, 200, await ledger.report(deps.clock()));
    return { route: "/cost", status: 200 };
  }

  /** `GET /incidents`, `GET /incidents/recurrences`, `GET /incidents/:id`, `POST /incidents/:id/postmortem`. */
  async function incidentRoute(req: IncomingMessage, res: ServerResponse, url: URL, path: string, method: string): Promise<{ route: string; status: number }> {
    const { incidents } = deps;
    if (path === "/incidents") {
      allowMethod(method, "GET", "/incidents");
      const limit = parseListLimit(url.searchParams.get("limit"), MAX_INCIDENT_LIST_LIMIT);
      const rawState = url.searchParams.get("state");
      const state = rawState === null || rawState === "" ? undefined : IncidentState.safeParse(rawState);
      if (state && !state.success) throw new HttpError(400, { code: "invalid", field: "state", message: `state must be one of ${IncidentState.options.join(", ")}` });
      const body: IncidentListReply = { incidents: await incidents.list({ limit, state: state?.data }) };
      sendJson(res, 200, body);
      return { route: "/incidents", status: 200 };
    }
    if (path === "/incidents/recurrences") {
      allowMethod(method, "GET", "/incidents/recurrences");
      const body: RecurrenceListReply = { recurrences: await incidents.recurrences() };
      sendJson(res, 200, body);
      return { route: "/incidents/recurrences", status: 200 };
    }
    const m = /^\/incidents\/([^/]+)(\/postmortem)?$/.exec(path);
    const route = m?.[2] ? "/incidents/:id/postmortem" : "/incidents/:id";
    if (!m) throw new HttpError(404, { code: "not_found", message: `no route ${method} ${path}` });
    allowMethod(method, m[2] ? "POST" : "GET", route);
    const raw = m[1] ?? "";
    // Incident ids are what `steward incident ls` prints: a positive integer, optionally written #12.
    const id = /^#?[1-9][0-9]{0,15}$/.test(decodeURIComponentSafe(raw)) ? Number(decodeURIComponentSafe(raw).replace("#", "")) : NaN;
    if (!Number.isSafeInteger(id)) throw new HttpError(400, { code: "invalid", field: "id", message: "an incident id is a positive integer (as `steward incident ls` prints it)" });
    if (m[2]) {
      const header = typeof req.headers.traceparent === "string" ? req.headers.traceparent : undefined;
      const reply = await incidents.postmortem(id, header);
      if (!reply) throw new HttpError(404, { code: "not_found", message: `no incident #${id}` });
      sendJson(res, 200, reply);
      return { route, status: 200 };
    }
    const detail = await incidents.detail(id);
    if (!detail) throw new HttpError(404, { code: "not_found", message: `no incident #${id}` });
    sendJson(res, 200, detail);
    return { route, status: 200 };
  }

  return jsonApi(route, { logger, count: (r, status) => metrics.apiRequests.inc({ route: r, status: String(status) }) });
}
