import { describe, expect, it } from "vitest";
import { REPO_SERVICE } from "@steward/contracts/drift";
import type { NodeState, Snapshot } from "@steward/contracts/world-state";
import { commandMark, judgeWorld } from "../src/verify.js";

type Repo = NonNullable<NodeState["repo"]>;
const SENT = new Date("2026-01-01T00:00:10.000Z");
const A = "a".repeat(40);
const B = "b".repeat(40);

function snap(repo: Partial<Repo> | null, status: NodeState["status"] = "up"): Snapshot {
  const r: Repo | null = repo && { path: "/srv/deploy", branch: "main", head: B, remote_head: B, behind: 0, ahead: 0, dirty: [], colliding_untracked: [], ignored_count: 1, error: null, at: "2026-01-01T00:00:11.000Z", ...repo };
  return {
    world: { version: 1, last_seq: 1, events_applied: 1, event_time: null, nodes: { web1: { name: "web1", status, last_heartbeat: null, heartbeat_interval_ms: 5000, agent_started_at: null, dropped_events: 0, host: null, services: {}, ...(r ? { repo: r } : {}) } } },
    written_at: "2026-01-01T00:00:12.000Z",
    observer_id: "o",
  };
}

const target = { node: "web1", service: REPO_SERVICE, kind: "pull" as const };

describe("judgeWorld for pull", () => {
  it.each([
    ["a report after the command at the remote head", snap({}), true, /at the remote head bbbbbbbbbbbb/],
    ["a report from before the command", snap({ head: A, behind: 1, at: "2026-01-01T00:00:09.000Z" }), false, /before the command was sent/],
    ["still behind", snap({ head: A, behind: 1 }), false, /is at aaaaaaaaaaaa, the remote branch at bbbbbbbbbbbb \(1 behind/],
    ["no checkout reported", snap(null), false, /has not reported its deploy checkout/],
    ["stale node", snap({}, "stale"), false, /stale/],
    ["head unknown", snap({ head: null, error: "the checkout has no commit" }), false, /no commit/],
  ])("%s", (_name, s, ok, text) => {
    const v = judgeWorld(s, target, commandMark(SENT, null));
    expect(v.ok).toBe(ok);
    expect(v.ok ? v.detail : v.seen).toMatch(text);
  });

  // With the reply's events_seq the report's time no longer matters: the world must hold the report after the pull.
  const at = (seq: number, s: Snapshot): Snapshot => ({ ...s, world: { ...s.world, last_seq: seq } });
  it.each([
    ["world not yet at the reply's seq (an old report says behind)", at(4, snap({ head: A, behind: 1 })), false, /folded events up to seq 4, not yet up to seq 5/],
    ["world at the seq, at the remote head (report time-stamped before the send: clocks differ)", at(5, snap({ at: "2026-01-01T00:00:09.000Z" })), true, /at the remote head/],
    ["world past the seq, still behind", at(9, snap({ head: A, behind: 1 })), false, /is at aaaaaaaaaaaa/],
  ])("by sequence: %s", (_name, s, ok, text) => {
    const v = judgeWorld(s, target, commandMark(SENT, 5));
    expect(v.ok).toBe(ok);
    expect(v.ok ? v.detail : v.seen).toMatch(text);
  });
});
