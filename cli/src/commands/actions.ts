import { userInfo } from "node:os";
import type { ActionState } from "@steward/contracts/action";
import { connectApi, resolveActionId } from "../connect-api.js";
import { ACTIONS, APPROVE, REJECT, type Io } from "../command-table.js";
import { parseFlags } from "../parse.js";
import { UsageError } from "../errors.js";
import { renderAction, renderActions } from "./read.js";
import { MAX_HOLD_MS, parseHoldFor } from "@steward/contracts/executor-api";

export const operator = (env: NodeJS.ProcessEnv): string => env["STEWARD_USER"] ?? (() => {
  try {
    return userInfo().username;
  } catch {
    return "operator";
  }
})();

/**
 * Who decides, as the request body says it. The executor records the name of the credential the request comes with
 * and ignores this, so `--as` is refused instead of being silently dropped.
 */
export function decider(as: string | undefined, env: NodeJS.ProcessEnv): string {
  if (as !== undefined) throw new UsageError("--as is no longer used: the audit log records the name of the API credential you use (your own: `steward token create NAME --role approver` by an admin; docs/access.md)");
  return operator(env);
}

/** `steward actions [show ID]`. */
export async function actionsCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(ACTIONS.flags, args, { positionals: true });
  const api = await connectApi(io.env);
  if (positionals[0] === "show") {
    const id = positionals[1];
    if (!id) {
      io.err("usage: steward actions show ID");
      return 2;
    }
    const a = await api.action(await resolveActionId(api, id));
    io.out(values.json ? JSON.stringify(a, null, 2) : renderAction(a));
    return 0;
  }
  if (positionals.length > 0) {
    io.err(`unknown argument '${positionals[0]}'; did you mean 'steward actions show ${positionals[0]}'?`);
    return 2;
  }
    // The state is the executor's to check: an unknown one is its 400, as it always was.
  const list = await api.actions({ state: values.state as ActionState | undefined, limit: Number(values.limit) });
  io.out(values.json ? JSON.stringify({ actions: list }, null, 2) : renderActions(list));
  return 0;
}

export const approveCommand = (args: string[], io: Io): Promise<number> => decide("approve", args, io);
export const rejectCommand = (args: string[], io: Io): Promise<number> => decide("reject", args, io);

async function decide(kind: "approve" | "reject", args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(kind === "approve" ? APPROVE.flags : REJECT.flags, args, { positionals: true });
  const id = positionals[0];
  if (!id) {
    io.err(`usage: steward ${kind} ID${kind === "reject" ? " --reason TEXT" : ""}`);
    return 2;
  }
  if (kind === "reject" && !values.reason?.trim()) {
    io.err("error: --reason is required to reject an action (it goes into the audit log)");
    return 2;
  }
  const holdFor = "for" in values ? values.for : undefined;
  if (holdFor !== undefined) {
    const ms = parseHoldFor(holdFor);
    if (ms === undefined || ms > MAX_HOLD_MS) {
      io.err(`error: --for must be a duration like 90s, 30m, 2h or 1d (at most 30d), got '${holdFor}'`);
      return 2;
    }
  }
  const actor = decider(values.as, io.env);
  const api = await connectApi(io.env);
  const full = await resolveActionId(api, id);
  const a = kind === "approve" ? await api.approve(full, { actor, channel: "cli" }) : await api.reject(full, { actor, channel: "cli", reason: values.reason ?? "", hold_for: holdFor });
  if (values.json) io.out(JSON.stringify({ action: a }, null, 2));
  else if (kind === "approve") {
    io.out(`approved ${a.id.slice(0, 8)}: ${a.kind} ${a.node}/${a.service} (now ${a.state}); the executor runs it and checks the service comes back healthy: \`steward actions show ${a.id.slice(0, 8)}\``);
    if (a.model_written?.length) io.out(`  note: its ${a.model_written.join(" and ")} ${a.model_written.length > 1 ? "were" : "was"} written by a model (planner task ${a.task_id ?? "?"}), not verified by Steward`);
  }
  else {
    const until = holdFor ? `until it changes or clears, or for ${holdFor}` : "until it changes or clears";
    const held = a.drift_key || holdFor ? `; its drift is held (not proposed again) ${until}: \`steward hold ls\`, \`steward hold release ${a.id.slice(0, 8)}\`` : "";
    io.out(`rejected ${a.id.slice(0, 8)}: ${a.kind} ${a.node}/${a.service} (now ${a.state})${held}`);
  }
  return 0;
}
