import { NodeCommandOp, SignedNodeCommand, checkNodeCommand, type CommandTimeBounds, type NodeCommandBody, type NodeCommandReply } from "@steward/contracts/node-command";
import type { CommandVerifyKey } from "@steward/contracts/command-keys";
import type { DriverTable } from "./driver.js";

/**
 * Node command ops as the contract defines them, split by target: `pull` acts on the node's deploy checkout
 * (service `@repo`), every other op on one service through the driver of its kind.
 */
export const CheckoutOp = NodeCommandOp.extract(["pull"]);
export type CheckoutOp = (typeof CheckoutOp.options)[number];
export const ServiceOp = NodeCommandOp.exclude(CheckoutOp.options);
export type ServiceOp = (typeof ServiceOp.options)[number];

/** Where verified commands go. */
export interface CommandTargets {
  /** The deploy checkout (the repo watcher). */
  checkout: { [op in CheckoutOp]: (cmd: NodeCommandBody) => Promise<NodeCommandReply> };
  /** Services, by the driver of their kind. */
  services: Pick<DriverTable, "execute">;
}

/** Routes a verified command to its target. Never throws: a failure is a reply. */
export function dispatchCommand(cmd: NodeCommandBody, to: CommandTargets): Promise<NodeCommandReply> {
  const service = ServiceOp.safeParse(cmd.op);
  return service.success ? to.services.execute({ ...cmd, op: service.data }) : to.checkout[CheckoutOp.parse(cmd.op)](cmd);
}

/**
 * Command ids already accepted, each kept until its command expires: a replay inside the command's lifetime is
 * refused, and after it the expiry check refuses it anyway (the agent bounds every lifetime, so entries are short-lived).
 * Bounded: when full of live ids it refuses a new one rather than forget one (forgetting would let that one replay).
 * The agent persists it (see seen-command-file.ts) so a restart does not forget either.
 */
export class SeenCommands {
  private readonly byId = new Map<string, number>();

  constructor(readonly max = 10_000) {}

  get size(): number {
    return this.byId.size;
  }

  has(id: string, nowMs: number): boolean {
    const exp = this.byId.get(id);
    return exp !== undefined && exp > nowMs;
  }

  /** false: full of live ids, the id was not added (the caller refuses the command). */
  add(id: string, expiresAtMs: number, nowMs: number): boolean {
    this.prune(nowMs);
    if (this.byId.size >= this.max && !this.byId.has(id)) return false;
    this.byId.set(id, expiresAtMs);
    return true;
  }

  /** The live entries, for persisting. */
  entries(nowMs: number): [string, number][] {
    this.prune(nowMs);
    return [...this.byId];
  }

  private prune(nowMs: number): void {
    for (const [k, e] of this.byId) if (e <= nowMs) this.byId.delete(k);
  }
}

export type CommandVerdict = { ok: true; cmd: NodeCommandBody } | { ok: false; reply: Extract<NodeCommandReply, { ok: false }>; op: string };

/** Decodes and checks a command request. Pure apart from reading `seen`; never throws. */
export function verifyCommand(data: Uint8Array, opts: { node: string; keys: readonly CommandVerifyKey[]; now: Date; seen: Pick<SeenCommands, "has">; bounds?: Partial<CommandTimeBounds> }): CommandVerdict {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return { ok: false, op: "unknown", reply: { ok: false, id: null, code: "invalid", message: "request is not JSON" } };
  }
  const body = (raw as { body?: { id?: unknown; op?: unknown } } | null)?.body;
  const rawId = typeof body?.id === "string" ? body.id.slice(0, 128) : null;
  // The op label of the refusal metric: a known op even when the rest is malformed, else "unknown" (bounded label values).
  const knownOp = NodeCommandOp.safeParse(body?.op);
  const rawOp = knownOp.success ? knownOp.data : "unknown";
  const parsed = SignedNodeCommand.safeParse(raw);
  if (!parsed.success) {
    const message = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
      .join("; ");
    return { ok: false, op: rawOp, reply: { ok: false, id: rawId, code: "invalid", message: `not a signed node command: ${message}` } };
  }
  const cmd = parsed.data;
  const nowMs = opts.now.getTime();
  const check = checkNodeCommand(cmd, { node: opts.node, keys: opts.keys, now: opts.now, seen: (id) => opts.seen.has(id, nowMs), ...(opts.bounds ? { bounds: opts.bounds } : {}) });
  if (!check.ok) return { ok: false, op: cmd.body.op, reply: { ok: false, id: cmd.body.id, code: check.code, message: check.message } };
  return { ok: true, cmd: cmd.body };
}
