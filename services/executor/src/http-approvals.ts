import type { IncomingMessage, ServerResponse } from "node:http";
import type { z } from "zod";
import { ApprovalTokenRequest, ChannelDecisionRequest, MintTokensRequest, type MintedTokens } from "@steward/contracts/executor-api";
import { Counter, type Registry } from "@steward/platform/metrics";
import type { Logger } from "@steward/platform/logger";
import { checkClaims, executionHash, verifyToken, type ApprovalTokens, type ClaimRefusal, type Decision } from "./approval-tokens.js";
import { authorize } from "./http-api.js";
import { routePermission, type Credential } from "./access.js";
import type { CredentialsRepository } from "./credentials.js";
import type { FailureLimiter } from "./rate-limit.js";
import { isUuid, type ActionsRepository, type MoveResult } from "@steward/actions/repository";

/**
 * Approvals from outside the console:
 * - `POST /approvals/:action_id/:approve|reject` with `{"token": "st1…"}`: no bearer, the signed single-use token is
 *   the authority (what an ntfy http button calls). Channel `ntfy`.
 * - `POST /approvals/tokens` (bearer, role alerter): mint an approve and a reject token for a pending action.
 * - `POST /approvals/channel` (bearer, role alerter): a decision relayed by a bot that checked its own allow-list
 *   (Telegram), or a refusal it wants audited. The audit actor is the relaying credential's name; the person the
 *   body names (who pressed the button, as the bot saw it) goes to the audit row's detail.
 * Every refusal that names an existing action is written to the action's audit log with the state unchanged.
 */
export interface ApprovalRoutesDeps {
  store: ActionsRepository;
  tokens: ApprovalTokens;
  tokenKey: Buffer;
  credentials: Pick<CredentialsRepository, "resolve">;
  limiter?: FailureLimiter | undefined;
  logger: Logger;
  registry: Registry;
  /** Lifetime of minted tokens (capped by the action's own expiry). */
  tokenTtlMs?: number;
  clock?: () => Date;
}

export type ApprovalRoutes = (req: IncomingMessage, res: ServerResponse, path: string, method: string) => Promise<{ route: string; status: number }>;

const MAX_BODY = 8 * 1024;
const DEFAULT_TTL_MS = 24 * 3_600_000;

class Refusal extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly field?: string) {
    super(message);
  }
}


const REFUSAL: Record<ClaimRefusal | "malformed" | "bad_signature" | "unknown_token", { status: number; code: string }> = {
  malformed: { status: 400, code: "invalid_token" },
  bad_signature: { status: 403, code: "forged_token" },
  wrong_action: { status: 403, code: "wrong_action" },
  wrong_decision: { status: 403, code: "wrong_decision" },
  expired: { status: 410, code: "expired_token" },
  changed: { status: 409, code: "action_changed" },
  unknown_token: { status: 403, code: "unknown_token" },
};

function send(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  // A 413 leaves the body unread: close the connection, so no client reuses a socket the server drops.
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(json), "cache-control": "no-store", ...(status === 413 ? { connection: "close" } : {}) });
  res.end(json);
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  if (Number(req.headers["content-length"] ?? 0) > MAX_BODY) throw new Refusal(413, "too_large", `request body is larger than ${MAX_BODY} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new Refusal(413, "too_large", `request body is larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString("utf8").trim();
  if (text === "") return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Refusal(400, "invalid_json", "request body is not valid JSON");
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Refusal(400, "invalid_json", "request body must be a JSON object");
  return v as Record<string, unknown>;
}

function parse<S extends z.ZodType>(schema: S, v: unknown): z.output<S> {
  const r = schema.safeParse(v);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue?.path.join(".") || "(body)";
  throw new Refusal(422, "invalid", `${field}: ${issue?.message ?? "invalid"}`, field);
}

