import { z } from "zod";
import { Action, AuditEntry } from "./action.js";
import { Hold } from "./drift.js";
import { hasUnstorableChars, UNSTORABLE_MESSAGE } from "./limits.js";
import { DrillResult } from "./drill.js";
import { NATS_COMPONENTS } from "./nats-permissions.js";

/**
 * The executor's HTTP API: request bodies (validated by the server) and answers (checked by the typed client,
 * `@steward/executor/client`). `GET /api/world` answers a world-state `Snapshot`, `GET /api/drift` a `DriftReport`.
 */

/** Most actions `GET /api/actions` lists at once. */
export const MAX_ACTION_LIST_LIMIT = 500;

/** Channels a caller of `/api` may name (bots use `/approvals/channel`; `web` is the console's own, never a body's). */
export const ApiChannel = z.enum(["cli", "api"]);
export type ApiChannel = z.infer<typeof ApiChannel>;

/**
 * What a named credential of the executor's API may do. People: `viewer` reads, `approver` also decides (approve,
 * reject, release holds, propose drills), `admin` also manages credentials. Components: `alerter` only mints button
 * tokens and relays bot decisions. The planner and the supervisor call no executor route (they propose through the
 * actions repository), so no role is theirs.
 */
export const CredentialRole = z.enum(["viewer", "approver", "admin", "alerter"]);
export type CredentialRole = z.infer<typeof CredentialRole>;
/** The roles a person holds (may sign in to the console); the others are components'. */
export const OPERATOR_ROLES: readonly CredentialRole[] = ["viewer", "approver", "admin"];

/** A credential's name: what the audit log shows as the actor of everything done with it. */
export const CredentialName = z
  .string({ error: "is required" })
  .regex(/^[a-z0-9][a-z0-9_.@-]{0,63}$/, "must be 1-64 lowercase letters, digits, '_', '.', '@' or '-', starting with a letter or digit");

/**
 * Names no named credential may take, so the audit log never shows a person as a component: each is a component's
 * (its NATS user; the planner's component credentials `supervisor`, `alerter`, `console`), or one Steward acts
 * under itself (`admin` is the bootstrap API_TOKEN; `system` and `ntfy-button` are actors the executor writes).
 */
export const RESERVED_CREDENTIAL_NAMES: readonly string[] = [...NATS_COMPONENTS, "node-agent", "console", "admin", "system", "ntfy-button"];

/** `POST /api/credentials` (admin): a new named credential; its token is in the answer, once. */
export const CreateCredentialRequest = z.strictObject({ name: CredentialName, role: CredentialRole });
export type CreateCredentialRequest = z.input<typeof CreateCredentialRequest>;

/** A credential as the API shows it: never its token or hash. `source: setting` ones (admin, alerter) live in the executor's settings. */
export const CredentialView = z.object({
  name: z.string(),
  role: CredentialRole,
  source: z.enum(["setting", "database"]),
  created_at: z.string().nullable(),
  created_by: z.string().nullable(),
  revoked_at: z.string().nullable(),
});
export type CredentialView = z.infer<typeof CredentialView>;

/** `POST /api/credentials`: the only answer that carries the token. */
export const CreatedCredentialReply = z.object({ credential: CredentialView, token: z.string() });
export type CreatedCredentialReply = z.infer<typeof CreatedCredentialReply>;

/** `GET /api/credentials`: the setting ones first, then the table's by name (revoked ones included, with revoked_at). */
export const CredentialListReply = z.object({ credentials: z.array(CredentialView) });
export type CredentialListReply = z.infer<typeof CredentialListReply>;

/** `DELETE /api/credentials/:name` */
export const RevokedCredentialReply = z.object({ revoked: z.string() });
export type RevokedCredentialReply = z.infer<typeof RevokedCredentialReply>;

// Whatever passes here must be storable: PostgreSQL refuses NUL, and an unpaired surrogate would be stored altered.
const storable = (s: string) => !hasUnstorableChars(s);
const Actor = z.string().trim().min(1, "must not be blank").max(128, "must be at most 128 characters").refine(storable, UNSTORABLE_MESSAGE);

/**
 * `POST /api/actions/:id/approve`. `actor` is accepted from older clients and ignored: the audit actor is the name of
 * the credential the request carries, whatever the body says.
 */
export const ApproveRequest = z.object({ actor: Actor.optional(), channel: ApiChannel.optional() });
export type ApproveRequest = z.input<typeof ApproveRequest>;

const HOLD_UNITS_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** The longest hold a rejection can set: past it, the operator sets a new one (or fixes the spec). */
export const MAX_HOLD_MS = 30 * 86_400_000;

