import type { z } from "zod";
import { contextFromHeaders, type NatsConnection } from "@steward/platform/bus";
import { withSpan } from "@steward/platform/tracing";
import type { Logger } from "@steward/platform/logger";

/**
 * The read-only requests a node-agent answers on its own subject (log tail, container inspect): how a request is
 * read and how it is served are the same for each; only the answer differs.
 */

/** A request's JSON read with its schema; a bad one becomes the `invalid` reply the asker sees (the first problem only). */
export function readRequest<S extends z.ZodType>(data: Uint8Array, schema: S): { ok: true; data: z.infer<S> } | { ok: false; code: "invalid"; message: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return { ok: false, code: "invalid", message: "request is not JSON" };
  }
  const req = schema.safeParse(raw);
  if (!req.success) {
    const i = req.error.issues[0];
    return { ok: false, code: "invalid", message: `${i?.path.join(".") || "(request)"}: ${i?.message ?? "invalid"}` };
  }
  return { ok: true, data: req.data };
}

export interface NodeRequestServer {
  subject: string;
  /** Names the span (`node-agent.<name>`) and its result attribute (`steward.<name>.result`), e.g. `log_tail`. */
  name: string;
  node: string;
  logger: Logger;
  /** Never throws: every failure is a reply with a code. */
  answer(data: Uint8Array): Promise<{ ok: true } | { ok: false; code: string }>;
}

/** Serves request/reply on `subject`, each request in its own span. Returns the subscription so the agent can stop it. */
export function serveNodeRequests(nc: NatsConnection, s: NodeRequestServer): { unsubscribe(): void } {
  const what = s.name.replaceAll("_", " ");
  return nc.subscribe(s.subject, {
    callback: (err, msg) => {
      if (err) {
        s.logger.warn({ err: err.message }, `${what} subscription error`);
        return;
      }
      void withSpan(`node-agent.${s.name}`, { parent: contextFromHeaders(msg.headers), attributes: { "steward.node": s.node } }, async (span) => {
        const reply = await s.answer(msg.data);
        span.setAttribute(`steward.${s.name}.result`, reply.ok ? "ok" : reply.code);
        msg.respond(JSON.stringify(reply));
      }).catch((e: unknown) => s.logger.error({ err: (e as Error).message }, `${what} failed`));
    },
  });
}