export function createApprovalRoutes(deps: ApprovalRoutesDeps): ApprovalRoutes {
  const { store, tokens, logger } = deps;
  const clock = deps.clock ?? (() => new Date());
  const ttlMs = deps.tokenTtlMs ?? DEFAULT_TTL_MS;
  const total = new Counter({
    name: "steward_executor_approvals_total",
    help: "Decisions arriving outside the API, by channel and result (approved, rejected, or the refusal code)",
    labelNames: ["channel", "result"],
    registers: [deps.registry],
  });

  /** An audit row that records a refused attempt; the action's state is unchanged. */
  const auditRefusal = (actionId: string, actor: string, channel: "ntfy" | "telegram", detail: string): Promise<boolean> => store.recordRefusal(actionId, { actor, channel, detail });

  async function refuse(actionId: string, actor: string, channel: "ntfy" | "telegram", r: Refusal, decision: string): Promise<never> {
    const audited = await auditRefusal(actionId, actor, channel, `refused ${decision} via ${channel}: ${r.code}: ${r.message}`).catch(() => false);
    total.inc({ channel, result: r.code });
    logger.warn({ action_id: actionId, channel, code: r.code, audited }, "approval refused");
    throw r;
  }

  const decided = (r: MoveResult, decision: Decision, channel: "ntfy" | "telegram"): { status: number; body: unknown } => {
    if (r.ok) {
      total.inc({ channel, result: decision === "approve" ? "approved" : "rejected" });
      return { status: 200, body: { action: r.action, message: `action ${r.action.id} ${r.action.state}` } };
    }
    if (r.code === "not_found") return { status: 404, body: { error: { code: "not_found", message: "no such action" } } };
    return { status: 409, body: { error: { code: "invalid_transition", message: `action is ${r.state}, not pending`, state: r.state } } };
  };

  async function byToken(req: IncomingMessage, res: ServerResponse, actionId: string, decision: Decision): Promise<number> {
    const actor = "ntfy-button";
    const body = await readBody(req);
    const { token } = parse(ApprovalTokenRequest, body);
    const v = verifyToken(token, deps.tokenKey);
    if (!v.ok) {
      const m = REFUSAL[v.code];
      return refuse(actionId, actor, "ntfy", new Refusal(m.status, m.code, v.code === "malformed" ? "token is not a Steward approval token" : "token signature does not verify"), decision);
    }
    const found = await store.get(actionId);
    if (!found) throw new Refusal(404, "not_found", `no action with id '${actionId}'`);
    const { action } = found;
    const why = checkClaims(v.claims, { actionId, decision, now: clock().getTime(), execHash: executionHash(action) });
    if (why) {
      const m = REFUSAL[why];
      const message = {
        wrong_action: "token is for another action",
        wrong_decision: `token is for ${v.claims.dec}, not ${decision}`,
        expired: `token expired at ${new Date(v.claims.exp).toISOString()}`,
        changed: "what this action would execute changed since the token was issued",
      }[why];
      return refuse(actionId, actor, "ntfy", new Refusal(m.status, m.code, message), decision);
    }
    const used = await tokens.consume(v.claims);
    if (!used.ok) {
      const r = used.code === "used" ? new Refusal(409, "token_used", `token was already used at ${used.usedAt}`) : new Refusal(403, "unknown_token", "token was not issued by this Steward");
      return refuse(actionId, actor, "ntfy", r, decision);
    }
    const r = decision === "approve" ? await store.approve(actionId, actor, "ntfy") : await store.reject(actionId, actor, "ntfy", "rejected with an ntfy button");
    await tokens.recordOutcome(v.claims.tid, r.ok ? r.action.state : r.code === "invalid_transition" ? `refused: action was ${r.state}` : r.code).catch(() => undefined);
    if (!r.ok && r.code === "invalid_transition") {
      return refuse(actionId, actor, "ntfy", new Refusal(409, "invalid_transition", `action is ${r.state}, not pending`), decision);
    }
    const out = decided(r, decision, "ntfy");
    logger.info({ action_id: actionId, decision, channel: "ntfy", status: out.status }, "decision by approval token");
    send(res, out.status, out.body);
    return out.status;
  }

  async function mint(req: IncomingMessage, res: ServerResponse): Promise<number> {
    const b = parse(MintTokensRequest, await readBody(req));
    const found = await store.get(b.action_id);
    if (!found) throw new Refusal(404, "not_found", `no action with id '${b.action_id}'`);
    if (found.action.state !== "pending") throw new Refusal(409, "invalid_transition", `action is ${found.action.state}, not pending`);
    const t = await tokens.mint(found.action, b.ttl_s ? b.ttl_s * 1000 : ttlMs);
    const minted: MintedTokens = {
      action_id: found.action.id,
      expires_at: t.expiresAt,
      exec_hash: t.execHash,
      approve: { token: t.approve, path: `/approvals/${found.action.id}/approve` },
      reject: { token: t.reject, path: `/approvals/${found.action.id}/reject` },
    };
    send(res, 201, minted);
    return 201;
  }

  async function relay(req: IncomingMessage, res: ServerResponse, cred: Credential): Promise<number> {
    const b = parse(ChannelDecisionRequest, await readBody(req));
    const by = `${b.actor}, as ${cred.name} relays it`;
    if (b.decision === "refuse") {
      const ok = await auditRefusal(b.action_id, cred.name, b.channel, `refused via ${b.channel} (${by}): ${b.detail ?? "not allowed"}`);
      total.inc({ channel: b.channel, result: "refused" });
      if (!ok) throw new Refusal(404, "not_found", `no action with id '${b.action_id}'`);
      send(res, 202, { audited: true });
      return 202;
    }
    const r =
      b.decision === "approve"
        ? await store.approve(b.action_id, cred.name, b.channel, `approved via ${b.channel} by ${by}`)
        : await store.reject(b.action_id, cred.name, b.channel, `${b.detail || `rejected via ${b.channel}`} (${by})`);
    const out = decided(r, b.decision, b.channel);
    if (!r.ok) total.inc({ channel: b.channel, result: r.code });
    send(res, out.status, out.body);
    return out.status;
  }

  return async (req, res, path, method) => {
    const seg = path.split("/").slice(2);
    let route = "/approvals";
    try {
      if (method !== "POST") throw new Refusal(405, "method_not_allowed", "approval routes take POST");
      if (seg.length === 1 && (seg[0] === "tokens" || seg[0] === "channel")) {
        route = `/approvals/${seg[0]}`;
        const cred = await authorize(req, res, deps.credentials, routePermission(method, "approvals", seg) ?? "relay_decision", deps.limiter);
        if (!cred) return { route, status: res.statusCode };
        return { route, status: seg[0] === "tokens" ? await mint(req, res) : await relay(req, res, cred) };
      }
      if (seg.length === 2 && seg[0] && (seg[1] === "approve" || seg[1] === "reject")) {
        route = "/approvals/:id/:decision";
        if (!isUuid(seg[0])) throw new Refusal(404, "not_found", "no such action");
        return { route, status: await byToken(req, res, seg[0].toLowerCase(), seg[1]) };
      }
      throw new Refusal(404, "not_found", `no route ${method} ${path}`);
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      if (!res.headersSent) send(res, err.status, { error: { code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) } });
      return { route, status: err.status };
    }
  };
}