/** `90s`, `30m`, `2h`, `1d` in milliseconds; undefined when it is not such a duration. */
export function parseHoldFor(s: string): number | undefined {
  const m = /^([1-9]\d{0,6})(s|m|h|d)$/.exec(s.trim());
  return m ? Number(m[1]) * HOLD_UNITS_MS[m[2] as keyof typeof HOLD_UNITS_MS] : undefined;
}

/** How long a rejection holds its drift at most (`steward reject --for 2h`): a duration like 90s, 30m, 2h or 1d, at most 30d. */
export const HoldFor = z
  .string()
  .refine((s) => parseHoldFor(s) !== undefined, "must be a duration like 90s, 30m, 2h or 1d")
  .transform((s) => parseHoldFor(s) as number)
  .refine((ms) => ms <= MAX_HOLD_MS, "must be at most 30d");

const Reason = z.string({ error: "is required" }).trim().min(1, "is required and must not be blank").max(2000, "must be at most 2000 characters").refine(storable, UNSTORABLE_MESSAGE);

/**
 * `POST /api/actions/:id/reject`. A rejection holds the drift its action was proposed for until the drift changes or
 * clears; `hold_for` also ends the hold after that long (and holds an action not proposed for a drift for that long).
 */
export const RejectRequest = ApproveRequest.extend({ reason: Reason, hold_for: HoldFor.optional() });
export type RejectRequest = z.input<typeof RejectRequest>;

/** `GET /api/holds`: the holds in force, oldest first. */
export const HoldListReply = z.object({ holds: z.array(Hold) });
export type HoldListReply = z.infer<typeof HoldListReply>;

/** `POST /api/holds/:action_id/release`: an operator ends a hold early; the drift is proposed again at the next cycle. */
export const ReleaseHoldRequest = ApproveRequest.extend({ reason: Reason.optional() });
export type ReleaseHoldRequest = z.input<typeof ReleaseHoldRequest>;

/** `POST /api/holds/:action_id/release` */
export const HoldReply = z.object({ hold: Hold });
export type HoldReply = z.infer<typeof HoldReply>;

/** `GET /api/actions` */
export const ActionListReply = z.object({ actions: z.array(Action) });
export type ActionListReply = z.infer<typeof ActionListReply>;

/** `GET /api/actions/:id` */
export const ActionDetailReply = z.object({ action: Action, audit: z.array(AuditEntry) });
export type ActionDetailReply = z.infer<typeof ActionDetailReply>;

/** `POST /api/actions/:id/approve|reject` */
export const DecisionReply = z.object({ action: Action });
export type DecisionReply = z.infer<typeof DecisionReply>;

const ButtonToken = z.string({ error: "is required" }).min(1, "is required").max(2048, "must be at most 2048 characters");

/** `POST /approvals/:id/approve|reject` (an ntfy button): the signed single-use token is the authority. */
export const ApprovalTokenRequest = z.object({ token: ButtonToken });
export type ApprovalTokenRequest = z.input<typeof ApprovalTokenRequest>;

/**
 * `POST /approvals/tokens` (bearer): mint an approve and a reject token for a pending action. `confirm`: confirm-only
 * tokens, for a push into a topic that is not access-controlled: they open a confirmation page in the console
 * (`/console/confirm?token=…`) and decide nothing until a signed-in operator confirms there.
 */
export const MintTokensRequest = z.object({ action_id: z.string({ error: "is required" }), ttl_s: z.number().int().positive().max(7 * 86_400).optional(), confirm: z.boolean().optional() });
export type MintTokensRequest = z.input<typeof MintTokensRequest>;

/** `path`: where the token decides (POST), or for a confirm-only token the console page that confirms it (GET). */
const TokenLink = z.object({ token: z.string(), path: z.string() });
export const MintedTokens = z.object({ action_id: z.string(), expires_at: z.string(), exec_hash: z.string(), approve: TokenLink, reject: TokenLink });
export type MintedTokens = z.infer<typeof MintedTokens>;

/**
 * `POST /approvals/channel` (bearer): a decision relayed by a bot that checked its own allow-list, or a refusal to
 * audit. A decision must carry the button's token (minted by `POST /approvals/tokens` for this action and decision):
 * the relaying credential alone decides nothing.
 */
export const ChannelDecisionRequest = z
  .object({
    action_id: z.string({ error: "is required" }),
    decision: z.enum(["approve", "reject", "refuse"]),
    channel: z.enum(["telegram", "ntfy"]),
    actor: Actor,
    detail: z.string().trim().max(2000, "must be at most 2000 characters").refine(storable, UNSTORABLE_MESSAGE).optional(),
    token: ButtonToken.optional(),
  })
  .refine((r) => r.decision === "refuse" || r.token !== undefined, { message: "is required for approve and reject (the button's token)", path: ["token"] });
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
