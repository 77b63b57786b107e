import type { CredentialRole } from "@steward/contracts/executor-api";
import { bearerToken, type Credential } from "@steward/platform/credentials";

// The lookup (bearer token -> credential) is the platform's, shared with the planner; these are the executor's names for it.
export { bearerToken, type Credential };

/** What a request to the executor's HTTP API may need; each route needs exactly one. */
export type Permission = "read" | "decide" | "manage_credentials" | "mint_button_tokens" | "relay_decision";

/**
 * Who may do what. People's roles nest (viewer < approver < admin); the alerter (internet-facing: Telegram, ntfy) gets
 * only the two routes it calls, so its token leaking approves nothing by itself.
 */
export const GRANTS: Readonly<Record<CredentialRole, readonly Permission[]>> = {
  viewer: ["read"],
  approver: ["read", "decide"],
  admin: ["read", "decide", "manage_credentials"],
  alerter: ["mint_button_tokens", "relay_decision"],
};

export function permits(role: CredentialRole, need: Permission): boolean {
  return GRANTS[role].includes(need);
}

/**
 * The permission a bearer route of the executor needs, from its method and path segments (after `/api` or
 * `/approvals`); undefined for a route that does not exist (answered 404 by the router, after authentication).
 * GETs read; every POST under /api changes something an operator decides.
 */
export function routePermission(method: string, prefix: "api" | "approvals", seg: readonly string[]): Permission | undefined {
  if (prefix === "approvals") {
    if (seg.length !== 1) return undefined;
    return seg[0] === "tokens" ? "mint_button_tokens" : seg[0] === "channel" ? "relay_decision" : undefined;
  }
  if (seg[0] === "credentials") return "manage_credentials";
  return method === "GET" || method === "HEAD" ? "read" : "decide";
}

export type AccessDecision = { ok: true } | { ok: false; status: 401 | 403; code: "unauthorized" | "forbidden"; message: string };

/** Pure: no credential is 401, a credential whose role lacks the permission 403 (naming both, never the token). */
export function decideAccess(cred: Credential | undefined, need: Permission): AccessDecision {
  if (!cred) return { ok: false, status: 401, code: "unauthorized", message: "missing, wrong or revoked bearer token" };
  if (!permits(cred.role, need)) return { ok: false, status: 403, code: "forbidden", message: `credential '${cred.name}' (role ${cred.role}) may not ${need.replace(/_/g, " ")}; nothing was changed` };
  return { ok: true };
}
