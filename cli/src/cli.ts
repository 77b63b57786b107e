import { parseArgs } from "node:util";
import { userInfo } from "node:os";
import { ApiClient, ApiError, NoStackError } from "./api-client.js";
import { renderAction, renderActions, renderDrift, renderStatus } from "./commands/read.js";
import { renderGithub, renderValidate, validateFile } from "./commands/validate.js";
import { planCommand } from "./commands/plan.js";
import { taskCommand } from "./commands/task.js";
import { costCommand } from "./commands/cost.js";
import { chatCommand } from "./commands/chat.js";

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  /** Lines for `steward chat` (stdin when absent). */
  in?: NodeJS.ReadableStream;
}

export const USAGE = `steward — keeps your fleet in the state declared in git, and tells you the truth about it

usage:
  steward up [--fleet FILE] [--dir DIR] [--keep] [--api-port N]   all-in-one local stack (demo fleet by default; --help lists its settings)
  steward status [--json]                      nodes, heartbeats, services, health
  steward drift [--json]                       where the world differs from the spec
  steward actions [--state S] [--json]         proposed and past actions
  steward actions show ID [--json]             one action with its audit trail
  steward approve ID [--as NAME]               approve a pending action (ID or its first characters)
  steward reject ID --reason TEXT [--as NAME]  reject a pending action
  steward validate FILE... [--repo DIR] [--format text|github] [--json]
                                               check fleet specs and the repo they use (for CI): exit 1 and one line per problem
  steward plan [FILE] [--snapshot SNAP.json] [--json]
                                               what the supervisor would create, restart, redeploy, pull, or only report (exit 0)
  steward task add TEXT [--no-wait] [--json]   ask the planner; waits and shows progress (--no-wait prints the task id)
  steward task show ID [--json]                answer, evidence, proposed actions, model groups, cost
  steward task ls [--conversation ID] [--json] recent tasks from every source
  steward chat [--conversation ID]             a conversation with the planner; /approve ID and /reject ID REASON in place
  steward cost [--json]                        model spend by day, agent, model group and source; headroom under each cap

environment: STEWARD_API_URL, STEWARD_PLANNER_URL and STEWARD_TOKEN (or the stack file written by \`steward up\` in $STEWARD_HOME, default ~/.steward)`;

const operator = (env: NodeJS.ProcessEnv): string => env["STEWARD_USER"] ?? (() => {
  try {
    return userInfo().username;
  } catch {
    return "operator";
  }
})();

/** Returns the exit code, or null when the command keeps running (up). */
export async function runCli(argv: string[], io: Io): Promise<number | null> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case undefined:
      case "help":
      case "--help":
      case "-h":
        io.out(USAGE);
        return cmd === undefined ? 2 : 0;
      case "validate":
        return await validate(rest, io);
      case "plan":
        return await planCommand(rest, io);
      case "status":
        return await status(rest, io);
      case "drift":
        return await drift(rest, io);
      case "actions":
        return await actions(rest, io);
      case "approve":
        return await decide("approve", rest, io);
      case "reject":
        return await decide("reject", rest, io);
      case "up":
        // Loaded only here: it imports every service's settings.
        return await (await import("./up/up-command.js")).upCommand(rest, io);
      case "task":
        return await taskCommand(rest, io);
      case "cost":
        return await costCommand(rest, io);
      case "chat":
        return await chatCommand(rest, io);
      default:
        io.err(`unknown command '${cmd}'\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof ApiError) {
      io.err(`error: ${err.message}${err.status ? ` (HTTP ${err.status}, ${err.code})` : ""}`);
      return 1;
    }
    if (err instanceof NoStackError) {
      io.err(`error: ${err.message}`);
      return 1;
    }
    if (err instanceof TypeError && /parseArgs|Unknown option|ERR_PARSE_ARGS/.test(`${(err as { code?: string }).code ?? ""} ${err.message}`)) {
      io.err(`error: ${err.message}`);
      return 2;
    }
    throw err;
  }
}

async function validate(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: "boolean", default: false }, format: { type: "string", default: "text" }, repo: { type: "string" } },
  });
  if (positionals.length === 0 || (values.format !== "text" && values.format !== "github")) {
    io.err("usage: steward validate FILE... [--repo DIR] [--format text|github] [--json]");
    return 2;
  }
  const results = await Promise.all(positionals.map((f) => validateFile(f, values.repo)));
  const ok = results.every((r) => r.ok);
  if (values.json) io.out(JSON.stringify({ ok, results }, null, 2));
  // Workflow commands are read from stdout.
  else if (values.format === "github") io.out(renderGithub(results));
  else if (ok) io.out(renderValidate(results));
  else io.err(renderValidate(results.filter((r) => !r.ok)));
  return ok ? 0 : 1;
}

async function status(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: "boolean", default: false } } });
  const snap = await (await ApiClient.fromEnv(io.env)).world();
  io.out(values.json ? JSON.stringify(snap, null, 2) : renderStatus(snap));
  return 0;
}

async function drift(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: "boolean", default: false } } });
  const report = await (await ApiClient.fromEnv(io.env)).drift();
  io.out(values.json ? JSON.stringify(report, null, 2) : renderDrift(report));
  return 0;
}

async function actions(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: "boolean", default: false }, state: { type: "string" }, limit: { type: "string", default: "50" } } });
  const api = await ApiClient.fromEnv(io.env);
  if (positionals[0] === "show") {
    const id = positionals[1];
    if (!id) {
      io.err("usage: steward actions show ID");
      return 2;
    }
    const a = await api.action(await api.resolveActionId(id));
    io.out(values.json ? JSON.stringify(a, null, 2) : renderAction(a));
    return 0;
  }
  if (positionals.length > 0) {
    io.err(`unknown argument '${positionals[0]}'; did you mean 'steward actions show ${positionals[0]}'?`);
    return 2;
  }
  const list = await api.actions(values.state, Number(values.limit));
  io.out(values.json ? JSON.stringify({ actions: list }, null, 2) : renderActions(list));
  return 0;
}

async function decide(kind: "approve" | "reject", args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { as: { type: "string" }, reason: { type: "string" }, json: { type: "boolean", default: false } } });
  const id = positionals[0];
  if (!id) {
    io.err(`usage: steward ${kind} ID${kind === "reject" ? " --reason TEXT" : ""}`);
    return 2;
  }
  if (kind === "reject" && !values.reason?.trim()) {
    io.err("error: --reason is required to reject an action (it goes into the audit log)");
    return 2;
  }
  const api = await ApiClient.fromEnv(io.env);
  const full = await api.resolveActionId(id);
  const actor = values.as ?? operator(io.env);
  const a = kind === "approve" ? await api.approve(full, actor) : await api.reject(full, actor, values.reason ?? "");
  if (values.json) io.out(JSON.stringify({ action: a }, null, 2));
  else io.out(`${kind === "approve" ? "approved" : "rejected"} ${a.id.slice(0, 8)}: ${a.kind} ${a.node}/${a.service} (now ${a.state})${kind === "approve" ? "; the executor runs it and checks the service comes back healthy: `steward actions show " + a.id.slice(0, 8) + "`" : ""}`);
  return 0;
}
