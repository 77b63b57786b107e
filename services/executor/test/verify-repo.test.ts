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
});
