import { describe, expect, it } from "vitest";
import { staleCheckTime, type StreamPosition } from "../src/stale-clock.js";

const NOW = new Date("2026-12-01T12:00:00.000Z");
const at = (s: number) => NOW.getTime() - s * 1000;
const STUCK_MS = 15_000;
/** Processed a moment ago: catching up. */
const fresh = at(0.05);

describe("staleCheckTime: the time a node's silence is judged against", () => {
  const cases: [string, StreamPosition, Date | undefined][] = [
    ["caught up: the wall clock", { streamTimeMs: at(30), pending: 0, processedAtMs: at(30) }, NOW],
    ["caught up at activation, nothing folded yet: the wall clock (agents that went quiet meanwhile are noticed)", { streamTimeMs: undefined, pending: 0, processedAtMs: fresh }, NOW],
    ["behind: when the last folded message entered the stream", { streamTimeMs: at(42), pending: 9_000, processedAtMs: fresh }, new Date(at(42))],
    ["behind by one message: still the stream's time", { streamTimeMs: at(0.2), pending: 1, processedAtMs: fresh }, new Date(at(0.2))],
    ["behind with nothing folded yet: no judgement", { streamTimeMs: undefined, pending: 25_000, processedAtMs: fresh }, undefined],
    ["behind, last progress 14 s ago: still catching up", { streamTimeMs: at(60), pending: 40, processedAtMs: at(14) }, new Date(at(60))],
    ["behind with no progress for longer than stuckMs: stuck, the wall clock", { streamTimeMs: at(60), pending: 40, processedAtMs: at(16) }, NOW],
    ["nothing folded since activation 16 s ago although messages are pending: stuck, the wall clock", { streamTimeMs: undefined, pending: 25_000, processedAtMs: at(16) }, NOW],
    ["a server clock ahead of this one: never later than now", { streamTimeMs: at(-5), pending: 3, processedAtMs: fresh }, NOW],
    ["pending unknown (-1, as the client may say): judged as caught up, never silenced", { streamTimeMs: at(10), pending: -1, processedAtMs: fresh }, NOW],
  ];
  it.each(cases)("%s", (_name, position, want) => {
    expect(staleCheckTime(NOW, position, STUCK_MS)).toEqual(want);
  });
});
