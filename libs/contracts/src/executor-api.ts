import { z } from "zod";
import { Action, AuditEntry } from "./action.js";
import { hasUnstorableChars, UNSTORABLE_MESSAGE } from "./limits.js";

/**
 * The executor's HTTP API: request bodies (validated by the server) and answers (checked by the typed client,
 * `@steward/executor/client`). `GET /api/world` answers a world-state `Snapshot`, `GET /api/drift` a `DriftReport`.
 */

/** Most actions `GET /api/actions` lists at once. */
export const MAX_ACTION_LIST_LIMIT = 500;

/** Channels a caller of `/api` may name (bots use `/approvals/channel`, the console its own routes). */
export const ApiChannel = z.enum(["cli", "api", "web"]);
export type ApiChannel = z.infer<typeof ApiChannel>;

// Whatever passes here must be storable: PostgreSQL refuses NUL, and an unpaired surrogate would be stored altered.
const storable = (s: string) => !hasUnstorableChars(s);
const Actor = z.string().trim().min(1, "must not be blank").max(128, "must be at most 128 characters").refine(storable, UNSTORABLE_MESSAGE);

/** `POST /api/actions/:id/approve` */
export const ApproveRequest = z.object({ actor: Actor.optional(), channel: ApiChannel.optional() });
export type ApproveRequest = z.input<typeof ApproveRequest>;

/** `POST /api/actions/:id/reject` */
export const RejectRequest = ApproveRequest.extend({
  reason: z.string({ error: "is required" }).trim().min(1, "is required and must not be blank").max(2000, "must be at most 2000 characters").refine(storable, UNSTORABLE_MESSAGE),
});
export type RejectRequest = z.input<typeof RejectRequest>;

/** `GET /api/actions` */
export const ActionListReply = z.object({ actions: z.array(Action) });
export type ActionListReply = z.infer<typeof ActionListReply>;

/** `GET /api/actions/:id` */
export const ActionDetailReply = z.object({ action: Action, audit: z.array(AuditEntry) });
export type ActionDetailReply = z.infer<typeof ActionDetailReply>;

/** `POST /api/actions/:id/approve|reject` */
export const DecisionReply = z.object({ action: Action });
export type DecisionReply = z.infer<typeof DecisionReply>;

/** `POST /approvals/:id/approve|reject` (an ntfy button): the signed single-use token is the authority. */
export const ApprovalTokenRequest = z.object({ token: z.string({ error: "is required" }).min(1, "is required").max(2048, "must be at most 2048 characters") });
export type ApprovalTokenRequest = z.input<typeof ApprovalTokenRequest>;

/** `POST /approvals/tokens` (bearer): mint an approve and a reject token for a pending action. */
export const MintTokensRequest = z.object({ action_id: z.string({ error: "is required" }), ttl_s: z.number().int().positive().max(7 * 86_400).optional() });
export type MintTokensRequest = z.input<typeof MintTokensRequest>;

const TokenLink = z.object({ token: z.string(), path: z.string() });
export const MintedTokens = z.object({ action_id: z.string(), expires_at: z.string(), exec_hash: z.string(), approve: TokenLink, reject: TokenLink });
export type MintedTokens = z.infer<typeof MintedTokens>;

/** `POST /approvals/channel` (bearer): a decision relayed by a bot that checked its own allow-list, or a refusal to audit. */
export const ChannelDecisionRequest = z.object({
  action_id: z.string({ error: "is required" }),
  decision: z.enum(["approve", "reject", "refuse"]),
  channel: z.enum(["telegram", "ntfy"]),
  actor: Actor,
  detail: z.string().trim().max(2000, "must be at most 2000 characters").refine(storable, UNSTORABLE_MESSAGE).optional(),
});
export type ChannelDecisionRequest = z.input<typeof ChannelDecisionRequest>;

/** A decision answers the action; an audited refusal answers `{audited: true}`. */
export const ChannelDecisionReply = z.union([z.object({ action: Action, message: z.string() }), z.object({ audited: z.literal(true) })]);
export type ChannelDecisionReply = z.infer<typeof ChannelDecisionReply>;
