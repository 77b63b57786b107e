import type { IncomingMessage, ServerResponse } from "node:http";
import type { z } from "zod";
import { ActionState } from "@steward/contracts/action";
import { ApproveRequest, CreateCredentialRequest, MAX_ACTION_LIST_LIMIT, RejectRequest, ReleaseHoldRequest, type ActionListReply, type CreatedCredentialReply, type CredentialListReply, type DecisionReply, type RevokedCredentialReply, type HoldListReply, type HoldReply } from "@steward/contracts/executor-api";
import { allowMethod, HttpError, jsonApi, parseListLimit, readBodyText, requestTarget, sendJson, type JsonApiDeps } from "@steward/platform/http";
import { answerHealth } from "@steward/platform/metrics";
import type { ActionsRepository, MoveResult } from "@steward/actions/repository";
import type { ExecutorMetrics } from "./metrics.js";
import type { ApprovalRoutes } from "./http-approvals.js";
import type { WorldView } from "./world.js";
import type { Console as WebConsole } from "./console/index.js";
import type { DrillRoutes } from "./http-drills.js";
import { bearerToken, decideAccess, routePermission, type Credential } from "./access.js";
import type { CredentialsRepository } from "@steward/platform/credentials";
import type { Logger } from "@steward/platform/logger";
import { logRefusalStart, requestSource, sendTooManyFailures, type FailureLimiter } from "@steward/platform/rate-limit";

export const MAX_BODY_BYTES = 64 * 1024;

export interface ApiDeps extends Omit<JsonApiDeps, "apiToken"> {
  store: ActionsRepository;
  /** Who holds a bearer token: the caller's name is the audit actor, its role what it may do (access.ts). */
  credentials: CredentialsRepository;
  /** Wrong bearer tokens per source address: past its limit a source is answered 429 without a lookup. */
  limiter?: FailureLimiter | undefined;
  world: Pick<WorldView, "snapshot" | "drift">;
  metrics: ExecutorMetrics;
  /** ntfy buttons and bot relays (http-approvals.ts); mounted under /approvals/ when given. */
  approvals?: ApprovalRoutes;
  /** The operator web console (console/); mounted under /console when given. */
  console?: WebConsole;
  /** Restart drills (http-drills.ts); mounted under /api/drills when given. */
  drills?: DrillRoutes;
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new HttpError(400, { code: "invalid", field: "path", message: "path is not valid percent-encoding" });
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = await readBodyText(req, MAX_BODY_BYTES);
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, { code: "invalid_json", message: "request body is not valid JSON" });
  }
}

function validate<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new HttpError(400, { code: "invalid_json", message: "request body must be a JSON object" });
  }
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue?.path.join(".") || "(body)";
  throw new HttpError(422, { code: "invalid", field, message: `${field}: ${issue?.message ?? "invalid"}` });
}

function storeReply(res: ServerResponse, r: MoveResult, id: string): number {
  if (r.ok) {
    const body: DecisionReply = { action: r.action };
    sendJson(res, 200, body);
    return 200;
  }
  if (r.code === "not_found") {
    sendJson(res, 404, { error: { code: "not_found", message: `no action with id '${id}'` } });
    return 404;
  }
  sendJson(res, 409, { error: { code: "invalid_transition", message: `action is ${r.state}, not pending`, state: r.state } });
  return 409;
}

/**
 * `/api/credentials[/:name]` (admin only, checked before this runs): create (the token is answered once), list
 * (never a token or hash), revoke. Who did it goes to the log by name; the token never does.
 */
