import type { Hold } from "@steward/contracts/drift";
import { connectApi } from "../connect-api.js";
import { HOLD, type Io } from "../command-table.js";
import { findSubcommand } from "../command-table.js";
import { parseFlags } from "../parse.js";
import { ago, shortId, table } from "../format.js";
import { decider } from "./actions.js";

/** When a hold ends, in the operator's words. */
export function holdEnds(h: Pick<Hold, "until" | "cause">): string {
  if (h.until === null) return "when the drift changes or clears";
  return h.cause === null ? `at ${h.until}` : `at ${h.until}, or sooner when the drift changes or clears`;
}

export function renderHolds(holds: readonly Hold[], now = Date.now()): string {
  if (holds.length === 0) return "no holds: every drift is proposed as usual";
  return table(
    ["ID", "HELD", "ON", "CAUSE", "BY", "SINCE", "ENDS", "REASON"],
    holds.map((h) => [shortId(h.action_id), h.kind, `${h.nodes.join(",")}/${h.service}`, h.cause ?? "any", `${h.held_by} (${h.channel})`, ago(h.created_at, now), holdEnds(h), h.reason]),
  );
}

/** `steward hold ls` / `steward hold release ID`. */
export async function holdCommand(args: string[], io: Io): Promise<number> {
  const sub = findSubcommand(HOLD, args)?.[0];
  if (sub === "release") {
    const { values, positionals } = parseFlags(HOLD.subcommands.release.flags, args.slice(1), { positionals: true });
    const id = positionals[0];
    if (!id || positionals.length > 1) {
      io.err("usage: steward hold release ID [--reason TEXT]");
      return 2;
    }
    const actor = decider(values.as, io.env);
    const api = await connectApi(io.env);
    // A prefix, as `steward hold ls` prints it: resolved against the holds in force.
    const hits = id.length === 36 ? [id] : (await api.holds()).map((h) => h.action_id).filter((x) => x.startsWith(id.toLowerCase()));
    if (hits.length !== 1) {
      io.err(hits.length === 0 ? `error: no hold in force with id ${id} (see \`steward hold ls\`)` : `error: id prefix ${id} matches ${hits.length} holds; give more characters`);
      return 1;
    }
    const h = await api.releaseHold(hits[0]!, { actor, channel: "cli", reason: values.reason?.trim() || undefined });
    io.out(values.json ? JSON.stringify({ hold: h }, null, 2) : `released the hold ${shortId(h.action_id)} on ${h.kind} ${h.nodes.join(",")}/${h.service}: the drift is proposed again at the supervisor's next cycle`);
    return 0;
  }
  if (sub !== "ls" && args.length > 0 && !args[0]?.startsWith("-")) {
    io.err(`unknown subcommand '${args[0]}'; see 'steward hold --help'`);
    return 2;
  }
  const { values } = parseFlags(HOLD.subcommands.ls.flags, sub ? args.slice(1) : args);
  const holds = await (await connectApi(io.env)).holds();
  io.out(values.json ? JSON.stringify({ holds }, null, 2) : renderHolds(holds));
  return 0;
}
