import type { IncomingMessage, ServerResponse } from "node:http";
import type { z } from "zod";
import { ApprovalTokenRequest, ChannelDecisionRequest, MintTokensRequest, type MintedTokens } from "@steward/contracts/executor-api";
import { Counter, type Registry } from "@steward/platform/metrics";
import type { Logger } from "@steward/platform/logger";
import type { ApprovalTokens, Decision } from "./approval-tokens.js";
import { createTokenRedeemer, type Redeemer, type TokenRedeemer } from "./token-redeem.js";
import { authorize } from "./http-api.js";
import { routePermission, type Credential } from "./access.js";
import type { CredentialsRepository } from "@steward/platform/credentials";
import type { FailureLimiter } from "@steward/platform/rate-limit";
import { isUuid, type ActionsRepository, type MoveResult } from "@steward/actions/repository";

/**
 * Approvals from outside the console:
 * - `POST /approvals/:action_id/:approve|reject` with `{"token": "st1…"}`: no bearer, the signed single-use token is
 *   the authority (what an ntfy http button calls). Channel `ntfy`. A confirm-only token is refused here: it opens
 *   the console's confirmation page instead (console/routes.ts).
 * - `POST /approvals/tokens` (bearer, role alerter): mint an approve and a reject token for a pending action.
 * - `POST /approvals/channel` (bearer, role alerter): a decision relayed by a bot that checked its own allow-list
 *   (Telegram), carrying the button's token, or a refusal it wants audited. The audit actor is the relaying
 *   credential's name; the person the body names (who pressed the button, as the bot saw it) goes to the audit
 *   row's detail. Tokens are checked and used by `token-redeem.ts`, the same for every channel.
 * Every refusal that names an existing action is written to the action's audit log with the state unchanged.
 */
export interface ApprovalRoutesDeps {
  store: ActionsRepository;
  tokens: ApprovalTokens;
  tokenKey: Buffer;
  /** The one redeemer of button tokens (shared with the console's confirmation); made from the deps when absent. */
  redeemer?: TokenRedeemer | undefined;
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
  const redeemer = deps.redeemer ?? createTokenRedeemer({ store, tokens, tokenKey: deps.tokenKey, clock });
  const total = new Counter({
    name: "steward_executor_approvals_total",
    help: "Decisions arriving outside the API, by channel and result (approved, rejected, or the refusal code)",
    labelNames: ["channel", "result"],
    registers: [deps.registry],
  });

  /** An audit row that records a refused attempt; the action's state is unchanged. */
  const auditRefusal = (actionId: string, actor: string, channel: "ntfy" | "telegram", detail: string): Promise<boolean> => store.recordRefusal(actionId, { actor, channel, detail });

  const decided = (r: MoveResult, decision: Decision, channel: "ntfy" | "telegram"): { status: number; body: unknown } => {
    if (r.ok) {
      total.inc({ channel, result: decision === "approve" ? "approved" : "rejected" });
      return { status: 200, body: { action: r.action, message: `action ${r.action.id} ${r.action.state}` } };
    }
    if (r.code === "not_found") return { status: 404, body: { error: { code: "not_found", message: "no such action" } } };
    return { status: 409, body: { error: { code: "invalid_transition", message: `action is ${r.state}, not pending`, state: r.state } } };
  };

  /** Redeems a button token through the one redeemer; a refusal is counted, logged and thrown as the route's answer. */
  async function redeemed(token: string, actionId: string, decision: Decision, by: Redeemer & { channel: "ntfy" | "telegram" }): Promise<{ status: number; body: unknown }> {
    const r = await redeemer.redeem(token, { actionId, decision }, by);
    if (!r.ok) {
      total.inc({ channel: by.channel, result: r.refusal.code });
      logger.warn({ action_id: actionId, channel: by.channel, code: r.refusal.code, audited: r.audited }, "approval refused");
      throw new Refusal(r.refusal.status, r.refusal.code, r.refusal.message);
    }
    const out = decided(r.result, decision, by.channel);
    logger.info({ action_id: actionId, decision, channel: by.channel, status: out.status }, "decision by approval token");
    return out;
  }

  async function byToken(req: IncomingMessage, res: ServerResponse, actionId: string, decision: Decision): Promise<number> {
    const { token } = parse(ApprovalTokenRequest, await readBody(req));
    const out = await redeemed(token, actionId, decision, { actor: "ntfy-button", channel: "ntfy", confirmed: false, reason: "rejected with an ntfy button" });
    send(res, out.status, out.body);
    return out.status;
  }

  async function mint(req: IncomingMessage, res: ServerResponse): Promise<number> {
    const b = parse(MintTokensRequest, await readBody(req));
    const found = await store.get(b.action_id);
    if (!found) throw new Refusal(404, "not_found", `no action with id '${b.action_id}'`);
    if (found.action.state !== "pending") throw new Refusal(409, "invalid_transition", `action is ${found.action.state}, not pending`);
    const t = await tokens.mint(found.action, b.ttl_s ? b.ttl_s * 1000 : ttlMs, { confirm: b.confirm === true });
    const link = (decision: Decision, token: string) => ({ token, path: b.confirm ? `/console/confirm?token=${encodeURIComponent(token)}` : `/approvals/${found.action.id}/${decision}` });
    const minted: MintedTokens = { action_id: found.action.id, expires_at: t.expiresAt, exec_hash: t.execHash, approve: link("approve", t.approve), reject: link("reject", t.reject) };
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
    if (!isUuid(b.action_id)) throw new Refusal(404, "not_found", `no action with id '${b.action_id}'`);
    // The schema requires the token for a decision: the relaying credential alone decides nothing.
    const out = await redeemed(b.token ?? "", b.action_id.toLowerCase(), b.decision, {
      actor: cred.name,
      channel: b.channel,
      confirmed: false,
      detail: `approved via ${b.channel} by ${by}`,
      reason: `${b.detail || `rejected via ${b.channel}`} (${by})`,
    });
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
        const cred = await authorize(req, res, deps.credentials, routePermission(method, "approvals", seg) ?? "relay_decision", deps.limiter, deps.logger);
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
