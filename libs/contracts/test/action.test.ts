import { describe, expect, it } from "vitest";
import { ActionState, transition, type TransitionEvent } from "@steward/contracts/action";

const allowed: [ActionState, TransitionEvent["type"], ActionState][] = [
  ["pending", "approve", "approved"],
  ["pending", "reject", "rejected"],
  ["pending", "expire", "expired"],
  ["approved", "expire", "expired"],
  ["approved", "start_run", "running"],
  ["running", "succeed", "succeeded"],
  ["running", "fail", "failed"],
  ["running", "lose_executor", "failed_unknown"],
];

describe("action state machine", () => {
  it.each(allowed)("%s --%s--> %s", (from, ev, to) => {
    expect(transition(from, { type: ev })).toEqual({ ok: true, to });
  });

  const events: TransitionEvent["type"][] = ["approve", "reject", "expire", "start_run", "succeed", "fail", "lose_executor"];
  const disallowed = ActionState.options.flatMap((from) =>
    events.filter((ev) => !allowed.some(([f, e]) => f === from && e === ev)).map((ev) => [from, ev] as const),
  );
  it.each(disallowed)("%s --%s--> refused", (from, ev) => {
    expect(transition(from, { type: ev })).toEqual({ ok: false, reason: "invalid_transition", from, event: ev });
  });

  it("terminal states accept nothing", () => {
    for (const s of ["rejected", "expired", "succeeded", "failed", "failed_unknown"] as const) {
      for (const ev of events) expect(transition(s, { type: ev }).ok).toBe(false);
    }
  });
});
