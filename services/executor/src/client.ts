import type { Action, ActionState } from "@steward/contracts/action";
import { DriftReport } from "@steward/contracts/drift";
import {
  ActionDetailReply,
  ActionListReply,
  ChannelDecisionReply,
  CreatedCredentialReply,
  CredentialListReply,
  DecisionReply,
  HoldListReply,
  HoldReply,
  MintedTokens,
  RevokedCredentialReply,
  type ApiChannel,
  type CreateCredentialRequest,
  type CredentialView,
  type ChannelDecisionRequest,
  type MintTokensRequest,
  type RejectRequest,
  type ReleaseHoldRequest,
} from "@steward/contracts/executor-api";
import type { Hold } from "@steward/contracts/drift";
import { Snapshot } from "@steward/contracts/world-state";
import { DrillDetailReply, DrillListReply, DrillProposeReply, type DrillRequest } from "@steward/contracts/executor-api";
import { ApiBadResponse, ApiError, ApiUnreachable, createJsonHttp, type HttpTransport, type JsonHttpOptions } from "@steward/platform/http-client";

/**
 * The typed client of the executor's HTTP API (`@steward/executor/client`). Imports only contracts and the small
 * HTTP helper, so the CLI loads it in a blink: no NATS, PostgreSQL, pino or OpenTelemetry behind it.
 * Every failure is an ApiError: ApiUnreachable (no answer), ApiBadResponse (off the contract), or the API's own code.
 */
export { ApiBadResponse, ApiError, ApiUnreachable };
export type { MintedTokens, ChannelDecisionReply, ChannelDecisionRequest, CreatedCredentialReply, CredentialView };
export type ActionDetail = ActionDetailReply;
export type { DrillDetailReply, DrillListReply, DrillProposeReply, DrillRequest };

export interface ExecutorClientOptions {
  url: string;
  token: string;
  /** Per request; default 15 s. */
  timeoutMs?: number | undefined;
  /** The transport; the global `fetch` by default (any fetch-like function fits). */
  fetch?: HttpTransport | undefined;
  /** Sees each answer's status and headers before its body is read; what it throws, the call throws. */
  onReply?: JsonHttpOptions["onReply"];
  /** For a process that parses one answer and exits (the CLI): see JsonHttpOptions. */
  jitless?: boolean | undefined;
  /** How the executor is named in messages; default "the Steward API" (what the CLI says). */
  label?: string | undefined;
}

export interface ExecutorClient {
  readonly url: string;
  world(): Promise<Snapshot>;
  drift(): Promise<DriftReport>;
  actions(opts?: { state?: ActionState | undefined; limit?: number | undefined }): Promise<Action[]>;
  action(id: string): Promise<ActionDetail>;
  approve(id: string, by: { actor: string; channel: ApiChannel }): Promise<Action>;
  /** `hold_for` (e.g. "2h") also ends the hold the rejection sets after that long. */
  reject(id: string, by: { actor: string; channel: ApiChannel } & Pick<RejectRequest, "reason" | "hold_for">): Promise<Action>;
  /** The holds in force (a rejected proposal holds its drift). */
  holds(): Promise<Hold[]>;
  /** Ends a hold early (its id is the rejected action's id): 404 when there is none, 409 when it already ended. */
  releaseHold(actionId: string, by: { actor: string; channel: ApiChannel } & Pick<ReleaseHoldRequest, "reason">): Promise<Hold>;
  /** An approve and a reject token for a pending action (what ntfy buttons carry). 409 when it is no longer pending. */
  mintApprovalTokens(actionId: string, opts?: Pick<MintTokensRequest, "ttl_s" | "confirm">): Promise<MintedTokens>;
  /** A decision (or a refusal to audit) relayed by a bot that checked its own allow-list. */
  relayDecision(d: ChannelDecisionRequest): Promise<ChannelDecisionReply>;
  /** Pending restart drills for the named services (409 `drill_refused` when every one was refused, nothing changed). */
  proposeDrill(req: DrillRequest): Promise<DrillProposeReply>;
  /** Drills newest first, with their results. */
  drills(opts?: { limit?: number | undefined }): Promise<DrillListReply["drills"]>;
  drill(id: string): Promise<DrillDetailReply>;
  /** A new named credential (admin only): the answer's token is shown this once. 409 when the name is live or a setting's. */
  createCredential(req: CreateCredentialRequest): Promise<CreatedCredentialReply>;
  /** Every credential (admin only), revoked ones too; never a token. */
  credentials(): Promise<CredentialView[]>;
  /** Revokes a credential at once (admin only): 404 when there is no live one by that name, 409 for a setting's. */
  revokeCredential(name: string): Promise<void>;
}

