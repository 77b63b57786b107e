import { describe, expect, it } from "vitest";
import { afterFailure, createFailureLimiter, DEFAULT_FAILURE_POLICY, retryAfterOf, retryAfterSeconds, type FailurePolicy, type SourceRecord } from "../src/rate-limit.js";

const P: FailurePolicy = { maxFailures: 3, windowMs: 1000, baseBlockMs: 100, maxBlockMs: 350 };

/** A run of events on one source: f = a failure at t, s = a success at t, ? = what retryAfter says at t. */
type Step = ["f" | "s" | "?", number];

/** Replays steps through the pure functions; returns retry-after (ms) at each step. */
function replay(steps: Step[], policy = P): number[] {
  let rec: SourceRecord | undefined;
  return steps.map(([op, t]) => {
    if (op === "f") rec = afterFailure(rec, t, policy);
    if (op === "s") rec = undefined;
    return retryAfterOf(rec, t);
  });
}

describe("failure decisions (pure)", () => {
  /** A refusal longer than the window, to show quiet time is counted from the refusal's end. */
  const LONG: FailurePolicy = { maxFailures: 1, windowMs: 100, baseBlockMs: 200, maxBlockMs: 1000 };
  it.each<[string, Step[], number[], FailurePolicy?]>([
    ["no record may try", [["?", 0]], [0]],
    ["under the limit may try", [["f", 0], ["f", 1]], [0, 0]],
    ["the limit'th failure refuses for the base time", [["f", 0], ["f", 0], ["f", 0]], [0, 0, 100]],
    ["the refusal runs down", [["f", 0], ["f", 0], ["f", 0], ["?", 60], ["?", 100]], [0, 0, 100, 40, 0]],
    ["each failure past the limit doubles", [["f", 0], ["f", 0], ["f", 0], ["f", 100], ["f", 300]], [0, 0, 100, 200, 350]],
    ["the doubling is capped", [["f", 0], ["f", 0], ["f", 0], ["f", 0], ["f", 0], ["f", 0]], [0, 0, 100, 200, 350, 350]],
    ["a success forgets everything", [["f", 0], ["f", 0], ["s", 1], ["f", 2], ["f", 3]], [0, 0, 0, 0, 0]],
    ["a quiet window forgets", [["f", 0], ["f", 0], ["f", 1001]], [0, 0, 0]],
    ["failures closer than the window keep adding up", [["f", 0], ["f", 900], ["f", 1800]], [0, 0, 100]],
    ["after a refusal ends, the next failure refuses again, longer", [["f", 0], ["f", 0], ["f", 0], ["?", 150], ["f", 150]], [0, 0, 100, 0, 200]],
    ["quiet time counts from the refusal's end", [["f", 0], ["f", 0], ["f", 0], ["f", 1050]], [0, 0, 100, 200]],
    ["a refused source quiet for the window after its refusal starts over", [["f", 0], ["f", 0], ["f", 0], ["f", 1101]], [0, 0, 100, 0]],
    ["a refusal longer than the window does not forget: the next failure doubles it", [["f", 0], ["?", 199], ["f", 250], ["f", 700]], [200, 1, 400, 800], LONG],
    ["the window after a long refusal's end forgets it", [["f", 0], ["f", 301]], [200, 200], LONG],
  ])("%s", (_name, steps, want, policy) => {
    expect(replay(steps, policy)).toEqual(want);
  });

  it("a huge number of failures stays a finite, capped refusal", () => {
    let rec: SourceRecord | undefined;
    for (let i = 0; i < 5000; i++) rec = afterFailure(rec, 0, DEFAULT_FAILURE_POLICY);
    expect(retryAfterOf(rec, 0)).toBe(DEFAULT_FAILURE_POLICY.maxBlockMs);
  });

  it.each([
    [1, 1],
    [999, 1],
    [1000, 1],
    [1001, 2],
    [900_000, 900],
  ])("Retry-After for %i ms is %i s", (ms, s) => {
    expect(retryAfterSeconds(ms)).toBe(s);
  });
});

describe("the limiter (sources, memory)", () => {
  it("keeps sources apart and says when a failure started a refusal", () => {
    let t = 0;
    const l = createFailureLimiter({ ...P, now: () => t });
    expect([l.fail("a"), l.fail("a")].map((o) => o.blockedNow)).toEqual([false, false]);
    expect(l.fail("a")).toEqual({ failures: 3, retryAfterMs: 100, blockedNow: true });
    expect(l.fail("a")).toEqual({ failures: 4, retryAfterMs: 200, blockedNow: false });
    expect(l.retryAfterMs("b")).toBe(0);
    t = 250;
    expect(l.retryAfterMs("a")).toBe(0);
    expect(l.fail("a")).toMatchObject({ failures: 5, retryAfterMs: 350, blockedNow: true });
    l.succeed("a");
    expect(l.retryAfterMs("a")).toBe(0);
    expect(l.size()).toBe(0);
  });

  it("10,000 rotating sources never hold more than the bound; the least recently failed go first", () => {
    const l = createFailureLimiter({ ...P, maxSources: 500 });
    let most = 0;
    for (let i = 0; i < 10_000; i++) {
      l.fail(`10.0.${i >> 8}.${i & 255}`);
      most = Math.max(most, l.size());
    }
    expect(most).toBe(500);
    expect(l.size()).toBe(500);
    // The newest are kept: the last source's count continues; the first one's was forgotten.
    expect(l.fail(`10.0.${9999 >> 8}.${9999 & 255}`).failures).toBe(2);
    expect(l.fail("10.0.0.0").failures).toBe(1);
  });

  it("the default bound is 10,000 sources", () => {
    const l = createFailureLimiter();
    for (let i = 0; i < 12_000; i++) l.fail(`s${i}`);
    expect(l.size()).toBe(10_000);
  });
});
