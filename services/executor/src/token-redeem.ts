import type { Action } from "@steward/contracts/action";
import type { ActionsRepository, MoveResult } from "@steward/actions/repository";
import { checkClaims, executionHash, verifyToken, type ApprovalTokens, type ClaimRefusal, type Decision, type TokenClaims } from "./approval-tokens.js";

/** Why a button token was refused: the HTTP status, a stable code and the sentence the operator reads. */
export interface TokenRefusal {
  status: number;
  code: string;
  message: string;
}

export type InspectResult = { ok: true; claims: TokenClaims; action: Action } | { ok: false; refusal: TokenRefusal; actionId?: string | undefined };

export type RedeemResult = { ok: true; claims: TokenClaims; result: MoveResult } | { ok: false; refusal: TokenRefusal; audited: boolean };

/** Who redeems, through which channel; `confirmed`: a signed-in operator confirmed it in the console. */
export interface Redeemer {
  actor: string;
  channel: "ntfy" | "telegram" | "web";
  confirmed: boolean;
  /** The audit row's detail for the decision (e.g. who pressed the Telegram button). */
  detail?: string | undefined;
  /** A rejection's reason. */
  reason?: string | undefined;
}

const CLAIM_REFUSAL: Record<ClaimRefusal, { status: number; code: string }> = {
  wrong_action: { status: 403, code: "wrong_action" },
  wrong_decision: { status: 403, code: "wrong_decision" },
  expired: { status: 410, code: "expired_token" },
  changed: { status: 409, code: "action_changed" },
};

/**
 * The one place a button token (ntfy, Telegram, a console confirmation) is checked and used. A token decides only
 * the action, the decision and exactly what will run that it was minted for, before its expiry, once; a confirm-only
 * token (minted for an open ntfy topic) decides only when a signed-in operator confirmed it. Every refusal that names
 * an existing action is written to its audit log with the state unchanged.
 */
export interface TokenRedeemer {
  /** Checks a token without using it (what a confirmation page shows). */
  inspect(token: string): Promise<InspectResult>;
  /** Checks the token for `want`, marks it used, then decides; a refusal changes nothing but the audit log. */
  redeem(token: string, want: { actionId: string; decision: Decision }, by: Redeemer): Promise<RedeemResult>;
}

export function createTokenRedeemer(deps: { store: ActionsRepository; tokens: ApprovalTokens; tokenKey: Buffer; clock: () => Date }): TokenRedeemer {
  const { store, tokens } = deps;

  async function check(token: string, want: { actionId?: string; decision?: Decision }): Promise<InspectResult> {
    const v = verifyToken(token, deps.tokenKey);
    if (!v.ok) {
      return v.code === "malformed"
        ? { ok: false, refusal: { status: 400, code: "invalid_token", message: "token is not a Steward approval token" }, actionId: want.actionId }
        : { ok: false, refusal: { status: 403, code: "forged_token", message: "token signature does not verify" }, actionId: want.actionId };
    }
    const actionId = want.actionId ?? v.claims.aid;
    const found = await store.get(actionId);
    if (!found) return { ok: false, refusal: { status: 404, code: "not_found", message: `no action with id '${actionId}'` } };
    const why = checkClaims(v.claims, { actionId, decision: want.decision ?? v.claims.dec, now: deps.clock().getTime(), execHash: executionHash(found.action) });
    if (why) {
      const message = {
        wrong_action: "token is for another action",
        wrong_decision: `token is for ${v.claims.dec}, not ${want.decision ?? v.claims.dec}`,
        expired: `token expired at ${new Date(v.claims.exp).toISOString()}`,
        changed: "what this action would execute changed since the token was issued",
      }[why];
      return { ok: false, refusal: { ...CLAIM_REFUSAL[why], message }, actionId };
    }
    return { ok: true, claims: v.claims, action: found.action };
  }

  return {
    inspect: (token) => check(token, {}),

    async redeem(token, want, by) {
      const refuse = async (r: TokenRefusal): Promise<RedeemResult> => {
        const audited = await store
          .recordRefusal(want.actionId, { actor: by.actor, channel: by.channel, detail: `refused ${want.decision} via ${by.channel}: ${r.code}: ${r.message}` })
          .catch(() => false);
        return { ok: false, refusal: r, audited };
      };
      const c = await check(token, want);
      if (!c.ok) return c.refusal.code === "not_found" ? { ok: false, refusal: c.refusal, audited: false } : refuse(c.refusal);
      if (c.claims.cf && !by.confirmed) {
        return refuse({ status: 403, code: "confirmation_required", message: "this button only opens a confirmation in the console; sign in there to decide" });
      }
      const used = await tokens.consume(c.claims);
      if (!used.ok) {
        return refuse(used.code === "used" ? { status: 409, code: "token_used", message: `token was already used at ${used.usedAt}` } : { status: 403, code: "unknown_token", message: "token was not issued by this Steward" });
      }
      const r =
        want.decision === "approve"
          ? await store.approve(want.actionId, by.actor, by.channel, by.detail)
          : await store.reject(want.actionId, by.actor, by.channel, by.reason ?? `rejected with a ${by.channel} button`);
      await tokens.recordOutcome(c.claims.tid, r.ok ? r.action.state : r.code === "invalid_transition" ? `refused: action was ${r.state}` : r.code).catch(() => undefined);
      if (!r.ok && r.code === "invalid_transition") return refuse({ status: 409, code: "invalid_transition", message: `action is ${r.state}, not pending` });
      return { ok: true, claims: c.claims, result: r };
    },
  };
}
