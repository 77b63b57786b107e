import { describe, expect, it } from "vitest";
import { checkJson, hasUnstorableChars, boundedJsonObject, storableText, label } from "../src/limits.js";
import { TaskEnvelope } from "../src/task.js";

const deep = (n: number): unknown => {
  let v: unknown = "leaf";
  for (let i = 0; i < n; i++) v = { a: v };
  return v;
};

describe("storable text", () => {
  it.each([
    ["plain", "hello", false],
    ["emoji (a surrogate pair)", "ok 🚀", false],
    ["NUL", "a\u0000b", true],
    ["lone high surrogate", "a\uD800b", true],
    ["lone low surrogate", "\uDC00", true],
    ["high surrogate at the end", "x\uD83D", true],
  ])("%s", (_name, s, bad) => {
    expect(hasUnstorableChars(s)).toBe(bad);
    expect(storableText(100).safeParse(s).success).toBe(!bad);
  });

  it("labels refuse control characters and surrounding spaces", () => {
    expect(label().safeParse("alice").success).toBe(true);
    expect(label().safeParse(" alice").success).toBe(false);
    expect(label().safeParse("al\nice").success).toBe(false);
  });
});

describe("bounded JSON", () => {
  it("accepts ordinary evidence", () => {
    expect(checkJson({ drift: [{ key: "down:n/a", n: 1, ok: true, none: null }] })).toBeUndefined();
  });

  it("rejects nesting thousands of levels deep without recursion, naming the depth", () => {
    const p = checkJson(deep(5000));
    expect(p?.message).toMatch(/nested deeper than 32 levels/);
  });

  it("names the path of an unstorable string, in values and keys", () => {
    expect(checkJson({ logs: ["ok", "bad\u0000"] })).toEqual({ path: ["logs", 1], message: expect.stringMatching(/NUL/) });
    expect(checkJson({ ["k\uD800"]: 1 })?.path).toEqual(["k\uD800"]);
  });

  it("rejects documents over the size limit", () => {
    expect(checkJson({ big: "x".repeat(300_000) })?.message).toMatch(/larger than/);
  });

  it("reports the failing path through zod", () => {
    const r = boundedJsonObject().safeParse({ a: { b: "\u0000" } });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(["a", "b"]);
  });
});

describe("task envelope limits", () => {
  const base = { task_id: "t1", content: "why?", source: "cli", user: "op" };
  it.each([
    ["ttl_s far in the future", { ttl_s: 1e15 }, ["ttl_s"]],
    ["NUL in content", { content: "a\u0000" }, ["content"]],
    ["lone surrogate in evidence", { evidence: { x: "\uD800" } }, ["evidence", "x"]],
    ["deep evidence", { evidence: deep(3000) as Record<string, unknown> }, ["evidence"]],
  ])("%s is refused naming the field", (_name, over, path) => {
    const r = TaskEnvelope.safeParse({ ...base, ...over });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path.slice(0, path.length)).toEqual(path);
  });
});
