import { randomUUID } from "node:crypto";
import { NodeCommandReply, signNodeCommand, type NodeCommandBody, type NodeCommandOp, type NodeCommandRejection } from "@steward/contracts/node-command";
import type { CommandSigningKey } from "@steward/contracts/command-keys";
import { commandSubject } from "@steward/contracts/subjects";
import { traceHeaders, type NatsConnection } from "@steward/platform/bus";
import { withSpan, SpanStatusCode } from "@steward/platform/tracing";
import type { ExecutorMetrics } from "./metrics.js";

/** Why a request got no reply at all. */
export type RequestFailure = "no_responders" | "timeout" | "send_failed";

/** What one node command came to. Every failure carries the sentence the action's result and audit show. */
export type CommandOutcome =
  /** `eventsSeq`: where in the events stream the node's report after the command ends (null: it could not say). */
  | { ok: true; pid: number | null; detail: string; eventsSeq: number | null }
  | { ok: false; failure: RequestFailure | "invalid_reply"; message: string }
  | { ok: false; failure: "refused"; code: NodeCommandRejection; nodeMessage: string; message: string };

export interface NodeCommandRequest {
  node: string;
  op: NodeCommandOp;
  service: string;
  actionId: string;
  params?: Record<string, unknown>;
  /** How long to wait for the reply (a deploy waits for its health gate as well). */
  timeoutMs: number;
}

/** A command that was signed and sent (or tried): its id is what the node-agent logs it under. */
export type SentCommand = CommandOutcome & { commandId: string };

/** Signs a node command, sends it to the node-agent over NATS request/reply and classifies what came back. Never throws. */
export interface NodeCommandClient {
  send(req: NodeCommandRequest): Promise<SentCommand>;
}

export interface NodeCommandClientDeps {
  nc: NatsConnection;
  /** The executor's private command key: the only key node-agents accept. */
  signingKey: CommandSigningKey;
  /** Lifetime of a signed command: after it the node-agent refuses it even if it arrives. */
  commandTtlMs: number;
  clock: () => Date;
  metrics: Pick<ExecutorMetrics, "commandSeconds" | "invalidReplies">;
}

type ErrorLike = { name?: unknown; message?: unknown; code?: unknown; cause?: unknown };

/**
 * Pure: a failed NATS request in operator words. NATS wraps "no responders" (a 503 status) in a RequestError whose
 * cause says so, so the cause chain is walked; the first link that names a known failure decides.
 */
export function classifyRequestError(err: unknown, ctx: { node: string; timeoutMs: number }): { failure: RequestFailure; message: string } {
  for (let e = err as ErrorLike | undefined, i = 0; e && typeof e === "object" && i < 5; e = e.cause as ErrorLike | undefined, i++) {
    const name = String(e.name ?? "");
    const message = String(e.message ?? "");
    if (/^NoResponders(Error)?$/.test(name) || /no responders/i.test(message) || String(e.code ?? "") === "503") {
      return { failure: "no_responders", message: `no node-agent is listening for commands on ${ctx.node} (no responders)` };
    }
    if (name === "TimeoutError" || /timeout/i.test(message)) {
      return { failure: "timeout", message: `the node-agent on ${ctx.node} did not reply within ${ctx.timeoutMs} ms (timeout)` };
    }
  }
  const message = (err as ErrorLike | undefined)?.message;
  return { failure: "send_failed", message: `the command could not be sent: ${typeof message === "string" ? message : String(err)}` };
}

/** Pure: the raw reply of a node-agent, checked against the contract. */
export function classifyReply(raw: string): CommandOutcome {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, failure: "invalid_reply", message: "the node-agent sent an invalid reply: not JSON" };
  }
  const parsed = NodeCommandReply.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, failure: "invalid_reply", message: `the node-agent sent an invalid reply: ${issue ? `${issue.path.join(".") || "(reply)"}: ${issue.message}` : "invalid"}` };
  }
  const reply = parsed.data;
  if (!reply.ok) return { ok: false, failure: "refused", code: reply.code, nodeMessage: reply.message, message: `the node-agent refused the command: ${reply.code}: ${reply.message}` };
  return { ok: true, pid: reply.pid, detail: reply.detail, eventsSeq: reply.events_seq ?? null };
}

/** The `outcome` label of `steward_executor_command_seconds`. */
const METRIC_OUTCOME: Record<RequestFailure | "invalid_reply" | "refused" | "ok", string> = {
  no_responders: "error",
  timeout: "error",
  send_failed: "error",
  invalid_reply: "invalid_reply",
  refused: "refused",
  ok: "ok",
};

export function createNodeCommandClient(deps: NodeCommandClientDeps): NodeCommandClient {
  const { nc, metrics } = deps;

  function sign(req: NodeCommandRequest, id: string): string {
    const issued = deps.clock();
    const body: NodeCommandBody = {
      id,
      node: req.node,
      op: req.op,
      service: req.service,
      action_id: req.actionId,
      ...(req.params ? { params: req.params } : {}),
      issued_at: issued.toISOString(),
      expires_at: new Date(issued.getTime() + deps.commandTtlMs).toISOString(),
    };
    return JSON.stringify(signNodeCommand(body, deps.signingKey));
  }

  return {
    send(req) {
      return withSpan("executor.command", { attributes: { "steward.node": req.node, "steward.op": req.op } }, async (span) => {
        const commandId = randomUUID();
        span.setAttribute("steward.command_id", commandId);
        const started = process.hrtime.bigint();
        let outcome: CommandOutcome;
        try {
          const msg = await nc.request(commandSubject(req.node), sign(req, commandId), { timeout: req.timeoutMs, headers: traceHeaders() });
          outcome = classifyReply(msg.string());
        } catch (err) {
          outcome = { ok: false, ...classifyRequestError(err, { node: req.node, timeoutMs: req.timeoutMs }) };
        }
        metrics.commandSeconds.observe({ kind: req.op, outcome: METRIC_OUTCOME[outcome.ok ? "ok" : outcome.failure] }, Number(process.hrtime.bigint() - started) / 1e9);
        if (!outcome.ok) {
          if (outcome.failure === "invalid_reply") metrics.invalidReplies.inc();
          span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.message });
        }
        return { ...outcome, commandId };
      });
    },
  };
}