const enc = encodeURIComponent;

export function createExecutorClient(opts: ExecutorClientOptions): ExecutorClient {
  const http = createJsonHttp({ url: opts.url, token: opts.token, label: opts.label ?? "the Steward API", timeoutMs: opts.timeoutMs, fetch: opts.fetch, onReply: opts.onReply, jitless: opts.jitless });
  return {
    url: opts.url,
    world: async () => (await http.call("GET", "/api/world", Snapshot)).data,
    drift: async () => (await http.call("GET", "/api/drift", DriftReport)).data,
    async actions(o = {}) {
      const q = new URLSearchParams();
      if (o.limit !== undefined) q.set("limit", String(o.limit));
      if (o.state) q.set("state", o.state);
      const query = q.size > 0 ? `?${q.toString()}` : "";
      return (await http.call("GET", `/api/actions${query}`, ActionListReply)).data.actions;
    },
    action: async (id) => (await http.call("GET", `/api/actions/${enc(id)}`, ActionDetailReply)).data,
    approve: async (id, by) => (await http.call("POST", `/api/actions/${enc(id)}/approve`, DecisionReply, { body: { actor: by.actor, channel: by.channel } })).data.action,
    reject: async (id, by) =>
      (await http.call("POST", `/api/actions/${enc(id)}/reject`, DecisionReply, { body: { actor: by.actor, channel: by.channel, reason: by.reason, ...(by.hold_for !== undefined ? { hold_for: by.hold_for } : {}) } })).data.action,
    holds: async () => (await http.call("GET", "/api/holds", HoldListReply)).data.holds,
    releaseHold: async (id, by) =>
      (await http.call("POST", `/api/holds/${enc(id)}/release`, HoldReply, { body: { actor: by.actor, channel: by.channel, ...(by.reason !== undefined ? { reason: by.reason } : {}) } })).data.hold,
    mintApprovalTokens: async (actionId, o = {}) => (await http.call("POST", "/approvals/tokens", MintedTokens, { body: { action_id: actionId, ...(o.ttl_s !== undefined ? { ttl_s: o.ttl_s } : {}), ...(o.confirm ? { confirm: true } : {}) } })).data,
    relayDecision: async (d) => (await http.call("POST", "/approvals/channel", ChannelDecisionReply, { body: d })).data,
    proposeDrill: async (req) => (await http.call("POST", "/api/drills", DrillProposeReply, { body: req })).data,
    drills: async (o = {}) => (await http.call("GET", `/api/drills${o.limit !== undefined ? `?limit=${o.limit}` : ""}`, DrillListReply)).data.drills,
    drill: async (id) => (await http.call("GET", `/api/drills/${enc(id)}`, DrillDetailReply)).data,
    createCredential: async (req) => (await http.call("POST", "/api/credentials", CreatedCredentialReply, { body: req })).data,
    credentials: async () => (await http.call("GET", "/api/credentials", CredentialListReply)).data.credentials,
    async revokeCredential(name) {
      await http.call("DELETE", `/api/credentials/${enc(name)}`, RevokedCredentialReply);
    },
  };
}
