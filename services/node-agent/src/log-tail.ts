import { open } from "node:fs/promises";
import { join } from "node:path";
import { LOG_TAIL_MAX_BYTES, LogTailRequest, type LogTailReply } from "@steward/contracts/log-tail";
import { logTailSubject } from "@steward/contracts/subjects";
import type { NatsConnection } from "@steward/platform/bus";
import { redactSecretsInText } from "@steward/platform/redact";
import type { EnvValue, SecretRef } from "@steward/fleet/fleet-spec";
import type { Logger } from "@steward/platform/logger";
import type { ComposeDriver } from "./compose-driver.js";
import { readRequest, serveNodeRequests } from "./node-request.js";

/** What the log tail needs to know about a supervised service. */
export interface TailableService {
  declared: boolean;
  spec: { env: Record<string, EnvValue> };
}

export interface LogTailDeps {
  node: string;
  logDir: string;
  services: () => ReadonlyMap<string, TailableService>;
  /** Resolves secret refs so their values can be masked if a service printed them. */
  resolveSecret?: (ref: SecretRef) => string | undefined;
  /** Compose stacks: their containers' logs through the engine (a stack is not in `services`). */
  compose?: Pick<ComposeDriver, "investigate" | "readLogs">;
  logger: Logger;
}

/** Reads at most `maxBytes` from the end of a file, starting at a line boundary when it had to cut. */
export async function readTail(path: string, maxBytes: number): Promise<{ text: string; bytes: number; truncated: boolean }> {
  const fh = await open(path, "r");
  try {
    const size = (await fh.stat()).size;
    const want = Math.min(size, Math.max(0, Math.min(maxBytes, LOG_TAIL_MAX_BYTES)));
    const buf = Buffer.alloc(want);
    await fh.read(buf, 0, want, size - want);
    let text = buf.toString("utf8");
    const truncated = want < size;
    if (truncated) {
      const nl = text.indexOf("\n");
      if (nl >= 0 && nl < text.length - 1) text = text.slice(nl + 1);
    }
    return { text, bytes: Buffer.byteLength(text), truncated };
  } finally {
    await fh.close();
  }
}

/** Pure apart from reading the log: answers one request. Only declared services; values of their env are masked. */
export async function answerLogTail(data: Uint8Array, deps: Omit<LogTailDeps, "logger">): Promise<LogTailReply> {
  const req = readRequest(data, LogTailRequest);
  if (!req.ok) return req;
  const { service, max_bytes, since, until } = req.data;
  const svc = deps.services().get(service);
  if ((!svc || !svc.declared) && deps.compose) {
    const answer = await composeTail(deps.compose, deps.node, service, max_bytes, since, until);
    if (answer) return answer;
  }
  // The name reaches a file path only after it matched a declared service, so no path tricks get through.
  if (!svc || !svc.declared) return { ok: false, code: "unknown_service", message: `no declared service '${service}' on node '${deps.node}'` };
  if (since !== undefined || until !== undefined) return { ok: false, code: "invalid", message: `since/until: the log of process service '${service}' has no timestamps (a time range works for compose services only)` };
  const known: string[] = [];
  for (const v of Object.values(svc.spec.env)) {
    const value = typeof v === "string" ? v : deps.resolveSecret?.(v);
    if (value) known.push(value);
  }
  try {
    const t = await readTail(join(deps.logDir, `${service}.log`), max_bytes);
    return { ok: true, node: deps.node, service, text: redactSecretsInText(t.text, known), bytes: t.bytes, truncated: t.truncated };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { ok: false, code: "no_log", message: `no log for '${service}' yet` };
    return { ok: false, code: "error", message: `cannot read the log of '${service}' (${code ?? "error"})` };
  }
}

/** A compose stack's log through the engine, redacted; `undefined` when no stack has that name. */
async function composeTail(compose: NonNullable<LogTailDeps["compose"]>, node: string, service: string, maxBytes: number, since: string | undefined, until: string | undefined): Promise<LogTailReply | undefined> {
  let found: Awaited<ReturnType<typeof compose.investigate>>;
  try {
    found = await compose.investigate(service);
  } catch (err) {
    return { ok: false, code: "error", message: `cannot read the containers of '${service}': ${redactSecretsInText((err as Error).message).slice(0, 300)}` };
  }
  if (!found) return undefined;
  if (found.containers.length === 0) return { ok: false, code: "no_log", message: `compose service '${service}' has no containers (project ${found.project})` };
  try {
    const t = await compose.readLogs(found.containers, { maxBytes: Math.min(maxBytes, LOG_TAIL_MAX_BYTES), ...(since ? { since: new Date(since) } : {}), ...(until ? { until: new Date(until) } : {}) });
    const text = redactSecretsInText(t.text, found.secrets);
    return { ok: true, node, service, text, bytes: Buffer.byteLength(text), truncated: t.truncated };
  } catch (err) {
    return { ok: false, code: "error", message: `cannot read the log of '${service}': ${redactSecretsInText((err as Error).message, found.secrets).slice(0, 300)}` };
  }
}

/** Serves `steward.logs.<node>` request/reply. Returns the subscription so the agent can stop it. */
export function serveLogTail(nc: NatsConnection, deps: LogTailDeps): { unsubscribe(): void } {
  return serveNodeRequests(nc, { subject: logTailSubject(deps.node), name: "log_tail", node: deps.node, logger: deps.logger, answer: (data) => answerLogTail(data, deps) });
}
