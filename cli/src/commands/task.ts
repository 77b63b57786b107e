import { randomUUID } from "node:crypto";
import { userInfo } from "node:os";
import { currentTraceHeaders, withSpan } from "@steward/platform/tracing";
import type { Task, TaskDetail, TaskStep } from "@steward/contracts/task";
import { TASK } from "../command-table.js";
import { UsageError } from "../errors.js";
import { ago, shortId, table } from "../format.js";
import { parseFlags } from "../parse.js";
import { cliEnvelope, connectPlanner, resolveTaskId, TERMINAL_STATES, type NewTask, type PlannerClient } from "../connect-planner.js";

export const usd = (n: number): string => (n === 0 ? "$0" : n < 0.01 ? `$${n.toFixed(4)}` : `$${n.toFixed(2)}`);

const indent = (text: string, by = "  "): string => text.split("\n").map((l) => by + l).join("\n");

/** Seconds since the task was created, so a step list reads as a timeline. */
const offset = (at: string, from: string): string => `+${Math.max(0, (Date.parse(at) - Date.parse(from)) / 1000).toFixed(1)}s`;

export function renderStep(s: TaskStep): string {
  return `[${s.kind}] ${s.message}`;
}

export function renderTaskList(tasks: Task[], now = Date.now()): string {
  if (tasks.length === 0) return "no tasks";
  const clip = (s: string, n = 60) => (s.length > n ? s.slice(0, n - 1) + "…" : s).replace(/\s+/g, " ");
  return table(
    ["ID", "STATE", "SOURCE", "USER", "AGENT", "MODELS", "COST", "CREATED", "CONTENT"],
    tasks.map((t) => [shortId(t.id), t.state, t.source, t.user, t.agent, t.model_groups.join(",") || null, usd(t.cost_usd), ago(t.created_at, now), clip(t.content)]),
  );
}

/** The proposals block, with the ids to approve; shared by `task show` and `steward chat`. */
export function renderProposals(d: TaskDetail, chat = false): string {
  if (d.proposals.length === 0) return "proposed actions: none";
  const rows = d.proposals.map((p) => [p.action_id ? shortId(p.action_id) : null, p.action_kind, [p.node, p.service].filter(Boolean).join("/") || null, p.accepted ? "accepted" : "DROPPED", p.reason]);
  const lines = ["proposed actions:", indent(table(["ACTION", "KIND", "TARGET", "VERDICT", "REASON"], rows))];
  const pending = d.proposals.filter((p) => p.accepted && p.action_id);
  if (pending.length > 0) {
    const id = shortId(pending[0]!.action_id!);
    lines.push(chat ? `  approve with /approve ${id}, or say no with /reject ${id} REASON` : `  pending your approval: steward approve ${id}  (or steward reject ${id} --reason TEXT)`);
  }
  const dropped = d.proposals.filter((p) => !p.accepted).length;
  if (dropped > 0) lines.push(`  ${dropped} dropped proposal${dropped === 1 ? " was" : "s were"} never sent to the executor`);
  return lines.join("\n");
}

export function renderTaskDetail(d: TaskDetail, now = Date.now()): string {
  const t = d.task;
  const out: string[] = [];
  out.push(`task ${t.id}: ${t.state}`);
  out.push(`  asked:        ${t.content.replace(/\n/g, " ")}`);
  out.push(`  from:         ${t.source}, ${t.user}, ${ago(t.created_at, now)}${t.restricted ? " (restricted: local models only)" : ""}`);
  out.push(`  conversation: ${t.conversation_id}`);
  out.push(`  agent:        ${t.agent ?? "-"}   attempts: ${t.attempts}`);
  out.push(`  model groups: ${t.model_groups.length > 0 ? t.model_groups.join(", ") : "-"}${t.model_groups.includes("rules") ? "  (rule-based diagnoser: no model was used)" : ""}`);
  out.push(`  cost:         ${usd(t.cost_usd)}`);
  if (t.error) out.push(`  error:        ${t.error}`);
  out.push("");
  out.push(t.answer ? `answer:\n${indent(t.answer)}` : `answer: ${TERMINAL_STATES.has(t.state) ? "none" : "not yet (the planner is still working)"}`);
  out.push("");
  out.push(d.steps.length === 0 ? "steps: none yet" : `evidence and steps:\n${indent(table(["AT", "KIND", "MESSAGE"], d.steps.map((s) => [offset(s.at, t.created_at), s.kind, s.message.replace(/\n/g, " ")])))}`);
  out.push("");
  out.push(renderProposals(d));
  out.push("");
  out.push(
    d.calls.length === 0
      ? "model calls: none"
      : `model calls:\n${indent(table(["AGENT", "PROVIDER", "GROUP", "MODEL", "ROUTE", "WHY", "TOKENS IN/OUT", "COST"], d.calls.map((c) => [c.agent, c.provider, c.model_group, c.model, c.decision, c.reason, `${c.input_tokens}/${c.output_tokens}`, usd(c.cost_usd)])))}`,
  );
  return out.join("\n");
}

