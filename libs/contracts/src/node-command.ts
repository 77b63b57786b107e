import { createHmac } from "node:crypto";
import { z } from "zod";
import { ActionKind } from "./action.js";
import { signText, verifyText, type CommandSigningKey, type CommandVerifyKey } from "./command-keys.js";

/** Every action kind, plus `rollback`, which only a failed rollout step asks for. */
export const NodeCommandOp = z.enum([...ActionKind.options, "rollback"]);
export type NodeCommandOp = z.infer<typeof NodeCommandOp>;

export const NodeCommandBody = z.strictObject({
  /** Unique per command; the agent refuses one it has seen (replay). */
  id: z.string().min(8).max(128),
  node: z.string().min(1),
  op: NodeCommandOp,
  service: z.string().min(1),
  action_id: z.string().nullable(),
  /** What the op needs beyond the service, e.g. the revision to deploy. Signed with the rest. */
  params: z.record(z.string(), z.unknown()).optional(),
  issued_at: z.iso.datetime(),
  expires_at: z.iso.datetime(),
});
export type NodeCommandBody = z.infer<typeof NodeCommandBody>;

export const SignedNodeCommand = z.strictObject({
  body: NodeCommandBody,
  /** base64url Ed25519 signature over the canonical JSON of `body`, by the executor's private command key. */
  sig: z.string().regex(/^[A-Za-z0-9_-]{86}$/, "signature must be an Ed25519 signature (86 base64url characters)"),
});
export type SignedNodeCommand = z.infer<typeof SignedNodeCommand>;

/**
 * Why a node-agent refused a command. `issued_before_start`: issued before the agent started (beyond the clock-skew
 * allowance); `lifetime_too_long`: its expiry is further from its issue time than the agent accepts.
 */
export const NodeCommandRejection = z.enum(["invalid", "bad_signature", "wrong_node", "expired", "lifetime_too_long", "issued_before_start", "replayed", "unknown_service", "failed"]);
export type NodeCommandRejection = z.infer<typeof NodeCommandRejection>;

export const NodeCommandReply = z.discriminatedUnion("ok", [
  z.strictObject({
    ok: z.literal(true),
    id: z.string(),
    node: z.string(),
    service: z.string(),
    pid: z.number().int().nullable(),
    detail: z.string(),
    /**
     * Stream sequence up to which the events stream holds every event the node produced before replying (its
     * observation of the service after the command among them). A world folded up to it shows the service as it was
     * after the command, whatever the node said during it; a verdict waits for it. Absent: the node could not
     * confirm its events were stored (NATS trouble) or is older.
     */
    events_seq: z.number().int().nonnegative().optional(),
  }),
  z.strictObject({ ok: z.literal(false), id: z.string().nullable(), code: NodeCommandRejection, message: z.string() }),
]);
export type NodeCommandReply = z.infer<typeof NodeCommandReply>;

/** JSON with sorted keys, so signer and verifier hash the same bytes. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(",")}}`;
}

export function hmacHex(key: string, data: string): string {
  return createHmac("sha256", key).update(data).digest("hex");
}

export function signNodeCommand(body: NodeCommandBody, key: CommandSigningKey): SignedNodeCommand {
  return { body, sig: signText(key, canonicalJson(body)) };
}

/** The trusted key that signed `cmd`, if any. */
export function verifySignature(cmd: SignedNodeCommand, keys: readonly CommandVerifyKey[]): CommandVerifyKey | undefined {
  return verifyText(keys, canonicalJson(cmd.body), cmd.sig);
}

export type NodeCommandCheck = { ok: true } | { ok: false; code: Exclude<NodeCommandRejection, "unknown_service" | "failed" | "invalid">; message: string };

/** How a node-agent bounds commands in time. */
export interface CommandTimeBounds {
  /** When the agent started: a command issued before it (beyond `skewMs`) is refused, a replay across restarts among them. */
  startedAt: Date;
  /** Clock-skew allowance between the executor's clock and the agent's, both for "issued before start" and "issued in the future". */
  skewMs: number;
  /** Longest lifetime (expires_at - issued_at) the agent accepts: with the expiry check, no accepted command is older than this. */
  maxLifetimeMs: number;
}

export const DEFAULT_COMMAND_SKEW_MS = 30_000;
export const DEFAULT_COMMAND_MAX_LIFETIME_MS = 300_000;

/**
 * Pure check of a parsed command against this node, the trusted keys, the clock and the ids seen.
 * Order matters: an unsigned command learns nothing about node names or the clock.
 */
export function checkNodeCommand(
  cmd: SignedNodeCommand,
  opts: { node: string; keys: readonly CommandVerifyKey[]; now: Date; seen: (id: string) => boolean; bounds?: Partial<CommandTimeBounds> },
): NodeCommandCheck {
  if (!verifySignature(cmd, opts.keys)) {
    return { ok: false, code: "bad_signature", message: `signature does not match the executor's command key (trusted key id ${opts.keys.map((k) => k.id).join(", ")})` };
  }
  if (cmd.body.node !== opts.node) return { ok: false, code: "wrong_node", message: `command is addressed to node '${cmd.body.node}', this is '${opts.node}'` };
  const now = opts.now.getTime();
  const skew = opts.bounds?.skewMs ?? DEFAULT_COMMAND_SKEW_MS;
  const maxLifetime = opts.bounds?.maxLifetimeMs ?? DEFAULT_COMMAND_MAX_LIFETIME_MS;
  const issued = Date.parse(cmd.body.issued_at);
  const expires = Date.parse(cmd.body.expires_at);
  if (expires - issued > maxLifetime) {
    return { ok: false, code: "lifetime_too_long", message: `command lives ${expires - issued} ms (issued ${cmd.body.issued_at}, expires ${cmd.body.expires_at}); this agent accepts at most ${maxLifetime} ms` };
  }
  if (expires <= now) return { ok: false, code: "expired", message: `command expired at ${cmd.body.expires_at}` };
  if (issued > now + skew) return { ok: false, code: "expired", message: `command issued in the future (${cmd.body.issued_at})` };
  const startedAt = opts.bounds?.startedAt;
  if (startedAt && issued < startedAt.getTime() - skew) {
    return { ok: false, code: "issued_before_start", message: `command issued at ${cmd.body.issued_at}, before this agent started (${startedAt.toISOString()}, clock-skew allowance ${skew} ms)` };
  }
  if (opts.seen(cmd.body.id)) return { ok: false, code: "replayed", message: `command ${cmd.body.id} was already received` };
  return { ok: true };
}
