import { describe, expect, it } from "vitest";
import type { NodeState, ServiceState } from "@steward/contracts/world-state";
import { chooseLivenessWrites, createPositionLog, firstUnwrittenSeq, livenessOnly } from "../src/liveness.js";

const T0 = "2026-12-01T00:00:00.000Z";
const T1 = "2026-12-01T00:00:05.000Z";

function svc(over: Partial<ServiceState> = {}): ServiceState {
  return { name: "web", state: "running", health: "healthy", pid: 10, starts: 1, declared: true, since: T0, updated_at: T0, checks: { http: { ok: true, consecutive_failures: 0, at: T0 } }, last_event_id: "e1", ...over };
}

function node(over: Partial<NodeState> = {}): NodeState {
  return { name: "n1", status: "up", last_heartbeat: T0, heartbeat_interval_ms: 5000, agent_started_at: T0, dropped_events: 0, host: null, services: { web: svc() }, recent_event_ids: ["e1"], recent_event_seqs: [7], ...over };
}

/** What a heartbeat restating the record changes: the heartbeat, restatement times, host figures, recent ids. */
const restated = node({
  last_heartbeat: T1,
  host: { load1: 0.4, mem_used_pct: 31, disks: [], at: T1 },
  services: { web: svc({ updated_at: T1, last_event_id: "e2", traceparent: "00-aa-bb-01", checks: { http: { ok: true, consecutive_failures: 0, at: T1 } } }) },
  recent_event_ids: ["e1", "e2"],
  recent_event_seqs: [7, 9],
});

describe("livenessOnly: what a write may leave for later", () => {
  const written = node();
  const cases: [string, NodeState, boolean][] = [
    ["the same object", written, true],
    ["a heartbeat restating every service and check", restated, true],
    ["a service's state", node({ services: { web: svc({ state: "exited", exit_code: 1 }) } }), false],
    ["a service's health", node({ services: { web: svc({ health: "unhealthy" }) } }), false],
    ["a new pid (a restart)", node({ services: { web: svc({ pid: 11, starts: 2 }) } }), false],
    ["a service's detail appears", node({ services: { web: svc({ detail: "exited 1" }) } }), false],
    ["a check's result", node({ services: { web: svc({ checks: { http: { ok: false, consecutive_failures: 1, at: T1 } } }) } }), false],
    ["a failing check's count", node({ services: { web: svc({ checks: { http: { ok: true, consecutive_failures: 0, detail: "slow", at: T1 } } }) } }), false],
    ["a new check", node({ services: { web: svc({ checks: { http: { ok: true, consecutive_failures: 0, at: T0 }, tcp: { ok: true, consecutive_failures: 0, at: T1 } } }) } }), false],
    ["a new service", node({ services: { web: svc(), db: svc({ name: "db" }) } }), false],
    ["a service gone", node({ services: {} }), false],
    ["the node stale", node({ status: "stale" }), false],
    ["the agent restarted", node({ agent_started_at: T1 }), false],
    ["events dropped by the agent", node({ dropped_events: 3 }), false],
    ["a new heartbeat interval", node({ heartbeat_interval_ms: 1000 }), false],
    ["a repo report", node({ repo: { path: "/srv", branch: "main", head: "a", remote_head: "a", behind: 0, ahead: 0, dirty: [], colliding_untracked: [], ignored_count: 0, error: null, at: T1 } }), false],
    ["a secret report", node({ secrets: { token: { env: { status: "ok", fingerprint: "f", at: T1 } } } }), false],
  ];
  it.each(cases)("%s → %s", (_what, next, expected) => {
    expect(livenessOnly(written, next)).toBe(expected);
  });
});

