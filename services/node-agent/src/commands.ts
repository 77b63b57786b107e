import { SignedNodeCommand, checkNodeCommand, type NodeCommandBody, type NodeCommandReply } from "@steward/contracts/node-command";

/**
 * Command ids already accepted, each kept until its command expires: a replay inside the command's
 * lifetime is refused, and after it the expiry check refuses it anyway. Bounded, so a flood cannot
 * grow memory without limit; if ever full, the entry closest to expiry goes first.
 */
export class SeenCommands {
  private readonly byId = new Map<string, number>();

  constructor(private readonly max = 10_000) {}

  get size(): number {
    return this.byId.size;
  }

  has(id: string, nowMs: number): boolean {
    const exp = this.byId.get(id);
    return exp !== undefined && exp > nowMs;
  }

  add(id: string, expiresAtMs: number, nowMs: number): void {
    this.prune(nowMs);
    if (this.byId.size >= this.max) {
      let soonest: string | undefined;
      let soonestExp = Infinity;
      for (const [k, e] of this.byId) if (e < soonestExp) [soonest, soonestExp] = [k, e];
      if (soonest !== undefined) this.byId.delete(soonest);
    }
    this.byId.set(id, expiresAtMs);
  }

  private prune(nowMs: number): void {
    for (const [k, e] of this.byId) if (e <= nowMs) this.byId.delete(k);
  }
}

export type CommandVerdict = { ok: true; cmd: NodeCommandBody } | { ok: false; reply: Extract<NodeCommandReply, { ok: false }>; op: string };

/** Decodes and checks a command request. Pure apart from reading `seen`; never throws. */
export function verifyCommand(data: Uint8Array, opts: { node: string; fleetKey: string; now: Date; seen: SeenCommands }): CommandVerdict {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return { ok: false, op: "unknown", reply: { ok: false, id: null, code: "invalid", message: "request is not JSON" } };
  }
  const body = (raw as { body?: { id?: unknown; op?: unknown } } | null)?.body;
  const rawId = typeof body?.id === "string" ? body.id.slice(0, 128) : null;
  const rawOp = typeof body?.op === "string" && ["start", "stop", "restart"].includes(body.op) ? body.op : "unknown";
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
  const check = checkNodeCommand(cmd, { node: opts.node, fleetKey: opts.fleetKey, now: opts.now, seen: (id) => opts.seen.has(id, nowMs) });
  if (!check.ok) return { ok: false, op: cmd.body.op, reply: { ok: false, id: cmd.body.id, code: check.code, message: check.message } };
  return { ok: true, cmd: cmd.body };
}
