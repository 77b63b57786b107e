import { describe, expect, it } from "vitest";
import type { ServiceState, Snapshot } from "@steward/contracts/world-state";
import { commandMark, judgeDeployed, judgeWorld, type CommandMark } from "../src/verify.js";
import { service, snapshot } from "./helpers.js";

const sent = new Date("2030-01-01T00:00:10.000Z");
const before = "2030-01-01T00:00:05.000Z";
const after = "2030-01-01T00:00:11.000Z";

const stale = (s: Snapshot): Snapshot => {
  const n = s.world.nodes["n1"];
  if (n) n.status = "stale";
  return s;
};

const cases: { name: string; snap: Snapshot | undefined; kind?: "start" | "restart" | "stop"; ok: boolean; says: RegExp }[] = [
  { name: "no snapshot", snap: undefined, ok: false, says: /no world snapshot/ },
  { name: "node absent", snap: snapshot({ other: [service("web")] }), ok: false, says: /node 'n1' is not in/ },
  { name: "node stale", snap: stale(snapshot({ n1: [service("web", { since: after, updated_at: after })] })), ok: false, says: /stale/ },
  { name: "service absent", snap: snapshot({ n1: [service("db")] }), ok: false, says: /n1\/web is not in/ },
  { name: "running+healthy but observed before the command", snap: snapshot({ n1: [service("web", { since: before, updated_at: before })] }), ok: false, says: /before the command/ },
  { name: "running+healthy after the command", snap: snapshot({ n1: [service("web", { since: after, updated_at: after })] }), ok: true, says: /running and healthy/ },
  { name: "running since before, updated after", snap: snapshot({ n1: [service("web", { since: before, updated_at: after })] }), ok: true, says: /healthy/ },
  { name: "running, health none, no checks", snap: snapshot({ n1: [service("web", { since: after, updated_at: after, health: "none", checks: {} })] }), ok: true, says: /no health checks/ },
  {
    name: "running, health none but has checks",
    snap: snapshot({ n1: [service("web", { since: after, updated_at: after, health: "none", checks: { http: { ok: true, consecutive_failures: 0, at: after } } })] }),
    ok: false,
    says: /running but none/,
  },
  {
    name: "running but unhealthy names the failing check",
    snap: snapshot({ n1: [service("web", { since: after, updated_at: after, health: "unhealthy", checks: { http: { ok: false, consecutive_failures: 3, at: after, detail: "connection refused" } } })] }),
    ok: false,
    says: /unhealthy \(failing: http: connection refused\)/,
  },
  { name: "starting", snap: snapshot({ n1: [service("web", { since: after, updated_at: after, state: "starting", health: "starting" })] }), ok: false, says: /is starting\/starting/ },
  { name: "exited with detail", snap: snapshot({ n1: [service("web", { since: after, updated_at: after, state: "exited", detail: "exit 1" })] }), ok: false, says: /exited\/healthy \(exit 1\)/ },
  { name: "stop: stopped after the command", kind: "stop", snap: snapshot({ n1: [service("web", { since: after, updated_at: after, state: "stopped", health: "none" })] }), ok: true, says: /is stopped/ },
  { name: "stop: still running", kind: "stop", snap: snapshot({ n1: [service("web", { since: after, updated_at: after })] }), ok: false, says: /not stopped/ },
];

/** The world folded up to stream sequence `seq`. */
const at = (seq: number, s: Snapshot): Snapshot => ({ ...s, world: { ...s.world, last_seq: seq } });
/** n1's record lists the stream sequences of its newest folded events. */
const folded = (s: Snapshot, seqs: number[]): Snapshot => {
  const n = s.world.nodes["n1"];
  if (n) Object.assign(n, { recent_event_seqs: seqs, recent_event_ids: seqs.map((q) => `e${q}`) });
  return s;
};
const byTime = commandMark(sent, undefined);
const bySeq = (seq: number): CommandMark => commandMark(sent, seq);

