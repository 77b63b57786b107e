import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { Logger } from "@steward/platform/logger";
import type { ActionsRepository, MoveResult } from "@steward/actions/repository";
import type { WorldView } from "../world.js";
import { CONSOLE_CSS, CONSOLE_JS } from "./assets.js";
import { createChangeFeed } from "./changes.js";
import { html, type Html } from "./html.js";
import { createPlannerClient } from "./planner-client.js";
import { checkOrigin, clearedCookie, createSessionStore, parseCookies, sameSecret, SESSION_COOKIE, sessionCookie, type Session } from "./sessions.js";
import { actionBody, actionsBody, alertsBody, confirmBody, errorPage, layout, loginPage, overviewBody, tasksBody, type Page } from "./views.js";
import type { TokenRedeemer } from "../token-redeem.js";
import type { AlertsRead } from "./alerts-client.js";
import type { DrillsRepository } from "@steward/actions/drills";
import { drillsBody } from "./drills-view.js";
import { OPERATOR_ROLES } from "@steward/contracts/executor-api";
import { permits } from "../access.js";
import type { CredentialsRepository } from "@steward/platform/credentials";
import { logRefusalStart, requestSource, retryAfterSeconds, type FailureLimiter } from "@steward/platform/rate-limit";

export const MAX_FORM_BYTES = 16 * 1024;
export const DEFAULT_SESSION_TTL_MS = 12 * 3600_000;
/** The newest drills the Drills page lists (`steward drill ls --limit` reaches further back). */
export const DRILLS_SHOWN = 100;

export interface ConsoleDeps {
  store: ActionsRepository;
  world: Pick<WorldView, "snapshot" | "drift" | "revision">;
  logger: Logger;
  /** Sign-in takes an operator's token (role viewer, approver or admin); its name is the actor of every decision. */
  credentials: Pick<CredentialsRepository, "resolve">;
  /** Wrong sign-in tokens per source address: past its limit a source is answered 429 without a lookup. */
  limiter?: FailureLimiter | undefined;
  /** The planner's bearer token, for its read API (tasks and cost). */
  plannerToken: string;
  /** When set, the console shows the planner's tasks and cost (GET {plannerUrl}/tasks and /cost, same bearer token). */
  plannerUrl?: string | undefined;
  /** Reads the alerter's alerts (over NATS: the alerter owns them); without it the Alerts page says so. */
  alerts?: (() => Promise<AlertsRead>) | undefined;
  /** Button tokens (token-redeem.ts): a confirm-only button opens /console/confirm; without it that page says so. */
  redeemer?: TokenRedeemer | undefined;
  /** Drill outcomes (libs/actions owns drill_results); without it the Drills page says so. */
  drills?: Pick<DrillsRepository, "listDrills"> | undefined;
  sessionTtlMs?: number | undefined;
  /** How often open consoles are checked for changes (server side, one poll for all of them). */
  changePollMs?: number | undefined;
  /** Keep-alive comment on the event stream; also when an expired session is told to sign in again. */
  keepAliveMs?: number | undefined;
  clock?: () => Date;
}

export interface RouteResult {
  route: string;
  status: number;
}

/** No inline script or style is allowed anywhere: injected markup could not run even if it got through escaping. */
const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "same-origin",
  "cache-control": "no-store",
};

class FormError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const ACTION_PATH = /^\/console\/actions\/([^/]+)$/;
const DECIDE_PATH = /^\/console\/actions\/([^/]+)\/(approve|reject)$/;
const SAFE_BACK = /^\/console(\/[A-Za-z0-9._~%-]+)*$/;
/** Where sign-in may send the operator on: a console page, or a button's confirmation (its token is base64url and dots). */
const SAFE_NEXT = /^\/console(\/[A-Za-z0-9._~%-]+)*(\?token=[A-Za-z0-9._~%-]{1,2048})?$/;

function sendHtml(res: ServerResponse, status: number, body: Html | string, headers: Record<string, string> = {}): void {
  const text = String(body);
  res.writeHead(status, { "content-type": "text/html; charset=utf-8", "content-length": Buffer.byteLength(text), ...SECURITY_HEADERS, ...headers });
  res.end(text);
}

