import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import { FINAL_ACTION_STATES, type Action, type ActionState } from "@steward/contracts/action";
import type { TaskDetail } from "@steward/contracts/task";
import { connectApi, resolveActionId, type ExecutorClient } from "../connect-api.js";
import { connectPlanner, resolveTaskId, type PlannerClient } from "../connect-planner.js";
import { ApiError, NoStackError } from "../errors.js";
import { CHAT } from "../command-table.js";
import { shortId } from "../format.js";
import { parseFlags } from "../parse.js";
import { renderActions } from "./read.js";
import { followTask, operatorName, renderProposals, renderTaskDetail, renderTaskList, submitTask, TaskWaitTimeout, usd, type CommandIo } from "./task.js";

export const CHAT_HELP = `Ask anything about the fleet in plain words; each line becomes a task in this conversation.
  /approve ID            approve a proposed action (its id or first characters)
  /reject ID REASON      reject it; the reason goes into the audit log
  /pending               actions waiting for a decision
  /tasks                 recent tasks from every source (the supervisor's escalations too)
  /show ID               one task: answer, evidence, proposals, model calls, cost
  /new                   start a new conversation
  /help                  this text
  /quit                  leave (Ctrl-D works too)`;

const FINAL_STATES: ReadonlySet<ActionState> = new Set(FINAL_ACTION_STATES);

export interface ChatDeps {
  planner?: PlannerClient;
  api?: ExecutorClient;
  pollMs?: number;
  /** How long to wait for one answer before handing the prompt back (the task keeps running). */
  timeoutMs?: number;
  /** How long `/approve` follows the action before handing the prompt back. */
  followActionMs?: number;
}

/** Splits `/cmd a b c` into the command and its words; the rest of the line after the id is the reject reason. */
export function parseChatLine(line: string): { kind: "empty" } | { kind: "ask"; text: string } | { kind: "command"; name: string; id: string | undefined; rest: string } {
  const text = line.trim();
  if (!text) return { kind: "empty" };
  if (!text.startsWith("/")) return { kind: "ask", text };
  const m = /^\/(\S+)\s*(\S+)?\s*([\s\S]*)$/.exec(text);
  return { kind: "command", name: (m?.[1] ?? "").toLowerCase(), id: m?.[2], rest: (m?.[3] ?? "").trim() };
}

/**
 * `steward chat`: one conversation in the terminal. Lines are handled strictly one after another,
 * so the same code serves a person at a TTY and a test (or a script) piping lines into stdin.
 */