describe("judgeWorld", () => {
  it.each(cases)("$name", ({ snap, kind, ok, says }) => {
    const v = judgeWorld(snap, { node: "n1", service: "web", kind: kind ?? "restart" }, byTime);
    expect(v.ok).toBe(ok);
    expect(v.ok ? v.detail : v.seen).toMatch(says);
  });

  // With the node's events_seq, time no longer decides: the world must have folded the node's report after the command.
  const seqCases: { name: string; snap: Snapshot; mark: CommandMark; kind?: "restart" | "stop"; ok: boolean; says: RegExp }[] = [
    { name: "world behind the reply's seq, already healthy", snap: at(41, snapshot({ n1: [service("web", { since: after, updated_at: after })] })), mark: bySeq(42), ok: false, says: /folded events up to seq 41, not yet up to seq 42/ },
    { name: "world at the reply's seq, healthy", snap: at(42, snapshot({ n1: [service("web", { since: before, updated_at: before })] })), mark: bySeq(42), ok: true, says: /running and healthy/ },
    { name: "world past the reply's seq, exited", snap: at(50, snapshot({ n1: [service("web", { since: after, updated_at: after, state: "exited" })] })), mark: bySeq(42), ok: false, says: /is exited/ },
    { name: "stop: world at the seq, stopped", kind: "stop", snap: at(42, snapshot({ n1: [service("web", { state: "stopped", health: "none" })] })), mark: bySeq(42), ok: true, says: /is stopped/ },
    { name: "stale node even past the seq", snap: at(99, stale(snapshot({ n1: [service("web")] }))), mark: bySeq(42), ok: false, says: /stale/ },
    // A big fleet's header trails while other nodes' liveness waits for its write: the node's own record says where it is folded to.
    { name: "header behind, the node's record folded past the seq", snap: folded(at(30, snapshot({ n1: [service("web", { since: before, updated_at: before })] })), [40, 43]), mark: bySeq(42), ok: true, says: /running and healthy/ },
    { name: "header behind, the node's record short of the seq", snap: folded(at(30, snapshot({ n1: [service("web", { since: after, updated_at: after })] })), [40, 41]), mark: bySeq(42), ok: false, says: /not yet up to seq 42/ },
  ];
  it.each(seqCases)("by sequence: $name", ({ snap, mark, kind, ok, says }) => {
    const v = judgeWorld(snap, { node: "n1", service: "web", kind: kind ?? "restart" }, mark);
    expect(v.ok).toBe(ok);
    expect(v.ok ? v.detail : v.seen).toMatch(says);
  });

  // Verification follows the world: what the node reported after the command (placed by sequence) and that waiting
  // cannot mend ends a start/restart at once; everything else waits for success or the timeout.
  const finalCases: { name: string; svc: Partial<ServiceState>; seq?: number; mark?: CommandMark; kind?: "start" | "restart" | "stop"; final: boolean; says: RegExp }[] = [
    { name: "exited, with its exit code", svc: { state: "exited", health: "none", exit_code: 3, signal: null }, final: true, says: /is exited\/none \(exit code 3\)/ },
    { name: "exited, the agent's detail wins", svc: { state: "exited", health: "none", exit_code: 1, detail: "exited with code 1" }, final: true, says: /\(exited with code 1\)/ },
    { name: "killed by a signal", svc: { state: "exited", health: "none", exit_code: null, signal: "SIGKILL" }, final: true, says: /killed by SIGKILL/ },
    { name: "failed to spawn", svc: { state: "failed", health: "none", detail: "cannot start: ENOENT" }, final: true, says: /failed\/none \(cannot start: ENOENT\)/ },
    { name: "stopped", svc: { state: "stopped", health: "none" }, final: true, says: /is stopped/ },
    { name: "start: exited", kind: "start", svc: { state: "exited", health: "none", exit_code: 1 }, final: true, says: /exit code 1/ },
    {
      name: "running but unhealthy after failures",
      svc: { health: "unhealthy", checks: { http: { ok: false, consecutive_failures: 3, at: after, detail: "ECONNREFUSED" } } },
      final: true,
      says: /unhealthy \(failing: http: ECONNREFUSED\)/,
    },
    {
      name: "running, one failure, health still starting: waits",
      svc: { health: "starting", checks: { http: { ok: false, consecutive_failures: 1, at: after } } },
      final: false,
      says: /running but starting/,
    },
    { name: "starting: waits", svc: { state: "starting", health: "starting" }, final: false, says: /starting\/starting/ },
    { name: "unknown (engine silent): waits", svc: { state: "unknown", health: "unknown" }, final: false, says: /unknown\/unknown/ },
    { name: "world not yet at the reply's seq, exited: waits", svc: { state: "exited", health: "none" }, seq: 41, final: false, says: /not yet up to seq 42/ },
    { name: "placed only by time, exited: waits (a heartbeat during the command looks new)", svc: { state: "exited", health: "none", since: after, updated_at: after }, mark: byTime, final: false, says: /is exited/ },
    { name: "stop: still running is not final", kind: "stop", svc: {}, final: false, says: /not stopped/ },
  ];
  it.each(finalCases)("final: $name", ({ svc, seq, mark, kind, final, says }) => {
    const v = judgeWorld(at(seq ?? 50, snapshot({ n1: [service("web", svc)] })), { node: "n1", service: "web", kind: kind ?? "restart" }, mark ?? bySeq(42));
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.final ?? false).toBe(final);
    expect(v.seen).toMatch(says);
  });

  it("a healthy service is never final (success still needs the checks to pass)", () => {
    expect(judgeWorld(at(50, snapshot({ n1: [service("web")] })), { node: "n1", service: "web", kind: "restart" }, bySeq(42)).ok).toBe(true);
  });
});