describe("chooseLivenessWrites: overdue first, then the least recently written within the budget", () => {
  const c = (name: string, writtenAt: number) => ({ name, writtenAt });
  const cases: [string, ReturnType<typeof c>[], now: number, tokens: number, maxAgeMs: number, string[]][] = [
    ["nothing waits", [], 0, 5, 10_000, []],
    ["no budget, nothing overdue", [c("a", 900), c("b", 950)], 1000, 0, 10_000, []],
    ["no budget, one overdue", [c("a", 900), c("b", 950)], 1000, 0, 100, ["a"]],
    ["budget 1: the oldest", [c("b", 950), c("a", 940)], 1000, 1, 10_000, ["a"]],
    ["budget 1.9 counts as 1", [c("b", 950), c("a", 940)], 1000, 1.9, 10_000, ["a"]],
    ["budget larger than the queue", [c("b", 950), c("a", 940)], 1000, 10, 10_000, ["a", "b"]],
    ["overdue ones do not wait for budget", [c("a", 800), c("b", 850), c("c", 950), c("d", 960)], 1000, 1, 100, ["a", "b", "c"]],
    ["ties by name", [c("b", 950), c("a", 950)], 1000, 1, 10_000, ["a"]],
  ];
  it.each(cases)("%s", (_what, candidates, now, tokens, maxAgeMs, expected) => {
    expect(chooseLivenessWrites(candidates, now, tokens, maxAgeMs)).toEqual(expected);
  });
});

describe("firstUnwrittenSeq: where a waiting node's unwritten part starts", () => {
  it.each([
    ["the next message", [7], [7, 9, 12], 9],
    ["nothing newer", [7, 9], [7, 9], undefined],
    ["the written ones scrolled out of the window: unknown, so it cannot wait", [3, 5], [8, 9], null],
    ["a window of 64 that begins just past the written one: unknown too (one may be missing)", [5], Array.from({ length: 64 }, (_, i) => 7 + i), null],
    ["a record without sequences: unknown", undefined, [4], null],
  ] as const)("%s", (_what, done, next, expected) => {
    expect(firstUnwrittenSeq(node({ recent_event_seqs: done ? [...done] : undefined, recent_event_ids: done?.map(String) }), node({ recent_event_seqs: [...next], recent_event_ids: next.map(String) }))).toBe(expected);
  });
});

describe("PositionLog: the counters after each message", () => {
  it("answers for any sequence it reaches, from the newest message at or below it, and keeps that one when trimmed", () => {
    const log = createPositionLog({ last_seq: 10, events_applied: 8, event_time: T0 });
    log.record({ last_seq: 11, events_applied: 9, event_time: T0 });
    log.record({ last_seq: 14, events_applied: 10, event_time: T1 });
    // A message at or below the newest recorded one is not recorded again.
    log.record({ last_seq: 14, events_applied: 99, event_time: T1 });
    expect(log.at(9)).toBeUndefined();
    expect(log.at(10)).toEqual({ last_seq: 10, events_applied: 8, event_time: T0 });
    // 12 and 13 were not recorded (skipped messages move nothing): the position after 11 holds for them.
    expect(log.at(13)).toEqual({ last_seq: 13, events_applied: 9, event_time: T0 });
    expect(log.at(20)).toEqual({ last_seq: 20, events_applied: 10, event_time: T1 });
    log.trimTo(13);
    expect(log.at(10)).toBeUndefined();
    expect(log.at(13)).toEqual({ last_seq: 13, events_applied: 9, event_time: T0 });
    expect(log.size()).toBe(2);
    log.reset({ last_seq: 50, events_applied: 40, event_time: null });
    expect(log.at(49)).toBeUndefined();
    expect(log.at(50)).toEqual({ last_seq: 50, events_applied: 40, event_time: null });
  });

  it("stays small over a long run when trimmed behind it", () => {
    const log = createPositionLog({ last_seq: 0, events_applied: 0, event_time: null });
    for (let s = 1; s <= 100_000; s++) {
      log.record({ last_seq: s, events_applied: s, event_time: null });
      if (s % 100 === 0) log.trimTo(s - 50);
    }
    expect(log.size()).toBeLessThanOrEqual(51);
    expect(log.at(99_990)?.events_applied).toBe(99_990);
  });
});
