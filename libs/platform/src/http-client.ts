/**
 * The one way Steward's typed API clients call a JSON API: bearer token, timeout, and every failure as an ApiError
 * the caller can tell apart (unreachable, an answer off the contract, or the API's own `{error: {code, message}}`).
 * Imported by the CLI on every command: keep it free of runtime imports (no zod, NATS, pg, pino, OpenTelemetry).
 */

/** The API answered with an error, or (subclasses) could not be reached or answered off its contract. */
export class ApiError extends Error {
  constructor(
    /** HTTP status; 0 when no answer came. */
    readonly status: number,
    /** The API's error code (`not_found`, `invalid_transition`, …), or `unreachable`, `bad_response`, `http_error`. */
    readonly code: string,
    message: string,
    /** The parsed error body, when there was one (e.g. `error.state` of an invalid transition). */
    readonly body?: unknown,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Nothing answered: connection refused, DNS, TLS, or no answer within the timeout. */
export class ApiUnreachable extends ApiError {
  constructor(
    readonly url: string,
    /** Why, in operator words (`no answer within 3000 ms`, `connect ECONNREFUSED 127.0.0.1:1`). */
    readonly reason: string,
    message: string,
  ) {
    super(0, "unreachable", message);
    this.name = "ApiUnreachable";
  }
}

/** An answer came, but not the one the contract promises: not JSON, or JSON of the wrong shape. */
export class ApiBadResponse extends ApiError {
  constructor(
    status: number,
    readonly problem: "not_json" | "off_contract",
    /** The first schema issue (`tasks.0.id: Invalid input…`); empty for not_json. */
    readonly detail: string,
    message: string,
  ) {
    super(status, "bad_response", message);
    this.name = "ApiBadResponse";
  }
}

/** Structural, so this module needs no zod at runtime: any zod schema fits. */
export interface ResponseSchema<T> {
  safeParse(v: unknown, ctx?: { jitless?: boolean }): { success: true; data: T } | { success: false; error: { issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }> } };
}

/** The part of an HTTP answer the helper reads: fetch's Response has it, and so does any other transport's answer. */
export interface HttpReply {
  ok: boolean;
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}

/**
 * One HTTP request. The global `fetch` is one; the CLI passes one over node:http, which starts in a fraction of the
 * time the first `fetch` in a process takes (undici is loaded on first use).
 */
export type HttpTransport = (url: URL, init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal }) => Promise<HttpReply>;

export interface JsonHttpOptions {
  /** Base URL of the API (a trailing slash is fine). */
  url: string;
  token?: string | undefined;
  /** How the API is named in messages: "the Steward API", "the planner". */
  label: string;
  /** Per request; default 15 s. */
  timeoutMs?: number | undefined;
  /** The transport; the global `fetch` by default. */
  fetch?: HttpTransport | undefined;
  /**
   * Sees every answer (its status and headers) before its body is read; what it throws is what the call throws.
   * The CLI refuses an answer that does not carry its stack's id (`x-steward-stack`) this way.
   */
  onReply?: ((reply: Pick<HttpReply, "status" | "headers">) => void) | undefined;
  /**
   * Parse answers without zod's compiled fast path. zod builds and compiles a parser for each object schema on its
   * first parse, which pays off in a service that parses the same shape many times and costs a process that parses
   * once (the CLI: about a fifth of `steward status`) more than it saves.
   */
  jitless?: boolean | undefined;
}

export interface JsonRequest {
  body?: unknown;
  headers?: Record<string, string>;
}

export interface JsonHttp {
  readonly url: string;
  /** Resolves with the status and the parsed answer of a 2xx; throws ApiError (or a subclass) for anything else. */
  call<T>(method: string, path: string, schema: ResponseSchema<T>, req?: JsonRequest): Promise<{ status: number; data: T }>;
}

const routeOf = (path: string): string => path.split("?")[0] ?? path;

/** Pure: the ApiError for a non-2xx answer, from the API's `{error: {code, message, field?}}` body when it has one. */
export function errorFromAnswer(status: number, json: unknown, label: string): ApiError {
  const e = (json as { error?: { code?: unknown; message?: unknown; field?: unknown } } | null | undefined)?.error;
  if (e && typeof e === "object" && typeof e.code === "string") {
    const text = typeof e.message === "string" && e.message !== "" ? e.message : e.code;
    const field = typeof e.field === "string" ? e.field : undefined;
    // A 422 names the field; say it once.
    return new ApiError(status, e.code, field && !text.includes(field) ? `${field}: ${text}` : text, json);
  }
  if (status === 401) return new ApiError(401, "unauthorized", `${label} refused the token (STEWARD_TOKEN or the stack file's token)`, json);
  return new ApiError(status, "http_error", `${label} answered ${status}`, json);
}

export function createJsonHttp(opts: JsonHttpOptions): JsonHttp {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  // Joined, not resolved: an API behind a path prefix (a reverse proxy) keeps its prefix.
  const base = opts.url.replace(/\/+$/, "");
  return {
    url: opts.url,
    async call(method, path, schema, req = {}) {
      const f: HttpTransport = opts.fetch ?? fetch;
      let res: HttpReply;
      try {
        res = await f(new URL(base + path), {
          method,
          headers: {
            accept: "application/json",
            ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
            ...(req.body !== undefined ? { "content-type": "application/json" } : {}),
            ...req.headers,
          },
          ...(req.body !== undefined ? { body: JSON.stringify(req.body) } : {}),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        const e = err as Error;
        // fetch rejects with the TimeoutError itself; node:http with an AbortError caused by it.
        const timedOut = e?.name === "TimeoutError" || (e?.cause as Error | undefined)?.name === "TimeoutError";
        const reason = timedOut ? `no answer within ${timeoutMs} ms` : ((e?.cause as Error | undefined)?.message ?? e?.message ?? String(err));
        throw new ApiUnreachable(opts.url, reason, `cannot reach ${opts.label} at ${opts.url}: ${e?.message ?? String(err)}`);
      }
      opts.onReply?.(res);
      let text: string;
      try {
        text = await res.text();
      } catch (err) {
        throw new ApiUnreachable(opts.url, (err as Error).message, `cannot reach ${opts.label} at ${opts.url}: the answer was cut off (${(err as Error).message})`);
      }
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        throw new ApiBadResponse(res.status, "not_json", "", `${opts.label} answered ${res.status} with a body that is not JSON`);
      }
      if (!res.ok) throw errorFromAnswer(res.status, json, opts.label);
      const parsed = opts.jitless ? schema.safeParse(json, { jitless: true }) : schema.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const detail = issue ? `${issue.path.map(String).join(".") || "(body)"}: ${issue.message}` : "invalid";
        throw new ApiBadResponse(res.status, "off_contract", detail, `unexpected answer from ${opts.label}'s ${routeOf(path)}: ${detail}`);
      }
      return { status: res.status, data: parsed.data };
    },
  };
}