describe("judgeWorld with a settle window: a started service must be seen running through it", () => {
  // `since` and `updated_at` are the node's times: it began running at 00:00:11, and was last observed at `updated_at`.
  const began = "2030-01-01T00:00:11.000Z";
  const inside = { since: began, updated_at: "2030-01-01T00:00:12.500Z" };
  const through = { since: began, updated_at: "2030-01-01T00:00:13.000Z" };
  // The executor's clock is past the reply plus the window, except where a case says otherwise.
  const settle = { ms: 2000, now: new Date("2030-01-01T00:00:14.000Z"), until: new Date("2030-01-01T00:00:13.500Z") };
  const early = { ...settle, now: new Date("2030-01-01T00:00:13.000Z") };
  const noChecks: Partial<ServiceState> = { health: "none", checks: {} };
  const cases: { name: string; svc: Partial<ServiceState>; kind?: "start" | "restart" | "stop"; at?: typeof settle; ok: boolean; final?: boolean; says: RegExp }[] = [
    { name: "running without checks, seen only inside the window: waits", svc: { ...noChecks, ...inside }, ok: false, final: false, says: /has no health checks; settling: the node has seen it running for 1500 ms of the 2000 ms it must stay up \(running since 2030-01-01T00:00:11.000Z, last observed 2030-01-01T00:00:12.500Z\)/ },
    // A container restarted between two observations: `since` predates the command, so the executor's clock decides.
    { name: "running since before the command, executor's window not over: waits", svc: { ...noChecks, since: "2030-01-01T00:00:01.000Z", updated_at: "2030-01-01T00:00:12.000Z" }, at: early, ok: false, final: false, says: /settling: it must stay running until 2030-01-01T00:00:13.500Z \(500 ms more\)/ },
    { name: "running since before the command, executor's window over: verified", svc: { ...noChecks, since: "2030-01-01T00:00:01.000Z", updated_at: "2030-01-01T00:00:12.000Z" }, ok: true, says: /stayed running through the settle window/ },
    { name: "running without checks, seen at the window's end: verified", svc: { ...noChecks, ...through }, ok: true, says: /has no health checks, and stayed running through the settle window/ },
    // The executor's clock being past the window proves nothing: the world it reads may not hold the exit yet.
    { name: "only its first observation, however late it is read: waits", svc: { ...noChecks, since: began, updated_at: began }, ok: false, final: false, says: /the node has seen it running for 0 ms/ },
    { name: "healthy, seen only inside the window: waits", svc: inside, ok: false, final: false, says: /healthy; settling/ },
    { name: "healthy, seen at the window's end: verified", svc: through, ok: true, says: /running and healthy, and stayed running/ },
    { name: "exited inside the window: failed at once, naming the exit", svc: { ...noChecks, state: "exited", exit_code: 4, since: "2030-01-01T00:00:11.300Z", updated_at: "2030-01-01T00:00:11.300Z" }, ok: false, final: true, says: /is exited\/none \(exit code 4\)/ },
    { name: "times the world cannot read: waits", svc: { ...noChecks, since: "never", updated_at: "2030-01-01T00:00:13.000Z" }, ok: false, final: false, says: /the node has seen it running for an unknown time/ },
    { name: "start: same window", kind: "start", svc: { ...noChecks, ...inside }, ok: false, final: false, says: /settling/ },
    { name: "stop: no window", kind: "stop", svc: { state: "stopped", health: "none", ...inside }, ok: true, says: /is stopped/ },
  ];
  it.each(cases)("$name", ({ svc, kind, at: when, ok, final, says }) => {
    const v = judgeWorld(at(50, snapshot({ n1: [service("web", svc)] })), { node: "n1", service: "web", kind: kind ?? "restart" }, bySeq(42), when ?? settle);
    expect(v.ok).toBe(ok);
    expect(v.ok ? v.detail : v.seen).toMatch(says);
    if (!v.ok) expect(v.final ?? false).toBe(final);
  });
});