function redirect(res: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  res.writeHead(303, { location, "content-length": 0, ...SECURITY_HEADERS, ...headers });
  res.end();
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/x-www-form-urlencoded") throw new FormError(415, "the console only accepts its own forms");
  if (Number(req.headers["content-length"] ?? 0) > MAX_FORM_BYTES) throw new FormError(413, "the form is too large");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new FormError(413, "the form is too large");
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

function decode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/**
 * The operator web console under /console: server-rendered pages (escaped by construction), sign-in with an
 * operator's token into an HttpOnly SameSite=Strict session cookie, a per-session CSRF token plus an Origin check on
 * every POST, and live updates over server-sent events. Decisions go through the same store functions as the
 * API, with channel `web` and the signed-in credential's name as the actor (a viewer's are refused).
 */
export function createConsole(deps: ConsoleDeps) {
  const { store, world, logger } = deps;
  const clock = deps.clock ?? (() => new Date());
  const ttlMs = deps.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
  const sessions = createSessionStore({ ttlMs, now: () => clock().getTime() });
  const feed = createChangeFeed({ world, store, logger, pollMs: deps.changePollMs ?? 1000 });
  const planner = deps.plannerUrl ? createPlannerClient({ baseUrl: deps.plannerUrl, token: deps.plannerToken }) : undefined;
  const keepAliveMs = deps.keepAliveMs ?? 15_000;

  const secure = (req: IncomingMessage): boolean => (req.socket as Partial<TLSSocket>).encrypted === true || req.headers["x-forwarded-proto"] === "https";
  const sessionOf = (req: IncomingMessage): Session | undefined => sessions.get(parseCookies(req.headers.cookie)[SESSION_COOKIE]);

  /** Origin first (no form from another site is even read), then the session, then its CSRF token. */
  async function guardPost(req: IncomingMessage, res: ServerResponse, route: string): Promise<{ session: Session; form: URLSearchParams } | RouteResult> {
    const origin = checkOrigin(req.headers.origin, req.headers.host);
    if (!origin.ok) {
      logger.warn({ route, reason: origin.reason }, "console refused a cross-origin POST");
      sendHtml(res, 403, errorPage("Refused", `Refused: ${origin.reason}. Nothing was changed.`, false));
      return { route, status: 403 };
    }
    const session = sessionOf(req);
    if (!session) {
      sendHtml(res, 401, errorPage("Signed out", "You are not signed in (or your session expired). Nothing was changed.", false));
      return { route, status: 401 };
    }
    const form = await readForm(req);
    if (!sameSecret(form.get("csrf") ?? "", session.csrf)) {
      logger.warn({ route, actor: session.actor }, "console refused a POST without a valid CSRF token");
      sendHtml(res, 403, errorPage("Refused", "Refused: the form's CSRF token is missing or wrong. Reload the page and try again. Nothing was changed.", true));
      return { route, status: 403 };
    }
    return { session, form };
  }

  async function login(req: IncomingMessage, res: ServerResponse): Promise<RouteResult> {
    const route = "/console/login";
    const origin = checkOrigin(req.headers.origin, req.headers.host);
    if (!origin.ok) {
      sendHtml(res, 403, errorPage("Refused", `Refused: ${origin.reason}.`, false));
      return { route, status: 403 };
    }
    const source = requestSource(req);
    const wait = deps.limiter?.retryAfterMs(source) ?? 0;
    if (wait > 0) {
      const s = retryAfterSeconds(wait);
      logger.warn({ retry_after_s: s }, "console sign-in refused: too many wrong tokens from this address");
      sendHtml(res, 429, loginPage({ error: `Too many wrong tokens from this address; try again in ${s} s.` }), { "retry-after": String(s) });
      return { route, status: 429 };
    }
    const form = await readForm(req);
    const given = form.get("token") ?? "";
    const nextRaw = form.get("next") ?? "";
    const next = SAFE_NEXT.test(nextRaw) ? nextRaw : undefined;
    const cred = await deps.credentials.resolve(given);
    if (!cred && given !== "" && deps.limiter) logRefusalStart(logger, source, deps.limiter.fail(source));
    if (cred) deps.limiter?.succeed(source);
    if (!cred) {
      logger.warn("console sign-in refused: wrong token");
      sendHtml(res, 401, loginPage({ error: "Wrong token.", next }));
      return { route, status: 401 };
    }
    if (!OPERATOR_ROLES.includes(cred.role)) {
      logger.warn({ actor: cred.name, role: cred.role }, "console sign-in refused: a component's credential");
      sendHtml(res, 403, loginPage({ error: `The credential '${cred.name}' is a component's (role ${cred.role}); sign in with an operator's token.`, next }));
      return { route, status: 403 };
    }
    const s = sessions.create(cred.name, cred.role);
    logger.info({ actor: cred.name, role: cred.role }, "console sign-in");
    redirect(res, next ?? "/console", { "set-cookie": sessionCookie(s.id, Math.floor(ttlMs / 1000), secure(req)) });
    return { route, status: 303 };
  }

  function decisionFlash(r: MoveResult, verb: "approved" | "rejected"): Session["flash"] {
    if (r.ok) {
      const a = r.action;
      return { kind: "ok", text: verb === "approved" ? `Approved ${a.kind} of ${a.node}/${a.service}; the executor runs it next.` : `Rejected ${a.kind} of ${a.node}/${a.service}.` };
    }
    if (r.code === "not_found") return { kind: "error", text: "No such action." };
    return { kind: "error", text: `Not ${verb}: the action is ${r.state}, not pending.` };
  }

  async function decide(req: IncomingMessage, res: ServerResponse, rawId: string, decision: "approve" | "reject"): Promise<RouteResult> {
    const route = `/console/actions/:id/${decision}`;
    const g = await guardPost(req, res, route);
    if (!("session" in g)) return g;
    const { session, form } = g;
    if (!permits(session.role, "decide")) {
      logger.warn({ actor: session.actor, role: session.role, decision }, "console refused a decision: the role may not decide");
      sendHtml(res, 403, errorPage("Refused", `Refused: '${session.actor}' is a ${session.role} and may not ${decision}. Nothing was changed.`, true));
      return { route, status: 403 };
    }
    const id = decode(rawId) ?? "";
    const backRaw = form.get("back") ?? "/console";
    const back = SAFE_BACK.test(backRaw) ? backRaw : "/console";
    let r: MoveResult;
    if (decision === "approve") {
      r = await store.approve(id, session.actor, "web");
    } else {
      const reason = (form.get("reason") ?? "").trim();
      if (reason === "") {
        session.flash = { kind: "error", text: "Not rejected: a rejection needs a reason." };
        redirect(res, back);
        return { route, status: 303 };
      }
      r = await store.reject(id, session.actor, "web", reason.slice(0, 2000));
    }
    logger.info({ action_id: id, actor: session.actor, channel: "web", decision, ok: r.ok }, "console decision");
    session.flash = decisionFlash(r, decision === "approve" ? "approved" : "rejected");
    redirect(res, back);
    return { route, status: 303 };
  }

  /** GET /console/confirm?token=…: what a confirm-only button asks, and the form that decides it. Decides nothing. */
  async function confirmPage(req: IncomingMessage, res: ServerResponse, session: Session, token: string): Promise<RouteResult> {
    const route = "/console/confirm";
    const now = clock();
    const show = (status: number, title: string, body: Html): RouteResult => {
      sendHtml(res, status, layout({ title, session, page: "actions", planner: !!planner, body }));
      return { route, status };
    };
    if (!deps.redeemer) return show(404, "Not available", errorBody("This executor does not take button tokens."));
    const c = await deps.redeemer.inspect(token);
    if (!c.ok) return show(c.refusal.status, "Refused", errorBody(`This button cannot be used: ${c.refusal.message}. Nothing was changed.`));
    return show(200, `Confirm: ${c.claims.dec} ${c.action.kind} ${c.action.node}/${c.action.service}`, confirmBody({ action: c.action, decision: c.claims.dec, token, expiresAt: new Date(c.claims.exp).toISOString() }, session, now));
  }

  /** POST /console/confirm: the signed-in operator decides what the button's token is bound to, once. */
  async function confirm(req: IncomingMessage, res: ServerResponse): Promise<RouteResult> {
    const route = "/console/confirm";
    const g = await guardPost(req, res, route);
    if (!("session" in g)) return g;
    const { session, form } = g;
    if (!permits(session.role, "decide")) {
      logger.warn({ actor: session.actor, role: session.role }, "console refused a confirmation: the role may not decide");
      sendHtml(res, 403, errorPage("Refused", `Refused: '${session.actor}' is a ${session.role} and may not decide. Nothing was changed.`, true));
      return { route, status: 403 };
    }
    if (!deps.redeemer) throw new FormError(404, "This executor does not take button tokens.");
    const token = form.get("token") ?? "";
    const actionId = (form.get("action") ?? "").toLowerCase();
    const decision = form.get("decision");
    if (decision !== "approve" && decision !== "reject") throw new FormError(400, "The form names no decision (approve or reject).");
    if (!/^[0-9a-f-]{36}$/.test(actionId)) throw new FormError(400, "The form names no action.");
    const reason = (form.get("reason") ?? "").trim().slice(0, 2000);
    if (decision === "reject" && reason === "") throw new FormError(400, "A rejection needs a reason.");
    const r = await deps.redeemer.redeem(token, { actionId, decision }, { actor: session.actor, channel: "web", confirmed: true, detail: "confirmed in the console from a notification button", reason });
    logger.info({ action_id: actionId, actor: session.actor, channel: "web", decision, ok: r.ok, ...(r.ok ? {} : { code: r.refusal.code }) }, "console confirmation of a button");
    if (!r.ok) {
      sendHtml(res, r.refusal.status, errorPage("Refused", `Not ${decision === "approve" ? "approved" : "rejected"}: ${r.refusal.message}. Nothing was changed.`, true));
      return { route, status: r.refusal.status };
    }
    session.flash = decisionFlash(r.result, decision === "approve" ? "approved" : "rejected");
    redirect(res, `/console/actions/${encodeURIComponent(actionId)}`);
    return { route, status: 303 };
  }

  async function events(req: IncomingMessage, res: ServerResponse, session: Session): Promise<RouteResult> {
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive", "x-accel-buffering": "no", "x-content-type-options": "nosniff" });
    const alive = (): boolean => {
      if (res.writableEnded || res.destroyed) return false;
      if (sessions.get(session.id)) return true;
      res.write("event: logout\ndata: {}\n\n");
      res.end();
      return false;
    };
    const unsubscribe = feed.subscribe(() => {
      if (alive()) res.write("event: change\ndata: {}\n\n");
    });
    const ka = setInterval(() => {
      if (alive()) res.write(": keep-alive\n\n");
    }, keepAliveMs);
    ka.unref();
    const done = () => {
      clearInterval(ka);
      unsubscribe();
    };
    req.on("close", done);
    res.on("close", done);
    // The stream says it is live only once the feed has its first fingerprint: a change made after the console
    // sees this line is never folded into that first fingerprint and lost.
    await feed.primed();
    if (!res.writableEnded && !res.destroyed) res.write("retry: 2000\n\n");
    return { route: "/console/events", status: 200 };
  }

  async function page(req: IncomingMessage, res: ServerResponse, session: Session, path: string): Promise<RouteResult> {
    const now = clock();
    const partial = req.headers["x-console-partial"] === "1";
    const show = (p: Page | null, title: string, body: Html, route: string, status = 200): RouteResult => {
      sendHtml(res, status, partial ? body : layout({ title, session, page: p, planner: !!planner, body }));
      return { route, status };
    };
    if (path === "/console") {
      const [snapshot, drift, pending, recent] = await Promise.all([world.snapshot(), world.drift(), store.list({ state: "pending", limit: 100 }), store.list({ limit: 30 })]);
      return show("overview", "Fleet", overviewBody({ snapshot, drift, pending, recent: recent.filter((a) => a.state !== "pending").slice(0, 20) }, session, now), "/console");
    }
    if (path === "/console/actions") {
      const [pending, recent] = await Promise.all([store.list({ state: "pending", limit: 200 }), store.list({ limit: 100 })]);
      return show("actions", "Actions", actionsBody({ pending, recent: recent.filter((a) => a.state !== "pending") }, session, now), "/console/actions");
    }
    if (path === "/console/alerts") {
      const read: AlertsRead = deps.alerts ? await deps.alerts() : { ok: false, message: "This executor does not read alerts." };
      return show("alerts", "Alerts", alertsBody(read, now), "/console/alerts");
    }
    if (path === "/console/drills") {
      const read = deps.drills ? { ok: true as const, drills: await deps.drills.listDrills(DRILLS_SHOWN) } : { ok: false as const, message: "This executor does not read drills." };
      return show("drills", "Drills", drillsBody(read, now), "/console/drills");
    }
    if (path === "/console/tasks") {
      if (!planner) return show("tasks", "Tasks", errorBody("The planner is not configured on this executor (set PLANNER_URL)."), "/console/tasks", 404);
      const [tasks, cost] = await Promise.all([planner.tasks(), planner.cost()]);
      return show("tasks", "Tasks and cost", tasksBody({ plannerUrl: planner.baseUrl, tasks, cost }, session, now), "/console/tasks");
    }
    const m = ACTION_PATH.exec(path);
    if (m?.[1]) {
      const id = decode(m[1]);
      const found = id === undefined ? undefined : await store.get(id);
      if (!found) return show("actions", "Not found", errorBody("No such action."), "/console/actions/:id", 404);
      return show("actions", `${found.action.kind} ${found.action.node}/${found.action.service}`, actionBody(found, session, now), "/console/actions/:id");
    }
    return show(null, "Not found", errorBody(`No page ${path}.`), "/console/(unknown)", 404);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<RouteResult> {
    const method = req.method ?? "GET";
    if (path === "/console/static/console.js" || path === "/console/static/console.css") {
      const js = path.endsWith(".js");
      const body = js ? CONSOLE_JS : CONSOLE_CSS;
      res.writeHead(200, { "content-type": js ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8", "content-length": Buffer.byteLength(body), "cache-control": "no-cache", "x-content-type-options": "nosniff" });
      res.end(body);
      return { route: "/console/static", status: 200 };
    }
    if (path === "/console/login") {
      if (method === "POST") return login(req, res);
      if (sessionOf(req)) {
        redirect(res, "/console");
        return { route: path, status: 303 };
      }
      const next = new URL(req.url ?? "/", "http://x").searchParams.get("next") ?? "";
      sendHtml(res, 200, loginPage({ next: SAFE_NEXT.test(next) ? next : undefined }));
      return { route: path, status: 200 };
    }
    if (method === "POST") {
      if (path === "/console/logout") {
        const g = await guardPost(req, res, path);
        if (!("session" in g)) return g;
        sessions.destroy(g.session.id);
        redirect(res, "/console/login", { "set-cookie": clearedCookie(secure(req)) });
        return { route: path, status: 303 };
      }
      if (path === "/console/confirm") return confirm(req, res);
      const d = DECIDE_PATH.exec(path);
      if (d?.[1] && (d[2] === "approve" || d[2] === "reject")) return decide(req, res, d[1], d[2]);
      sendHtml(res, 404, errorPage("Not found", `No form posts to ${path}.`, false));
      return { route: "/console/(unknown)", status: 404 };
    }
    if (method !== "GET" && method !== "HEAD") {
      sendHtml(res, 405, errorPage("Not allowed", `${method} is not used by the console.`, false), { allow: "GET, POST" });
      return { route: "/console/(unknown)", status: 405 };
    }
    const session = sessionOf(req);
    if (!session) {
      if (path === "/console/events" || req.headers["x-console-partial"] === "1") {
        sendHtml(res, 401, errorPage("Signed out", "Sign in first.", false));
        return { route: path === "/console/events" ? path : "/console", status: 401 };
      }
      // A button's confirmation comes back to itself after sign-in.
      const back = path === "/console/confirm" ? `/console/confirm?token=${encodeURIComponent(new URL(req.url ?? "/", "http://x").searchParams.get("token") ?? "")}` : "";
      redirect(res, SAFE_NEXT.test(back) ? `/console/login?next=${encodeURIComponent(back)}` : "/console/login");
      return { route: path === "/console/confirm" ? path : "/console", status: 303 };
    }
    if (path === "/console/events") {
      if (method !== "GET") {
        sendHtml(res, 405, errorPage("Not allowed", "The event stream is GET only.", true), { allow: "GET" });
        return { route: path, status: 405 };
      }
      return events(req, res, session);
    }
    if (path === "/console/confirm") return confirmPage(req, res, session, new URL(req.url ?? "/", "http://x").searchParams.get("token") ?? "");
    return page(req, res, session, path);
  }

  return {
    /** Serves one /console request; never throws (errors become an HTML page). */
    async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<RouteResult> {
      try {
        return await handle(req, res, path);
      } catch (err) {
        const status = err instanceof FormError ? err.status : 500;
        if (!(err instanceof FormError)) logger.error({ err: (err as Error).message, path }, "console request failed");
        if (!res.headersSent) sendHtml(res, status, errorPage("Error", err instanceof FormError ? err.message : "Internal error.", false), status === 413 ? { connection: "close" } : {});
        else res.end();
        return { route: "/console", status };
      }
    },
    sessions,
    feed,
  };
}

export type Console = ReturnType<typeof createConsole>;

const errorBody = (message: string): Html => html`<p class="banner" role="alert">${message}</p>`;