export class TaskWaitTimeout extends Error {
  constructor(readonly taskId: string, readonly state: Task["state"], readonly waitedMs: number) {
    super(`task ${shortId(taskId)} is still ${state} after ${Math.round(waitedMs / 1000)} s; follow it with \`steward task show ${shortId(taskId)}\``);
    this.name = "TaskWaitTimeout";
  }
}

export interface FollowOptions {
  pollMs?: number;
  timeoutMs?: number;
  /** Called once per new step and on each state change, in order. */
  onProgress?: (line: string) => void;
  sleep?: (ms: number) => Promise<void>;
}

/** Polls the task until it reaches a terminal state, reporting each new step once. */
export async function followTask(planner: PlannerClient, id: string, o: FollowOptions = {}): Promise<TaskDetail> {
  const pollMs = o.pollMs ?? 400;
  const timeoutMs = o.timeoutMs ?? 180_000;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const started = Date.now();
  let seenSteps = 0;
  let lastState: Task["state"] | undefined;
  for (;;) {
    const d = await planner.task(id);
    const done = TERMINAL_STATES.has(d.task.state);
    const stateLine = (): void => {
      if (d.task.state === lastState) return;
      if (lastState === undefined && d.task.state === "queued") o.onProgress?.("[queued] waiting for a planner worker");
      else o.onProgress?.(`[${d.task.state}]${d.task.state === "running" && d.task.agent ? ` ${d.task.agent}` : ""}`);
      lastState = d.task.state;
    };
    // Read as a timeline: a task that starts running says so before its first steps; one that ends, after its last.
    if (!done) stateLine();
    // Steps only grow; a shorter list (a retried attempt starting over) is reported from its start.
    if (d.steps.length < seenSteps) seenSteps = 0;
    for (const s of d.steps.slice(seenSteps)) o.onProgress?.(renderStep(s));
    seenSteps = d.steps.length;
    if (done) {
      stateLine();
      return d;
    }
    if (Date.now() - started >= timeoutMs) throw new TaskWaitTimeout(id, d.task.state, Date.now() - started);
    await sleep(pollMs);
  }
}

export interface AskOptions {
  content: string;
  user: string;
  conversationId?: string;
  targetAgent?: string;
  ttlS?: number;
  idempotencyKey?: string;
  restricted?: boolean;
  spanName?: string;
}

/**
 * Submits one task to the inbox inside a CLI span whose W3C context travels in the `traceparent`
 * header and in the envelope, so the planner's spans (and the action's, down to the node-agent)
 * join this trace instead of starting orphaned ones.
 */
export async function submitTask<T>(planner: PlannerClient, a: AskOptions, then: (r: { task: Task; created: boolean }) => Promise<T>): Promise<T> {
  return withSpan(a.spanName ?? "cli.task_add", { attributes: { "steward.task.source": "cli", ...(a.conversationId ? { "steward.conversation_id": a.conversationId } : {}) } }, async (span) => {
    const headers = currentTraceHeaders();
    const t: NewTask = {
      task_id: randomUUID(),
      content: a.content,
      user: a.user,
      ...(a.conversationId ? { conversation_id: a.conversationId } : {}),
      ...(a.targetAgent ? { target_agent: a.targetAgent } : {}),
      ...(a.ttlS !== undefined ? { ttl_s: a.ttlS } : {}),
      ...(a.idempotencyKey ? { idempotency_key: a.idempotencyKey } : {}),
      ...(a.restricted ? { restricted: true } : {}),
      ...(headers["traceparent"] ? { traceparent: headers["traceparent"] } : {}),
    };
    const r = await planner.submit(cliEnvelope(t), { headers });
    span.setAttribute("steward.task_id", r.task.id);
    span.setAttribute("steward.task.created", r.created);
    return then(r);
  });
}