describe("judgeDeployed", () => {
  const shop = (over: Parameters<typeof service>[1] = {}) => service("shop", { since: after, updated_at: after, config_hash: "h2", desired_config_hash: "h2", ...over });
  const cases: { name: string; snap: Snapshot | undefined; mark: CommandMark; want: { ok: boolean; final?: boolean }; says: RegExp }[] = [
    // The race of issue 16: a heartbeat during the deploy restates the old `stopped` with a new time.
    { name: "heartbeat during the deploy restating stopped, world not yet at the reply's seq", snap: at(10, snapshot({ a: [shop({ state: "stopped", health: "none", config_hash: "h1" })] })), mark: bySeq(12), want: { ok: false, final: false }, says: /not yet up to seq 12/ },
    { name: "the same heartbeat, node gave no seq: by time, never final", snap: at(10, snapshot({ a: [shop({ state: "stopped", health: "none", config_hash: "h1" })] })), mark: byTime, want: { ok: false, final: false }, says: /is stopped/ },
    { name: "stopped once the world holds the node's report after the deploy: final", snap: at(12, snapshot({ a: [shop({ state: "stopped", health: "none" })] })), mark: bySeq(12), want: { ok: false, final: true }, says: /is stopped/ },
    { name: "unhealthy after the deploy: final", snap: at(13, snapshot({ a: [shop({ health: "unhealthy", detail: "healthcheck failed" })] })), mark: bySeq(12), want: { ok: false, final: true }, says: /unhealthy \(healthcheck failed\)/ },
    { name: "healthy on the new hash, by seq", snap: at(12, snapshot({ a: [shop({ since: before, updated_at: before })] })), mark: bySeq(12), want: { ok: true }, says: /running and healthy with config h2/ },
    { name: "healthy on the new hash, by time", snap: snapshot({ a: [shop()] }), mark: byTime, want: { ok: true }, says: /running and healthy/ },
    { name: "observed before the command, by time", snap: snapshot({ a: [shop({ since: before, updated_at: before })] }), mark: byTime, want: { ok: false, final: false }, says: /before the command was sent/ },
    { name: "still deploying", snap: at(12, snapshot({ a: [shop({ state: "starting", health: "starting" })] })), mark: bySeq(12), want: { ok: false, final: false }, says: /still deploying/ },
    { name: "health starting", snap: at(12, snapshot({ a: [shop({ health: "starting" })] })), mark: bySeq(12), want: { ok: false, final: false }, says: /health starting/ },
    { name: "running the old hash", snap: at(12, snapshot({ a: [shop({ config_hash: "h1" })] })), mark: bySeq(12), want: { ok: false, final: false }, says: /runs config h1, not h2/ },
    { name: "node absent", snap: at(12, snapshot({ n1: [shop()] })), mark: bySeq(1), want: { ok: false, final: false }, says: /node .a. is not in the world/ },
    { name: "no snapshot", snap: undefined, mark: bySeq(1), want: { ok: false, final: false }, says: /no world snapshot/ },
  ];
  it.each(cases)("$name", ({ snap, mark, want, says }) => {
    const v = judgeDeployed(snap, "a", "shop", mark);
    expect(v).toMatchObject(want);
    expect(v.ok ? v.detail : v.seen).toMatch(says);
  });
  it("a stale node never passes, even past the seq", () => {
    const s = at(50, snapshot({ a: [shop()] }));
    (s.world.nodes["a"] as { status: string }).status = "stale";
    expect(judgeDeployed(s, "a", "shop", bySeq(12))).toMatchObject({ ok: false, final: false, seen: expect.stringMatching(/stale/) });
  });
});
