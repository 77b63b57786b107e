import type { IncomingMessage, ServerResponse } from "node:http";
import { sendJson } from "./http.js";
import type { Logger } from "./logger.js";

/**
 * Wrong credentials per source address, with backoff (issue 13): the one limiter of the executor (API bearer, bot
 * routes, console sign-in) and the planner (bearer). At `maxFailures` failures a source is refused (429) for
 * `baseBlockMs`, doubled at every further failure up to `maxBlockMs`, without its token even being looked at (so a
 * blocked guesser learns nothing, and costs no database lookup). A source forgets its failures after `windowMs`
 * quiet (no failure, no refusal), or at its next success. Only failures count, so a right token from another source is never slowed by
 * an attacker's. In memory and per process: the point is to make guessing slow, not to be exact across replicas.
 *
 * Known trade-offs (docs/access.md): behind a reverse proxy every caller is the proxy's address, so one guesser
 * blocks all (no TRUST_PROXY setting exists); a holder of any valid token can reset its own source's count with it.
 */
export interface FailurePolicy {
  /** Failures (in a row, none `windowMs` apart) before the source is refused. */
  maxFailures: number;
  /** Quiet time after which a source's failures are forgotten. */
  windowMs: number;
  /** The first refusal's length; each further failure doubles it. */
  baseBlockMs: number;
  maxBlockMs: number;
}

export const DEFAULT_FAILURE_POLICY: Readonly<FailurePolicy> = { maxFailures: 10, windowMs: 10 * 60_000, baseBlockMs: 1000, maxBlockMs: 15 * 60_000 };

/** What is remembered of one source. */
export interface SourceRecord {
  failures: number;
  lastFailure: number;
  /** Epoch ms until which the source is refused; 0 when it never was. */
  blockedUntil: number;
}

/** Pure: milliseconds until this source may try again; 0 when it may now. */
export function retryAfterOf(rec: SourceRecord | undefined, now: number): number {
  return rec ? Math.max(0, rec.blockedUntil - now) : 0;
}

/**
 * Pure: a source's record after a wrong credential at `now`. A record quiet for `windowMs` since its last failure or
 * the end of its refusal, whichever is later, starts over; counting from the refusal's end means a refusal longer
 * than the window (15 min against 10 by default) never hands out a fresh set of guesses when it ends.
 */
export function afterFailure(rec: SourceRecord | undefined, now: number, policy: FailurePolicy): SourceRecord {
  const fresh = !rec || now - Math.max(rec.lastFailure, rec.blockedUntil) > policy.windowMs;
  const failures = (fresh ? 0 : rec.failures) + 1;
  const over = failures - policy.maxFailures;
  // 2 ** 30 already exceeds any sane cap; the exponent is bounded so the product stays a finite number.
  const blockedUntil = over >= 0 ? now + Math.min(policy.maxBlockMs, policy.baseBlockMs * 2 ** Math.min(over, 30)) : fresh ? 0 : rec.blockedUntil;
  return { failures, lastFailure: now, blockedUntil };
}

export interface FailureOutcome {
  failures: number;
  /** How long the source is now refused; 0 when it may still try. */
  retryAfterMs: number;
  /** This failure started a refusal (log it then, not at every refused request: at most once per refusal). */
  blockedNow: boolean;
}

export interface FailureLimiter {
  /** Milliseconds until this source may try again; 0 when it may now. */
  retryAfterMs(source: string): number;
  fail(source: string): FailureOutcome;
  /** A right credential: the source's failures are forgotten. */
  succeed(source: string): void;
  /** Sources remembered now; never more than `maxSources`. */
  size(): number;
}

export interface FailureLimiterOptions extends Partial<FailurePolicy> {
  /** Most sources remembered; the least recently failed are forgotten first, so rotating addresses grows nothing. */
  maxSources?: number;
  now?: () => number;
}

export function createFailureLimiter(o: FailureLimiterOptions = {}): FailureLimiter {
  const policy: FailurePolicy = {
    maxFailures: o.maxFailures ?? DEFAULT_FAILURE_POLICY.maxFailures,
    windowMs: o.windowMs ?? DEFAULT_FAILURE_POLICY.windowMs,
    baseBlockMs: o.baseBlockMs ?? DEFAULT_FAILURE_POLICY.baseBlockMs,
    maxBlockMs: o.maxBlockMs ?? DEFAULT_FAILURE_POLICY.maxBlockMs,
  };
  const maxSources = Math.max(1, o.maxSources ?? 10_000);
  const now = o.now ?? Date.now;
  // A Map iterates in insertion order: re-inserting at every failure keeps the least recently failed first.
  const records = new Map<string, SourceRecord>();

  return {
    retryAfterMs: (source) => retryAfterOf(records.get(source), now()),
    fail(source) {
      const t = now();
      const before = records.get(source);
      const rec = afterFailure(before, t, policy);
      records.delete(source);
      records.set(source, rec);
      while (records.size > maxSources) {
        const oldest = records.keys().next();
        if (oldest.done) break;
        records.delete(oldest.value);
      }
      const retryAfterMs = retryAfterOf(rec, t);
      return { failures: rec.failures, retryAfterMs, blockedNow: retryAfterMs > 0 && retryAfterOf(before, t) === 0 };
    },
    succeed(source) {
      records.delete(source);
    },
    size: () => records.size,
  };
}

/**
 * Who a request comes from, for the limiter: the TCP peer's address. No forwarded-for header is believed (anyone can
 * send one); behind a reverse proxy that makes every caller one source, which docs/access.md says.
 */
export function requestSource(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? "unknown";
}

/** Whole seconds for a Retry-After header: rounded up, never 0 (which would invite an immediate retry). */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** The JSON APIs' 429: the same body and Retry-After from every service. */
export function sendTooManyFailures(res: ServerResponse, retryAfterMs: number): void {
  const s = retryAfterSeconds(retryAfterMs);
  sendJson(res, 429, { error: { code: "too_many_failures", message: `too many wrong tokens from this address; try again in ${s} s` } }, { "retry-after": String(s) });
}

/**
 * One warning when a failure starts a source's refusal, not one per refused request (a flood of guesses stays a
 * line per refusal): the address and the count, never the token.
 */
export function logRefusalStart(logger: Logger | undefined, source: string, failed: FailureOutcome): void {
  if (failed.blockedNow) logger?.warn({ source, failures: failed.failures, retry_after_s: retryAfterSeconds(failed.retryAfterMs) }, "wrong tokens from one address: refusing it for a while");
}
