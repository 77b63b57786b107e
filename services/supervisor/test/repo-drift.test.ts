import { describe, expect, it } from "vitest";
import { REPO_SERVICE, type Drift } from "@steward/contracts/drift";
import type { NodeState } from "@steward/contracts/world-state";
import { computeDrift } from "@steward/fleet/diff";
import { classifyRepo, computeRepoDrift } from "@steward/fleet/repo-drift";
import { T0, node, snapshot, spec, svc } from "./fixtures.js";

type Repo = NonNullable<NodeState["repo"]>;
const A = "a".repeat(40);
const B = "b".repeat(40);
const repo = (over: Partial<Repo> = {}): Repo => ({
  path: "/srv/deploy",
  branch: "main",
  head: A,
  remote_head: A,
  behind: 0,
  ahead: 0,
  dirty: [],
  colliding_untracked: [],
  ignored_count: 3,
  error: null,
  at: T0,
  colliding_dirty: [],
  colliding_ignored: [],
  ...over,
});

const cases: { name: string; repo: Repo; want: Pick<Drift, "severity" | "proposes"> | null; message?: RegExp }[] = [
  { name: "at the remote head, clean: no drift", repo: repo(), want: null },
  { name: "behind: proposes pull", repo: repo({ remote_head: B, behind: 2 }), want: { severity: "action", proposes: "pull" }, message: /2 commit\(s\) behind the remote main \(aaaaaaaaaaaa → bbbbbbbbbbbb\); a pull fast-forwards it$/ },
  {
    name: "behind with colliding untracked files: names them, still proposes pull (quarantine)",
    repo: repo({ remote_head: B, behind: 1, colliding_untracked: ["stacks/app/config.yml", "stacks/app/nginx.conf"] }),
    want: { severity: "action", proposes: "pull" },
    message: /a plain git pull would fail: untracked files would be overwritten by the incoming commits: stacks\/app\/config\.yml, stacks\/app\/nginx\.conf\. The pull action moves them to a quarantine folder/,
  },
  {
    name: "behind with dirty tracked files the incoming commits change: alert only",
    repo: repo({ remote_head: B, behind: 1, dirty: ["a.yml", "b.yml"], colliding_dirty: ["a.yml"], colliding_untracked: ["c.yml"] }),
    want: { severity: "alert", proposes: null },
    message: /a pull would fail: local changes to tracked files the incoming commits also change: a\.yml .*; also untracked files in the way: c\.yml/,
  },
  { name: "behind with ignored files in the way: alert only", repo: repo({ remote_head: B, behind: 1, colliding_ignored: [".env"] }), want: { severity: "alert", proposes: null }, message: /git-ignored files where the incoming commits add files: \.env \(Steward never touches ignored files/ },
  { name: "ahead: alert, never a pull", repo: repo({ head: B, ahead: 1 }), want: { severity: "alert", proposes: null }, message: /1 local commit\(s\) that are not on the remote main: a pull is not a fast-forward/ },
  { name: "diverged: alert", repo: repo({ head: B, remote_head: "c".repeat(40), ahead: 1, behind: 3 }), want: { severity: "alert", proposes: null }, message: /has diverged from the remote main \(1 local commit\(s\) not on the remote, 3 incoming\)/ },
  { name: "probe error: alert", repo: repo({ error: "fetch from origin failed: timed out after 30000 ms" }), want: { severity: "alert", proposes: null }, message: /cannot be checked: fetch from origin failed/ },
  { name: "remote branch unknown: alert", repo: repo({ remote_head: null }), want: { severity: "alert", proposes: null }, message: /is not known/ },
  { name: "dirty but up to date: report", repo: repo({ dirty: ["README.md"] }), want: { severity: "report", proposes: null }, message: /local changes to tracked files: README\.md$/ },
  {
    name: "many paths are counted, not all named",
    repo: repo({ remote_head: B, behind: 1, colliding_untracked: ["1", "2", "3", "4", "5", "6", "7"] }),
    want: { severity: "action", proposes: "pull" },
    message: /1, 2, 3, 4, 5 and 2 more\./,
  },
];

describe("classifyRepo", () => {
  it.each(cases)("$name", ({ repo: r, want, message }) => {
    const d = classifyRepo("web1", r);
    if (want === null) return expect(d).toBeUndefined();
    expect(d).toMatchObject({ key: `repo_drift:web1/${REPO_SERVICE}`, kind: "repo_drift", node: "web1", service: REPO_SERVICE, since: T0, ...want });
    expect(d?.message).toMatch(message ?? /./);
  });
});

describe("computeRepoDrift", () => {
  const behind = repo({ remote_head: B, behind: 1 });
  const NOW = new Date(Date.parse(T0) + 1000);
  it("is part of computeDrift's output", () => {
    const drifts = computeDrift(spec({ web1: ["api"] }), snapshot([node("web1", [svc("api")], { repo: behind })]), NOW, { snapshotMaxAgeMs: 30_000 });
    expect(drifts.map((d) => [d.key, d.proposes])).toEqual([[`repo_drift:web1/${REPO_SERVICE}`, "pull"]]);
  });
  it("says nothing for stale nodes, undeclared nodes, nodes without a checkout, or a snapshot too old", () => {
    const s = spec({ web1: ["api"], web2: ["api"] });
    expect(computeRepoDrift(s, snapshot([node("web1", [svc("api")], { repo: behind, status: "stale" }), node("web2", [svc("api")])]), NOW, { snapshotMaxAgeMs: 30_000 })).toEqual([]);
    expect(computeRepoDrift(spec({ web2: ["api"] }), snapshot([node("web1", [svc("api")], { repo: behind })]), NOW, { snapshotMaxAgeMs: 30_000 })).toEqual([]);
    expect(computeRepoDrift(s, snapshot([node("web1", [svc("api")], { repo: behind })]), new Date(Date.parse(T0) + 60_000), { snapshotMaxAgeMs: 30_000 })).toEqual([]);
  });
});