async function credentialRoute(req: IncomingMessage, res: ServerResponse, seg: readonly string[], method: string, cred: Credential, deps: Pick<ApiDeps, "credentials" | "logger">): Promise<{ route: string; status: number }> {
  const { credentials, logger } = deps;
  if (seg.length === 1) {
    if (method === "GET") {
      const body: CredentialListReply = { credentials: await credentials.list() };
      sendJson(res, 200, body);
      return { route: "/api/credentials", status: 200 };
    }
    allowMethod(method, "POST", "/api/credentials");
    const want = validate(CreateCredentialRequest, await readJson(req));
    const r = await credentials.create(want.name, want.role, cred.name);
    if (!r.ok) throw new HttpError(409, { code: r.code, field: r.field, message: r.message });
    logger.info({ credential: want.name, role: want.role, actor: cred.name }, "credential created");
    const body: CreatedCredentialReply = { credential: r.credential, token: r.token };
    sendJson(res, 201, body);
    return { route: "/api/credentials", status: 201 };
  }
  if (seg.length === 2 && seg[1]) {
    allowMethod(method, "DELETE", "/api/credentials/:name");
    const r = await credentials.revoke(seg[1], cred.name);
    if (!r.ok) throw new HttpError(r.code === "not_found" ? 404 : 409, { code: r.code, message: r.message });
    logger.info({ credential: seg[1], actor: cred.name }, "credential revoked");
    const body: RevokedCredentialReply = { revoked: seg[1] };
    sendJson(res, 200, body);
    return { route: "/api/credentials/:name", status: 200 };
  }
  throw new HttpError(404, { code: "not_found", message: `no route ${method} /api/${seg.join("/")}` });
}

/**
 * Resolves the request's bearer token to a credential and checks its role allows `need`; answers 401 (no, wrong or
 * revoked token) or 403 (a role without the permission) and returns undefined when it did not allow.
 */
export async function authorize(req: IncomingMessage, res: ServerResponse, credentials: Pick<CredentialsRepository, "resolve">, need: Parameters<typeof decideAccess>[1], limiter?: FailureLimiter, logger?: Logger): Promise<Credential | undefined> {
  const source = requestSource(req);
  const wait = limiter?.retryAfterMs(source) ?? 0;
  if (wait > 0) {
    sendTooManyFailures(res, wait);
    return undefined;
  }
  const token = bearerToken(req.headers.authorization);
  const cred = await credentials.resolve(token);
  // A wrong token is a guess; no token at all is not.
  if (!cred && token !== "" && limiter) logRefusalStart(logger, source, limiter.fail(source));
  if (cred) limiter?.succeed(source);
  const d = decideAccess(cred, need);
  if (d.ok) return cred;
  sendJson(res, d.status, { error: { code: d.code, message: d.message } }, d.status === 401 ? { "www-authenticate": 'Bearer realm="steward"' } : {});
  return undefined;
}

