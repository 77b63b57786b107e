import { createHmac, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { ActionKind } from "./action.js";

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
  /** hex HMAC-SHA256 over the canonical JSON of `body`, keyed with the fleet key. */
  sig: z.string().regex(/^[0-9a-f]{64}$/, "signature must be 64 hex characters"),
});
export type SignedNodeCommand = z.infer<typeof SignedNodeCommand>;

export const NodeCommandRejection = z.enum(["invalid", "bad_signature", "wrong_node", "expired", "replayed", "unknown_service", "failed"]);
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

export function signNodeCommand(body: NodeCommandBody, fleetKey: string): SignedNodeCommand {
  return { body, sig: hmacHex(fleetKey, canonicalJson(body)) };
}

export function verifySignature(cmd: SignedNodeCommand, fleetKey: string): boolean {
  const want = Buffer.from(hmacHex(fleetKey, canonicalJson(cmd.body)), "hex");
  const got = Buffer.from(cmd.sig, "hex");
  return got.length === want.length && timingSafeEqual(got, want);
}

export type NodeCommandCheck = { ok: true } | { ok: false; code: Exclude<NodeCommandRejection, "unknown_service" | "failed" | "invalid">; message: string };

/**
 * Pure check of a parsed command against this node, the key, the clock and the ids seen.
 * Order matters: an unsigned command learns nothing about node names or the clock.
 */
export function checkNodeCommand(cmd: SignedNodeCommand, opts: { node: string; fleetKey: string; now: Date; seen: (id: string) => boolean; maxSkewMs?: number }): NodeCommandCheck {
  if (!verifySignature(cmd, opts.fleetKey)) return { ok: false, code: "bad_signature", message: "signature does not match the fleet key" };
  if (cmd.body.node !== opts.node) return { ok: false, code: "wrong_node", message: `command is addressed to node '${cmd.body.node}', this is '${opts.node}'` };
  const now = opts.now.getTime();
  const skew = opts.maxSkewMs ?? 30_000;
  if (Date.parse(cmd.body.expires_at) <= now) return { ok: false, code: "expired", message: `command expired at ${cmd.body.expires_at}` };
  if (Date.parse(cmd.body.issued_at) > now + skew) return { ok: false, code: "expired", message: `command issued in the future (${cmd.body.issued_at})` };
  if (opts.seen(cmd.body.id)) return { ok: false, code: "replayed", message: `command ${cmd.body.id} was already received` };
  return { ok: true };
}