/** The streams a planner command writes to; `Io` in cli.ts satisfies it. */
export interface CommandIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  in?: NodeJS.ReadableStream;
}

export function operatorName(env: NodeJS.ProcessEnv): string {
  if (env["STEWARD_USER"]) return env["STEWARD_USER"];
  try {
    return userInfo().username;
  } catch {
    return "operator";
  }
}

const TASK_USAGE = ["usage:", ...Object.values(TASK.subcommands).map((s) => `  ${s.usage[0][0]}`)].join("\n");

function positiveNumber(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number, got '${v}'`);
  return n;
}

export { UsageError };

/** `steward task add|show|ls`. Exit 0 when the task succeeded (or was queued with --no-wait), 1 when it failed, 3 when still running at --timeout. */
export async function taskCommand(args: string[], io: CommandIo, deps: { planner?: PlannerClient; pollMs?: number } = {}): Promise<number> {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case "add":
        return await taskAdd(rest, io, deps);
      case "show":
        return await taskShow(rest, io, deps);
      case "ls":
      case "list":
        return await taskLs(rest, io, deps);
      default:
        io.err(`${sub ? `unknown task command '${sub}'\n\n` : ""}${TASK_USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`error: ${err.message}\n\n${TASK_USAGE}`);
      return 2;
    }
    throw err;
  }
}

async function taskAdd(args: string[], io: CommandIo, deps: { planner?: PlannerClient; pollMs?: number }): Promise<number> {
  const { values, positionals } = parseFlags(TASK.subcommands.add.flags, args, { positionals: true });
  const content = positionals.join(" ").trim();
  if (!content) throw new UsageError("say what the task is: steward task add \"why does web keep restarting?\"");
  const ttlS = positiveNumber("ttl", values.ttl);
  const timeoutS = positiveNumber("timeout", values.timeout) ?? 180;
  const planner = deps.planner ?? (await connectPlanner(io.env));
  const progress = values.json ? io.err : io.out;
  return submitTask(
    planner,
    {
      content,
      user: operatorName(io.env),
      ...(values.conversation ? { conversationId: values.conversation } : {}),
      ...(values.agent ? { targetAgent: values.agent } : {}),
      ...(ttlS !== undefined ? { ttlS } : {}),
      ...(values["idempotency-key"] ? { idempotencyKey: values["idempotency-key"] } : {}),
      restricted: values.restricted,
    },
    async ({ task, created }) => {
      if (values["no-wait"]) {
        if (values.json) io.out(JSON.stringify({ task, created }, null, 2));
        else io.out(task.id);
        return 0;
      }
      if (!created) progress(`a task with this idempotency key exists already: ${task.id} (nothing was run twice)`);
      else progress(`task ${task.id} (conversation ${task.conversation_id})`);
      let d: TaskDetail;
      try {
        d = await followTask(planner, task.id, { timeoutMs: timeoutS * 1000, ...(deps.pollMs ? { pollMs: deps.pollMs } : {}), onProgress: (l) => progress(`  ${l}`) });
      } catch (err) {
        if (err instanceof TaskWaitTimeout) {
          io.err(err.message);
          return 3;
        }
        throw err;
      }
      if (values.json) io.out(JSON.stringify(d, null, 2));
      else io.out(`\n${renderTaskDetail(d)}`);
      return d.task.state === "succeeded" ? 0 : 1;
    },
  );
}

async function taskShow(args: string[], io: CommandIo, deps: { planner?: PlannerClient }): Promise<number> {
  const { values, positionals } = parseFlags(TASK.subcommands.show.flags, args, { positionals: true });
  const id = positionals[0];
  if (!id) throw new UsageError("which task? steward task show ID");
  const planner = deps.planner ?? (await connectPlanner(io.env));
  const d = await planner.task(await resolveTaskId(planner, id));
  io.out(values.json ? JSON.stringify(d, null, 2) : renderTaskDetail(d));
  return 0;
}

async function taskLs(args: string[], io: CommandIo, deps: { planner?: PlannerClient }): Promise<number> {
  const { values } = parseFlags(TASK.subcommands.ls.flags, args);
  const limit = positiveNumber("limit", values.limit) ?? 20;
  const planner = deps.planner ?? (await connectPlanner(io.env));
  const tasks = await planner.tasks({ limit: Math.floor(limit), ...(values.conversation ? { conversationId: values.conversation } : {}) });
  io.out(values.json ? JSON.stringify({ tasks }, null, 2) : renderTaskList(tasks));
  return 0;
}