/** The executor's HTTP API: /api/* needs a credential whose role allows the route; /healthz does not (/metrics is on the metrics listener). */
export function createApiHandler(deps: ApiDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { store, world, logger, metrics } = deps;

  async function route(req: IncomingMessage, res: ServerResponse): Promise<{ route: string; status: number }> {
    const { url, path, method } = requestTarget(req);
    // /metrics is served by a listener of its own (METRICS_PORT), never here.
    const ops = answerHealth(path, res);
    if (ops) return { route: ops, status: res.statusCode };
    if (deps.approvals && path.startsWith("/approvals/")) return deps.approvals(req, res, path, method);
    if (deps.console && (path === "/console" || path.startsWith("/console/"))) return deps.console.handle(req, res, path);
    if (path !== "/api" && !path.startsWith("/api/")) throw new HttpError(404, { code: "not_found", message: `no route ${method} ${path}` });

    const seg = path.split("/").slice(2).map(decodeSegment);
    const cred = await authorize(req, res, deps.credentials, routePermission(method, "api", seg) ?? "read", deps.limiter, logger);
    if (!cred) return { route: "/api", status: res.statusCode };
    const allow = (want: string, r: string) => allowMethod(method, want, r);

    if (seg[0] === "actions" && seg.length === 1) {
      allow("GET", "/api/actions");
      const stateRaw = url.searchParams.get("state");
      const state = stateRaw === null || stateRaw === "" ? undefined : ActionState.safeParse(stateRaw);
      if (state && !state.success) throw new HttpError(400, { code: "invalid", field: "state", message: `state must be one of ${ActionState.options.join(", ")}` });
      const limit = parseListLimit(url.searchParams.get("limit"), MAX_ACTION_LIST_LIMIT);
      const body: ActionListReply = { actions: await store.list({ state: state?.data, limit }) };
      sendJson(res, 200, body);
      return { route: "/api/actions", status: 200 };
    }
    if (seg[0] === "actions" && seg.length === 2 && seg[1]) {
      allow("GET", "/api/actions/:id");
      const found = await store.get(seg[1]);
      if (!found) throw new HttpError(404, { code: "not_found", message: `no action with id '${seg[1]}'` });
      sendJson(res, 200, found);
      return { route: "/api/actions/:id", status: 200 };
    }
    if (seg[0] === "actions" && seg.length === 3 && seg[1] && seg[2] === "approve") {
      allow("POST", "/api/actions/:id/approve");
      const body = validate(ApproveRequest, await readJson(req));
      const r = await store.approve(seg[1], cred.name, body.channel ?? "api");
      return { route: "/api/actions/:id/approve", status: storeReply(res, r, seg[1]) };
    }
    if (seg[0] === "actions" && seg.length === 3 && seg[1] && seg[2] === "reject") {
      allow("POST", "/api/actions/:id/reject");
      const body = validate(RejectRequest, await readJson(req));
      const r = await store.reject(seg[1], cred.name, body.channel ?? "api", body.reason, { holdForMs: body.hold_for });
      return { route: "/api/actions/:id/reject", status: storeReply(res, r, seg[1]) };
    }
    if (seg[0] === "credentials") return credentialRoute(req, res, seg, method, cred, deps);
    if (seg[0] === "drills" && deps.drills) return deps.drills(res, seg, method, () => readJson(req), url, cred);
    if (seg[0] === "holds" && seg.length === 1) {
      allow("GET", "/api/holds");
      // One whose time ran out is over, even before the supervisor's next cycle records it.
      const now = Date.now();
      const body: HoldListReply = { holds: (await store.listHolds()).filter((h) => h.until === null || Date.parse(h.until) > now) };
      sendJson(res, 200, body);
      return { route: "/api/holds", status: 200 };
    }
    if (seg[0] === "holds" && seg.length === 3 && seg[1] && seg[2] === "release") {
      allow("POST", "/api/holds/:id/release");
      const body = validate(ReleaseHoldRequest, await readJson(req));
      const actor = cred.name;
      const r = await store.endHold(seg[1], { actor, channel: body.channel ?? "api", detail: `released by ${actor}${body.reason ? `: ${body.reason}` : ""}` });
      if (!r.ok && r.code === "not_found") throw new HttpError(404, { code: "not_found", message: `no hold for action '${seg[1]}' (a hold's id is its rejected action's id)` });
      if (!r.ok) throw new HttpError(409, { code: "ended", message: `the hold of action '${seg[1]}' already ended: ${r.hold.end_reason ?? ""}` });
      const reply: HoldReply = { hold: r.hold };
      sendJson(res, 200, reply);
      return { route: "/api/holds/:id/release", status: 200 };
    }
    if ((seg[0] === "world" || seg[0] === "drift") && seg.length === 1) {
      const r = `/api/${seg[0]}`;
      allow("GET", r);
      const doc = seg[0] === "world" ? await world.snapshot() : await world.drift();
      if (!doc.ok) throw new HttpError(503, { code: doc.code === "none" ? "no_snapshot" : "unreadable_snapshot", message: doc.message });
      sendJson(res, 200, doc.value);
      return { route: r, status: 200 };
    }
    throw new HttpError(404, { code: "not_found", message: `no route ${method} ${path}` });
  }

  return jsonApi(route, { logger, count: (r, status) => metrics.apiRequests.inc({ route: r, status: String(status) }) });
}
