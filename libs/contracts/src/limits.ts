import { z } from "zod";

/**
 * Limits that make "valid" mean "storable and processable": whatever passes these schemas can be written to
 * PostgreSQL (no NUL, no lone surrogate: both are refused by its text and JSON types), serialized, and walked
 * without blowing the stack. One place, so every API and message agrees.
 */

/** Characters PostgreSQL refuses in text and jsonb: NUL, and UTF-16 surrogates that are not part of a pair. */
// eslint-disable-next-line no-control-regex
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export const hasUnstorableChars = (s: string): boolean => UNSTORABLE.test(s);

export const UNSTORABLE_MESSAGE = "must not contain NUL characters or unpaired surrogates";

/** A string of at most `max` characters that PostgreSQL can store. */
export const storableText = (max: number) => z.string().max(max).refine((s) => !hasUnstorableChars(s), UNSTORABLE_MESSAGE);

/** An identifier-like string: printable, no spaces at the ends, at most `max` characters. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
export const label = (max = 200) => storableText(max).refine((s) => s.trim().length === s.length && !CONTROL.test(s), "must not contain control characters or surrounding spaces");

export const MAX_JSON_DEPTH = 32;
export const MAX_JSON_BYTES = 256 * 1024;

export type JsonProblem = { path: (string | number)[]; message: string } | undefined;

/**
 * Walks a parsed JSON value without recursion: depth, size and storable strings (keys too).
 * Iterative on purpose: a document nested thousands of levels deep must be rejected, not crash the walker.
 */
export function checkJson(value: unknown, maxDepth = MAX_JSON_DEPTH, maxBytes = MAX_JSON_BYTES): JsonProblem {
  const stack: { v: unknown; depth: number; path: (string | number)[] }[] = [{ v: value, depth: 0, path: [] }];
  let bytes = 0;
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop() as { v: unknown; depth: number; path: (string | number)[] };
    if (depth > maxDepth) return { path, message: `nested deeper than ${maxDepth} levels` };
    if (typeof v === "string") {
      bytes += v.length + 2;
      if (hasUnstorableChars(v)) return { path, message: UNSTORABLE_MESSAGE };
    } else if (typeof v === "number") {
      bytes += 8;
      if (!Number.isFinite(v)) return { path, message: "must be a finite number" };
    } else if (Array.isArray(v)) {
      bytes += 2;
      v.forEach((item, i) => stack.push({ v: item, depth: depth + 1, path: [...path, i] }));
    } else if (v !== null && typeof v === "object") {
      bytes += 2;
      for (const [k, item] of Object.entries(v)) {
        bytes += k.length + 3;
        if (hasUnstorableChars(k)) return { path: [...path, k], message: `key ${UNSTORABLE_MESSAGE}` };
        stack.push({ v: item, depth: depth + 1, path: [...path, k] });
      }
    } else {
      bytes += 5;
    }
    if (bytes > maxBytes) return { path, message: `larger than ${maxBytes} bytes` };
  }
  return undefined;
}

/** A JSON object with bounded depth and size whose every string is storable. */
export const boundedJsonObject = (maxDepth = MAX_JSON_DEPTH, maxBytes = MAX_JSON_BYTES) =>
  z.record(z.string(), z.unknown()).superRefine((v, ctx) => {
    const p = checkJson(v, maxDepth, maxBytes);
    if (p) ctx.addIssue({ code: "custom", message: p.message, path: p.path });
  });

/** Seconds, a whole number from 1 to `max` (a bounded lifetime, so that `now + ttl` is always a valid date). */
export const boundedSeconds = (max: number) => z.number().int().min(1).max(max);
