import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { canonicalJson } from "@steward/contracts/node-command";
import { deriveFromSigningKey, type CommandSigningKey } from "@steward/contracts/command-keys";
import type { Action } from "@steward/contracts/action";
import type { Sql } from "@steward/platform/db";

/**
 * Approval tokens for buttons outside the console (ntfy, Telegram). A token is `st1.<claims>.<mac>`, base64url both, where
 * the MAC is HMAC-SHA256 over the claims: the action id, the decision, a hash of exactly what will be executed
 * (kind, node, service, params), an expiry and a random id. The random id is recorded in Postgres at mint time and
 * marked used at redemption, so a token works once. The executor never stores or logs the token itself (the alerter
 * keeps a Telegram button's in its own table: callback_data holds at most 64 bytes, so the button carries an opaque
 * id). Redeeming is `token-redeem.ts`'s, whichever channel the token comes through.
 *
 * Key: derived from the executor's private command key (EXECUTOR_SIGNING_KEY) with HKDF and its own label. No node
 * holds that key, so no node can mint a token; the MAC key is never the signing key itself. Rotating the signing key
 * voids open tokens.
 */
export const APPROVAL_KEY_LABEL = "steward/approval-tokens/v1";
const PREFIX = "st1";

export type Decision = "approve" | "reject";

export interface TokenClaims {
  /** token id: random, recorded at mint, marked used at redemption */
  tid: string;
  /** action id */
  aid: string;
  dec: Decision;
  /** sha256 (hex) of what will be executed */
  h: string;
  /** expiry, unix ms */
  exp: number;
  /**
   * Confirm-only: minted for a push into a topic that is not access-controlled (ntfy on an open topic). Such a token
   * decides nothing by itself; it opens a confirmation page in the console, and a signed-in operator decides there.
   */
  cf?: true;
}

export function deriveApprovalKey(signingKey: CommandSigningKey): Buffer {
  return deriveFromSigningKey(signingKey, APPROVAL_KEY_LABEL);
}

/** Hash of exactly what an action will execute; any change to kind, node, service or params voids its tokens. */
export function executionHash(a: Pick<Action, "kind" | "node" | "service" | "params">): string {
  return createHash("sha256")
    .update(canonicalJson({ kind: a.kind, node: a.node, service: a.service, params: a.params ?? {} }))
    .digest("hex");
}

const mac = (key: Buffer, body: string): Buffer => createHmac("sha256", key).update(`${PREFIX}.${body}`).digest();

export function signToken(claims: TokenClaims, key: Buffer): string {
  const body = Buffer.from(JSON.stringify(claims), "utf8").toString("base64url");
  return `${PREFIX}.${body}.${mac(key, body).toString("base64url")}`;
}

export type VerifyResult = { ok: true; claims: TokenClaims } | { ok: false; code: "malformed" | "bad_signature" };

/** Checks the shape and the MAC only (constant-time); what the claims allow is `checkClaims`. */
export function verifyToken(token: string, key: Buffer): VerifyResult {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== PREFIX || !parts[1] || !parts[2] || token.length > 2048) return { ok: false, code: "malformed" };
  const given = Buffer.from(parts[2], "base64url");
  const want = mac(key, parts[1]);
  if (given.length !== want.length || !timingSafeEqual(given, want)) return { ok: false, code: "bad_signature" };
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
  } catch {
    return { ok: false, code: "malformed" };
  }
  const c = raw as Partial<TokenClaims> | null;
  if (
    !c ||
    typeof c.tid !== "string" ||
    typeof c.aid !== "string" ||
    (c.dec !== "approve" && c.dec !== "reject") ||
    typeof c.h !== "string" ||
    typeof c.exp !== "number"
  ) {
    return { ok: false, code: "malformed" };
  }
  if (c.cf !== undefined && c.cf !== true) return { ok: false, code: "malformed" };
  return { ok: true, claims: { tid: c.tid, aid: c.aid, dec: c.dec, h: c.h, exp: c.exp, ...(c.cf ? { cf: true as const } : {}) } };
}

export type ClaimRefusal = "wrong_action" | "wrong_decision" | "expired" | "changed";

/** Pure: may these (valid) claims do `decision` on `action` at `now`? Order matters: the cheapest, clearest answer first. */
export function checkClaims(claims: TokenClaims, want: { actionId: string; decision: Decision; now: number; execHash: string }): ClaimRefusal | undefined {
  if (claims.aid !== want.actionId) return "wrong_action";
  if (claims.dec !== want.decision) return "wrong_decision";
  if (claims.exp <= want.now) return "expired";
  if (claims.h !== want.execHash) return "changed";
  return undefined;
}

export type ConsumeResult = { ok: true } | { ok: false; code: "unknown_token" } | { ok: false; code: "used"; usedAt: string };

export interface ApprovalTokens {
  /** Mints an approve and a reject token for a pending action; records their ids. `confirm`: confirm-only tokens. */
  mint(action: Action, ttlMs: number, opts?: { confirm?: boolean }): Promise<{ approve: string; reject: string; expiresAt: string; execHash: string }>;
  /** Marks a token used, once. */
  consume(claims: TokenClaims): Promise<ConsumeResult>;
  /** Records what the use of a token led to (approved, or the store's refusal). */
  recordOutcome(tid: string, outcome: string): Promise<void>;
}

export function createApprovalTokens(sql: Sql, key: Buffer, clock: () => Date = () => new Date()): ApprovalTokens {
  return {
    async mint(action, ttlMs, opts = {}) {
      // A token never outlives its action.
      const exp = Math.min(clock().getTime() + ttlMs, Date.parse(action.expires_at));
      const h = executionHash(action);
      const out: Record<Decision, string> = { approve: "", reject: "" };
      for (const dec of ["approve", "reject"] as const) {
        const tid = randomBytes(16).toString("base64url");
        await sql`INSERT INTO approval_tokens (id, action_id, decision, exec_hash, expires_at)
                  VALUES (${tid}, ${action.id}, ${dec}, ${h}, ${new Date(exp)})`;
        out[dec] = signToken({ tid, aid: action.id, dec, h, exp, ...(opts.confirm ? { cf: true as const } : {}) }, key);
      }
      return { approve: out.approve, reject: out.reject, expiresAt: new Date(exp).toISOString(), execHash: h };
    },

    async consume(claims) {
      const rows = await sql`UPDATE approval_tokens SET used_at = now()
                             WHERE id = ${claims.tid} AND action_id = ${claims.aid} AND decision = ${claims.dec} AND used_at IS NULL
                             RETURNING id`;
      if (rows.length === 1) return { ok: true };
      const [prior] = await sql<{ used_at: Date | null }[]>`SELECT used_at FROM approval_tokens WHERE id = ${claims.tid} AND action_id = ${claims.aid}`;
      if (prior?.used_at) return { ok: false, code: "used", usedAt: prior.used_at.toISOString() };
      return { ok: false, code: "unknown_token" };
    },

    async recordOutcome(tid, outcome) {
      await sql`UPDATE approval_tokens SET used_outcome = ${outcome.slice(0, 500)} WHERE id = ${tid}`;
    },
  };
}
