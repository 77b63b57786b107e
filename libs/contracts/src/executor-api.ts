import { z } from "zod";
import { Action, AuditEntry } from "./action.js";
import { hasUnstorableChars, UNSTORABLE_MESSAGE } from "./limits.js";
import { DrillResult } from "./drill.js";

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

// Restart drills (drill.ts): propose, list, show. Approving and rejecting a drill is the actions API's.

const SpecName = z.string().regex(/^[a-z0-9]([a-z0-9_-]{0,62})$/, "must be a service or node name from the fleet spec");

/** `POST /api/drills`: one service (on every node that declares it, or `node`), or `all` of them. */
export const DrillRequest = z
  .strictObject({
    service: SpecName.optional(),
    all: z.boolean().optional(),
    node: SpecName.optional(),
    approve_restart: z.boolean().optional(),
    actor: z.string().trim().min(1, "must not be blank").max(128, "must be at most 128 characters").refine(storable, UNSTORABLE_MESSAGE).optional(),
    channel: ApiChannel.optional(),
  })
  .refine((r) => (r.service !== undefined) !== (r.all === true), { message: "name one service or set all (not both)", path: ["service"] });
export type DrillRequest = z.input<typeof DrillRequest>;

/** A target the drill would not touch, and why (nothing was changed for it). */
export const DrillRefusal = z.strictObject({ node: z.string(), service: z.string(), reason: z.string() });
export type DrillRefusal = z.infer<typeof DrillRefusal>;

/** `POST /api/drills`: the pending drill actions (approve them like any action) and the refused targets. */
export const DrillProposeReply = z.object({ proposed: z.array(Action), refused: z.array(DrillRefusal) });
export type DrillProposeReply = z.infer<typeof DrillProposeReply>;

/** `GET /api/drills`: drill actions, newest first, each with its result once it has one. */
export const DrillListReply = z.object({ drills: z.array(z.object({ action: Action, result: DrillResult.nullable() })) });
export type DrillListReply = z.infer<typeof DrillListReply>;

/** `GET /api/drills/:id`: the drill, its audit, its result, and the restart it caused with that restart's audit. */
export const DrillDetailReply = z.object({
  action: Action,
  audit: z.array(AuditEntry),
  result: DrillResult.nullable(),
  restart: z.object({ action: Action, audit: z.array(AuditEntry) }).nullable(),
});
export type DrillDetailReply = z.infer<typeof DrillDetailReply>;
