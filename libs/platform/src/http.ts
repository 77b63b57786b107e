import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from "node:http";
import type { Logger } from "./logger.js";
import type { Registry } from "./metrics.js";
import { reportListening, STACK_ID_HEADER, stackId } from "./stack-member.js";

/** An HTTP answer other than success, with the JSON error body the operator (or CLI) reads. */
export class HttpError extends Error {
  constructor(readonly status: number, readonly body: { code: string; message: string; [k: string]: unknown }) {
    super(body.message);
    this.name = "HttpError";
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, extraHeaders: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(json), ...extraHeaders });
  res.end(json);
}

/** Reads a request body as text, refusing (413) more than `maxBytes` whether declared or streamed. */
export async function readBodyText(req: IncomingMessage, maxBytes: number): Promise<string> {
  const tooLarge = () => new HttpError(413, { code: "too_large", message: `request body is larger than ${maxBytes} bytes` });
  if (Number(req.headers["content-length"] ?? 0) > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

const digest = (s: string): Buffer => createHash("sha256").update(s).digest();

/** Constant-time bearer check: both sides are hashed first so their lengths never leak either. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? "");
  const given = m?.[1]?.trim() ?? "";
  return timingSafeEqual(digest(given), digest(token)) && given.length > 0;
}

/** What every Steward JSON API is given besides its own stores: the registry (its /metrics listener serves it), a logger for failed requests, the bearer token. */
export interface JsonApiDeps {
  registry: Registry;
  logger: Logger;
  apiToken: string;
}

/** The parts of a request every JSON router reads: the URL, its path without trailing slashes, the method. */
export function requestTarget(req: IncomingMessage): { url: URL; path: string; method: string } {
  let url: URL;
  try {
    // An origin-form target is a path: `//x` must stay the path `//x`, not become a URL whose host is `x` (and `///` one
    // with no host at all, which does not parse).
    const target = req.url ?? "/";
    url = target.startsWith("/") ? new URL(`http://localhost${target}`) : new URL(target, "http://localhost");
  } catch {
    throw new HttpError(400, { code: "invalid", field: "path", message: "the request path is not a valid URL path" });
  }
  return { url, path: url.pathname.replace(/\/+$/, "") || "/", method: req.method ?? "GET" };
}

/** Answers 401 with the bearer challenge unless the request carries `token`; true when it answered. */
export function refusedWithoutBearer(req: IncomingMessage, res: ServerResponse, token: string): boolean {
  if (bearerMatches(req.headers.authorization, token)) return false;
  sendJson(res, 401, { error: { code: "unauthorized", message: "missing or wrong bearer token" } }, { "www-authenticate": 'Bearer realm="steward"' });
  return true;
}

/** 405 naming the route and the one method it allows, unless `method` is that one. */
export function allowMethod(method: string, want: string, route: string): void {
  if (method !== want) throw new HttpError(405, { code: "method_not_allowed", message: `${route} allows ${want} only`, route });
}

/** A list's `?limit=`: absent or empty is `fallback`, else an integer from 1 to `max` (400 naming the field otherwise). */
export function parseListLimit(raw: string | null, max: number, fallback = 50): number {
  if (raw === null || raw === "") return fallback;
  const limit = Number(raw);
  if (!/^\d+$/.test(raw) || limit < 1 || limit > max) throw new HttpError(400, { code: "invalid", field: "limit", message: `limit must be an integer from 1 to ${max}` });
  return limit;
}

export interface HttpListener {
  server: Server;
  /** The port actually bound (port 0 picks a free one). */
  port: number;
  /** Stops accepting and cuts open connections (SSE streams, keep-alives) rather than waiting on them. */
  close(): Promise<void>;
}

/**
 * Every Steward HTTP listener binds the same way. Under `steward up` every answer carries the stack id and the bound
 * port is reported to `up` (see stack-member.ts).
 */
export async function listenHttp(handler: RequestListener, port: number, host: string, opts: { role?: "metrics" } = {}): Promise<HttpListener> {
  const id = stackId();
  const server = createServer(
    id === undefined
      ? handler
      : (req, res) => {
          res.setHeader(STACK_ID_HEADER, id);
          handler(req, res);
        },
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const bound = typeof addr === "object" && addr ? addr.port : port;
  reportListening(bound, opts.role);
  return {
    server,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const DATABASE_UNREACHABLE = { code: "database_unreachable", message: "the database is unreachable; nothing was changed, try again when it is back" } as const;

/** Connection-level failures (refused, reset, server shutting down, pool closed): the database is down, not the request wrong. */
const CONNECTION_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT", "57P01", "57P02", "57P03", "08000", "08001", "08003", "08006"]);

export function isDatabaseUnreachable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && CONNECTION_CODES.has(code)) return true;
  // node-postgres (the LangGraph checkpointer's driver) says so in words only, without a code.
  if (/^Connection terminated( unexpectedly| due to connection timeout)?$/.test((err as Error | null)?.message ?? "")) return true;
  const errors = (err as { errors?: unknown } | null)?.errors;
  return Array.isArray(errors) && errors.some((e) => isDatabaseUnreachable(e));
}

/**
 * A JSON API's request listener around an async router: an HttpError becomes its JSON error reply, anything else a
 * logged 500 that says nothing about internals; every request is counted by route and status.
 */
export function jsonApi(
  route: (req: IncomingMessage, res: ServerResponse) => Promise<{ route: string; status: number }>,
  opts: { logger: Logger; count: (route: string, status: number) => void },
): RequestListener {
  return (req, res) => {
    route(req, res)
      .then(({ route: r, status }) => opts.count(r, status))
      .catch((err: unknown) => {
        const down = !(err instanceof HttpError) && isDatabaseUnreachable(err);
        const status = err instanceof HttpError ? err.status : down ? 503 : 500;
        if (down) opts.logger.warn({ err: (err as Error)?.message, url: req.url?.split("?")[0] }, "database unreachable: answering 503");
        else if (!(err instanceof HttpError)) opts.logger.error({ err: (err as Error)?.message, method: req.method, url: req.url?.split("?")[0] }, "API request failed");
        const body = err instanceof HttpError ? err.body : down ? DATABASE_UNREACHABLE : { code: "internal", message: "internal error" };
        if (!res.headersSent) sendJson(res, status, { error: body }, status === 413 ? { connection: "close" } : {});
        else res.end();
        opts.count("(error)", status);
      });
  };
}