export async function chatCommand(args: string[], io: CommandIo, deps: ChatDeps = {}): Promise<number> {
  const { values } = parseFlags(CHAT.flags, args);
  const planner = deps.planner ?? (await connectPlanner(io.env));
  let api = deps.api;
  const executor = async () => (api ??= await connectApi(io.env));
  const user = operatorName(io.env);
  const timeoutMs = values.timeout ? Number(values.timeout) * 1000 : (deps.timeoutMs ?? 300_000);
  let conversationId = values.conversation ?? randomUUID();
  /** Short id → full id of every action proposed in this session, so `/approve 1a2b` needs no round trip. */
  const proposed = new Map<string, string>();

  const input = io.in ?? process.stdin;
  const tty = (input as { isTTY?: boolean }).isTTY === true;
  const rl = createInterface({ input, terminal: tty, ...(tty ? { output: process.stdout, prompt: "you> " } : {}) });
  // Take the iterator now: lines that arrive while we await anything below (a piped stdin is read at once) are buffered, not lost.
  const lines = rl[Symbol.asyncIterator]();
  // Ctrl-C at the prompt leaves the chat (a task already sent keeps running in the planner).
  rl.on("SIGINT", () => rl.close());
  const prompt = () => {
    if (tty) rl.prompt();
  };

  io.out(`steward chat: conversation ${conversationId} (resume it with \`steward chat --conversation ${conversationId}\`); /help for commands`);
  if (values.conversation) {
    const earlier = await planner.tasks({ conversationId, limit: 5 }).catch(() => []);
    if (earlier.length > 0) io.out(`resuming: ${earlier.length} earlier task${earlier.length === 1 ? "" : "s"} in this conversation, the last asked "${earlier[0]!.content}"`);
  }

  const remember = (d: TaskDetail) => {
    for (const p of d.proposals) if (p.accepted && p.action_id) proposed.set(shortId(p.action_id), p.action_id);
  };

  const resolveAction = async (prefix: string): Promise<string> => {
    const local = [...proposed.values()].filter((id) => id.startsWith(prefix.toLowerCase()));
    if (local.length === 1) return local[0]!;
    return resolveActionId(await executor(), prefix);
  };

  const ask = async (text: string) => {
    await submitTask(
      planner,
      { content: text, user, conversationId, spanName: "cli.chat", restricted: values.restricted, ...(values.agent ? { targetAgent: values.agent } : {}) },
      async ({ task }) => {
        conversationId = task.conversation_id;
        io.out(`  task ${shortId(task.id)}`);
        let d: TaskDetail;
        try {
          d = await followTask(planner, task.id, { timeoutMs, ...(deps.pollMs ? { pollMs: deps.pollMs } : {}), onProgress: (l) => io.out(`  … ${l}`) });
        } catch (err) {
          if (err instanceof TaskWaitTimeout) {
            io.out(`  ${err.message}`);
            return;
          }
          throw err;
        }
        remember(d);
        const t = d.task;
        if (t.state !== "succeeded") io.out(`steward: the task ${t.state}${t.error ? `: ${t.error}` : ""}`);
        if (t.answer) io.out(`steward: ${t.answer.replace(/\n/g, "\n         ")}`);
        io.out(`  (${t.agent ?? "no agent"}; ${t.model_groups.length > 0 ? t.model_groups.join(", ") : "no model"}; ${usd(t.cost_usd)})`);
        if (d.proposals.length > 0) io.out(renderProposals(d, true));
      },
    );
  };

  const followAction = async (id: string, first: Action) => {
    const budget = deps.followActionMs ?? 60_000;
    const deadline = Date.now() + budget;
    let last: ActionState = first.state;
    while (!FINAL_STATES.has(last) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, deps.pollMs ?? 500));
      const a = (await (await executor()).action(id)).action;
      if (a.state !== last) {
        last = a.state;
        io.out(`  … [${a.state}]${a.result ? ` ${a.result}` : ""}`);
      }
    }
    if (!FINAL_STATES.has(last)) io.out(`  still ${last}; see \`steward actions show ${shortId(id)}\``);
  };

  /**
   * The action was decided meanwhile (e.g. the supervisor expired it when the service came up for a moment):
   * say so, and point at the same operation if it is pending again under a new id. Never approves it by itself.
   */
  const explainDecided = async (id: string, err: ApiError) => {
    const api = await executor();
    const was = (await api.action(id)).action;
    io.out(`not approved: action ${shortId(id)} is ${was.state}${was.result ? ` (${was.result})` : ""}`);
    const again = (await api.actions({ state: "pending", limit: 50 })).find((x) => x.node === was.node && x.service === was.service && x.kind === was.kind);
    if (again) {
      proposed.set(shortId(again.id), again.id);
      io.out(`the same ${again.kind} of ${again.node}/${again.service} is pending again as ${shortId(again.id)}: /approve ${shortId(again.id)}`);
    } else io.out(`(${err.message})`);
  };

  /** Returns false to leave the chat. */
  const handle = async (line: string): Promise<boolean> => {
    const c = parseChatLine(line);
    switch (c.kind) {
      case "empty":
        return true;
      case "ask":
        await ask(c.text);
        return true;
      case "command":
        break;
      default: {
        const never: never = c;
        return never;
      }
    }
    switch (c.name) {
      case "quit":
      case "exit":
      case "q":
        return false;
      case "help":
      case "?":
        io.out(CHAT_HELP);
        return true;
      case "new":
        conversationId = randomUUID();
        io.out(`new conversation ${conversationId}`);
        return true;
      case "approve": {
        if (!c.id) {
          io.out("usage: /approve ID");
          return true;
        }
        const id = await resolveAction(c.id);
        let a: Action;
        try {
          a = await (await executor()).approve(id, { actor: user, channel: "cli" });
        } catch (err) {
          if (err instanceof ApiError && err.status === 409) {
            await explainDecided(id, err);
            return true;
          }
          throw err;
        }
        io.out(`approved ${shortId(a.id)}: ${a.kind} ${a.node}/${a.service} (now ${a.state}); the executor runs it and checks the result`);
        await followAction(a.id, a);
        return true;
      }
      case "reject": {
        if (!c.id || !c.rest) {
          io.out("usage: /reject ID REASON (the reason goes into the audit log)");
          return true;
        }
        const id = await resolveAction(c.id);
        const a = await (await executor()).reject(id, { actor: user, channel: "cli", reason: c.rest });
        io.out(`rejected ${shortId(a.id)}: ${a.kind} ${a.node}/${a.service} (now ${a.state})`);
        return true;
      }
      case "pending":
        io.out(renderActions(await (await executor()).actions({ state: "pending", limit: 50 })));
        return true;
      case "tasks":
        io.out(renderTaskList(await planner.tasks({ limit: 10 })));
        return true;
      case "show": {
        if (!c.id) {
          io.out("usage: /show TASK_ID");
          return true;
        }
        const d = await planner.task(await resolveTaskId(planner, c.id));
        remember(d);
        io.out(renderTaskDetail(d));
        const hint = renderProposals(d, true).split("\n").find((l) => l.trimStart().startsWith("approve with"));
        if (hint) io.out(hint);
        return true;
      }
      default:
        io.out(`unknown command /${c.name}; /help lists them`);
        return true;
    }
  };

  prompt();
  try {
    for (let next = await lines.next(); !next.done; next = await lines.next()) {
      const line: string = next.value;
      try {
        if (!(await handle(line))) break;
      } catch (err) {
        // A refused approval or an unreachable planner is reported; the conversation goes on.
        if (err instanceof ApiError) io.out(`error: ${err.message}${err.status ? ` (HTTP ${err.status}, ${err.code})` : ""}`);
        else if (err instanceof NoStackError) io.out(`error: ${err.message}`);
        else throw err;
      }
      prompt();
    }
  } finally {
    rl.close();
  }
  io.out("bye");
  return 0;
}
