import { describe, expect, it } from "vitest";
import { NodeEvent, type NodeEventInput } from "@steward/contracts/events";
import { WorldState, emptyWorld } from "@steward/contracts/world-state";
import { RECENT_EVENT_IDS, markStale, reduceWorld, seenInNode } from "../src/reduce.js";
import { makeEvents } from "./helpers.js";

const T0 = Date.parse("2025-01-01T00:00:00.000Z");
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
let n = 0;
const nextId = () => `evt-${String(++n).padStart(6, "0")}`;

function svc(node: string, s: number, service: string, state: "running" | "exited" | "stopped" | "failed" | "starting", extra: Partial<NodeEventInput> = {}): NodeEvent {
  return NodeEvent.parse({ type: "service", id: nextId(), node, ts: at(s), service, state, health: state === "running" ? "healthy" : "none", ...extra });
}
function hb(node: string, s: number, services: { service: string; state: string; health?: string; pid?: number }[] = [], extra: Record<string, unknown> = {}): NodeEvent {
  return NodeEvent.parse({
    type: "heartbeat",
    id: nextId(),
    node,
    ts: at(s),
    interval_ms: 5000,
    started_at: at(0),
    services: services.map((x) => ({ health: "none", ...x })),
    ...extra,
  });
}
function check(node: string, s: number, service: string, checkName: string, ok: boolean): NodeEvent {
  return NodeEvent.parse({ type: "health_check", id: nextId(), node, ts: at(s), service, check: checkName, ok, consecutive_failures: ok ? 0 : 1 });
}
function host(node: string, s: number, load1: number): NodeEvent {
  return NodeEvent.parse({ type: "host", id: nextId(), node, ts: at(s), load1, mem_used_pct: 10, disks: [{ path: "/", used_pct: 50, free_bytes: 1e9 }] });
}

/** Folds events with stream sequences 1..n (or the given ones). */
function fold(events: (NodeEvent | [NodeEvent, number])[], start: WorldState = emptyWorld()): WorldState {
  let w = start;
  let seq = start.last_seq;
  for (const e of events) {
    const [ev, s] = Array.isArray(e) ? e : [e, ++seq];
    seq = Math.max(seq, s);
    w = reduceWorld(w, ev, { seq: s, traceparent: `00-${"a".repeat(32)}-${String(s).padStart(16, "0")}-01` });
  }
  return w;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === "object") {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

describe("reduceWorld", () => {
  const a1 = svc("a", 10, "web", "running", { pid: 42 });

  const cases: { name: string; events: () => NodeEvent[]; expect: (w: WorldState) => void }[] = [
    {
      name: "first event creates the node; a service event upserts the service",
      events: () => [svc("a", 10, "web", "running", { pid: 42, starts: 1 })],
      expect: (w) => {
        const s = w.nodes["a"]?.services["web"];
        expect(w.nodes["a"]?.status).toBe("up");
        expect(w.nodes["a"]?.last_heartbeat).toBeNull();
        expect(s).toMatchObject({ name: "web", state: "running", health: "healthy", pid: 42, starts: 1, declared: true, since: at(10), updated_at: at(10) });
        expect(s?.traceparent).toMatch(/^00-a{32}-0{15}1-01$/);
        expect(w).toMatchObject({ last_seq: 1, events_applied: 1, event_time: at(10) });
      },
    },
    {
      name: "since moves only when the state changes; pid disappears when the event has none",
      events: () => [svc("a", 10, "web", "running", { pid: 42 }), svc("a", 20, "web", "running", { pid: 42, detail: "x" }), svc("a", 30, "web", "exited", { exit_code: 137, signal: "SIGKILL" })],
      expect: (w) => {
        const s = w.nodes["a"]?.services["web"];
        expect(s).toMatchObject({ state: "exited", since: at(30), updated_at: at(30), exit_code: 137, signal: "SIGKILL" });
        expect(s && "pid" in s).toBe(false);
        expect(s && "detail" in s).toBe(false);
      },
    },
    {
      name: "an older service event does not regress newer state",
      events: () => [svc("a", 30, "web", "exited"), svc("a", 20, "web", "running", { pid: 7 })],
      expect: (w) => {
        expect(w.nodes["a"]?.services["web"]).toMatchObject({ state: "exited", updated_at: at(30) });
        expect(w).toMatchObject({ last_seq: 2, events_applied: 2, event_time: at(30) });
      },
    },
    {
      name: "health_check updates the check; an older check result does not regress it",
      events: () => [svc("a", 5, "web", "running"), check("a", 10, "web", "http", false), check("a", 8, "web", "http", true), check("a", 9, "web", "tcp", true)],
      expect: (w) => {
        const c = w.nodes["a"]?.services["web"]?.checks;
        expect(c?.["http"]).toEqual({ ok: false, consecutive_failures: 1, at: at(10) });
        expect(c?.["tcp"]).toEqual({ ok: true, consecutive_failures: 0, at: at(9) });
        expect(w.nodes["a"]?.services["web"]?.state).toBe("running");
      },
    },
    {
      name: "a heartbeat restates each check's latest result: counts move between flips (the event said 1, three failures say 3)",
      events: () => [
        svc("a", 5, "web", "running"),
        check("a", 10, "web", "http", false),
        hb("a", 13, [{ service: "web", state: "running", health: "unhealthy" }], { checks: [{ service: "web", check: "http", ok: false, consecutive_failures: 3, detail: "ECONNREFUSED", at: at(12) }] }),
      ],
      expect: (w) => expect(w.nodes["a"]?.services["web"]?.checks["http"]).toEqual({ ok: false, consecutive_failures: 3, detail: "ECONNREFUSED", at: at(12) }),
    },
    {
      name: "a heartbeat's older check result never overrides a newer event",
      events: () => [
        svc("a", 5, "web", "running"),
        check("a", 20, "web", "http", true),
        hb("a", 21, [{ service: "web", state: "running" }], { checks: [{ service: "web", check: "http", ok: false, consecutive_failures: 4, at: at(19) }] }),
      ],
      expect: (w) => expect(w.nodes["a"]?.services["web"]?.checks["http"]).toEqual({ ok: true, consecutive_failures: 0, at: at(20) }),
    },
    {
      name: "a heartbeat without checks (an older agent) leaves the checks as they are",
      events: () => [svc("a", 5, "web", "running"), check("a", 10, "web", "http", false), hb("a", 13, [{ service: "web", state: "running" }])],
      expect: (w) => expect(w.nodes["a"]?.services["web"]?.checks["http"]).toEqual({ ok: false, consecutive_failures: 1, at: at(10) }),
    },
    {
      name: "a check before any observation makes the service unknown, and any later observation replaces that",
      events: () => [check("a", 10, "db", "tcp", true), svc("a", 5, "db", "running")],
      expect: (w) => {
        expect(w.nodes["a"]?.services["db"]).toMatchObject({ state: "running", updated_at: at(5) });
        expect(w.nodes["a"]?.services["db"]?.checks["tcp"]?.ok).toBe(true);
      },
    },
    {
      name: "service events keep checks",
      events: () => [check("a", 1, "web", "http", true), svc("a", 2, "web", "running"), svc("a", 3, "web", "failed")],
      expect: (w) => expect(Object.keys(w.nodes["a"]?.services["web"]?.checks ?? {})).toEqual(["http"]),
    },
    {
      name: "host sets host figures; an older one is ignored",
      events: () => [host("a", 10, 1.5), host("a", 5, 9)],
      expect: (w) => expect(w.nodes["a"]?.host).toEqual({ load1: 1.5, mem_used_pct: 10, disks: [{ path: "/", used_pct: 50, free_bytes: 1e9 }], at: at(10) }),
    },
    {
      name: "heartbeat sets node fields and restates services (repairs a missed event)",
      events: () => [svc("a", 10, "web", "running", { pid: 1 }), hb("a", 20, [{ service: "web", state: "exited" }, { service: "db", state: "running", health: "healthy", pid: 9 }], { dropped_events: 3, interval_ms: 2000 })],
      expect: (w) => {
        const node = w.nodes["a"];
        expect(node).toMatchObject({ status: "up", last_heartbeat: at(20), heartbeat_interval_ms: 2000, agent_started_at: at(0), dropped_events: 3 });
        expect(node?.services["web"]).toMatchObject({ state: "exited", since: at(20), updated_at: at(20) });
        expect(node?.services["db"]).toMatchObject({ state: "running", health: "healthy", pid: 9, since: at(20) });
      },
    },
    {
      name: "a heartbeat that restates nothing new only bumps updated_at (keeps the event id and trace of the change)",
      events: () => [svc("a", 10, "web", "running", { pid: 1 }), hb("a", 20, [{ service: "web", state: "running", health: "healthy", pid: 1 }])],
      expect: (w) => {
        const s = w.nodes["a"]?.services["web"];
        expect(s).toMatchObject({ state: "running", since: at(10), updated_at: at(20) });
        expect(s?.last_event_id).toBe(w.nodes["a"]?.recent_event_ids?.[0]);
      },
    },
    {
      name: "a heartbeat older than a service's newest observation does not regress it",
      events: () => [svc("a", 30, "web", "failed"), hb("a", 20, [{ service: "web", state: "running" }])],
      expect: (w) => {
        expect(w.nodes["a"]?.services["web"]).toMatchObject({ state: "failed", updated_at: at(30) });
        expect(w.nodes["a"]?.last_heartbeat).toBe(at(20));
      },
    },
    {
      name: "an older heartbeat does not move the node's heartbeat fields back",
      events: () => [hb("a", 30, [], { dropped_events: 5 }), hb("a", 20, [], { dropped_events: 1 })],
      expect: (w) => expect(w.nodes["a"]).toMatchObject({ last_heartbeat: at(30), dropped_events: 5 }),
    },
    {
      name: "nodes are independent",
      events: () => [svc("a", 10, "web", "running"), svc("b", 5, "web", "exited")],
      expect: (w) => {
        expect(w.nodes["a"]?.services["web"]?.state).toBe("running");
        expect(w.nodes["b"]?.services["web"]?.state).toBe("exited");
        expect(w.event_time).toBe(at(10));
      },
    },
  ];

  it.each(cases)("$name", ({ events, expect: check }) => {
    const w = fold(events());
    check(w);
    expect(WorldState.safeParse(w).success).toBe(true);
  });

  it("a stream sequence at or below last_seq returns the world itself", () => {
    const w = fold([a1]);
    expect(reduceWorld(w, svc("a", 99, "web", "failed"), { seq: 1 })).toBe(w);
    expect(reduceWorld(w, svc("a", 99, "web", "failed"), { seq: 0 })).toBe(w);
  });

  it("the same event id again (new stream sequence) changes nothing but last_seq", () => {
    const e1 = svc("a", 10, "web", "running");
    const e2 = svc("a", 10, "web", "exited"); // same timestamp: without the id check the re-sent e1 would win
    const w = fold([e1, e2]);
    const again = reduceWorld(w, e1, { seq: 7, traceparent: "00-" + "b".repeat(32) + "-" + "c".repeat(16) + "-01" });
    expect(again).toEqual({ ...w, last_seq: 7 });
  });

  it("seenInNode: a listed id from this very message is in the record, from another message a duplicate", () => {
    const base = { name: "a", status: "up" as const, last_heartbeat: null, heartbeat_interval_ms: 5000, agent_started_at: null, dropped_events: 0, host: null, services: {} };
    const cases: { name: string; node: Parameters<typeof seenInNode>[0]; id: string; seq: number; want: ReturnType<typeof seenInNode> }[] = [
      { name: "no node yet", node: undefined, id: "e1", seq: 5, want: "new" },
      { name: "node without ids", node: base, id: "e1", seq: 5, want: "new" },
      { name: "id not listed", node: { ...base, recent_event_ids: ["e0"], recent_event_seqs: [4] }, id: "e1", seq: 5, want: "new" },
      { name: "listed from this sequence (torn write)", node: { ...base, recent_event_ids: ["e0", "e1", "e2"], recent_event_seqs: [4, 5, 9] }, id: "e1", seq: 5, want: "in_record" },
      { name: "listed from an earlier sequence (re-sent)", node: { ...base, recent_event_ids: ["e0", "e1"], recent_event_seqs: [4, 5] }, id: "e1", seq: 8, want: "duplicate" },
      { name: "listed, record without sequences (older snapshot)", node: { ...base, recent_event_ids: ["e1"] }, id: "e1", seq: 5, want: "duplicate" },
      { name: "listed, sequences not aligned with ids", node: { ...base, recent_event_ids: ["e0", "e1"], recent_event_seqs: [5] }, id: "e1", seq: 5, want: "duplicate" },
    ];
    for (const c of cases) expect({ name: c.name, got: seenInNode(c.node, c.id, c.seq) }).toEqual({ name: c.name, got: c.want });
  });

  it("resuming from a torn write (some node records past the header's last_seq) reaches the full replay, counters included", () => {
    const nodes = ["a", "b", "c", "d", "e"];
    const events = makeEvents(600, { seed: 7, nodes, startMs: T0 });
    const worlds: WorldState[] = [emptyWorld()];
    for (const [i, e] of events.entries()) worlds.push(reduceWorld(worlds[i] as WorldState, e, { seq: i + 1 }));
    const full = worlds[events.length] as WorldState;
    for (const [header, nodesAt] of [[100, 130], [250, 251], [400, 460], [0, 40]] as const) {
      // The dead observer wrote node records as of `nodesAt` for some nodes, then died before the header of `header`.
      const atHeader = worlds[header] as WorldState;
      const later = worlds[nodesAt] as WorldState;
      const torn: WorldState = { ...atHeader, nodes: { ...atHeader.nodes } };
      for (const name of ["a", "c", "e"]) if (later.nodes[name]) torn.nodes[name] = later.nodes[name];
      let w = torn;
      for (let i = header; i < events.length; i++) w = reduceWorld(w, events[i] as NodeEvent, { seq: i + 1 });
      expect({ header, nodesAt, world: w }).toStrictEqual({ header, nodesAt, world: full });
    }
    // The same message re-sent later with a new stream sequence is still a duplicate: not counted.
    const again = reduceWorld(full, events[590] as NodeEvent, { seq: events.length + 1 });
    expect(again).toEqual({ ...full, last_seq: events.length + 1 });
  });

  it("remembers a bounded number of event ids per node", () => {
    const events = Array.from({ length: RECENT_EVENT_IDS + 10 }, (_, i) => host("a", i, 1));
    const w = fold(events);
    expect(w.nodes["a"]?.recent_event_ids).toHaveLength(RECENT_EVENT_IDS);
    expect(w.nodes["a"]?.recent_event_ids?.at(-1)).toBe(events.at(-1)?.id);
  });

  it("never mutates its input and survives a JSON round trip unchanged", () => {
    const events = [svc("a", 1, "web", "running", { pid: 3 }), check("a", 2, "web", "http", true), host("a", 3, 1), hb("a", 4, [{ service: "web", state: "exited" }]), svc("b", 5, "x", "stopped")];
    let w = deepFreeze(emptyWorld());
    let seq = 0;
    for (const e of events) {
      const before = JSON.stringify(w);
      const next = reduceWorld(w, e, { seq: ++seq });
      expect(JSON.stringify(w)).toBe(before);
      w = deepFreeze(next);
    }
    expect(JSON.parse(JSON.stringify(w))).toStrictEqual(w);
  });

  it("a heartbeat restating services and checks fills only objects it made: the frozen world before it is untouched", () => {
    // Services and their check maps are copied once per heartbeat and then filled in place (the observer's hot path):
    // two checks on one service, a check on a service only a check names, one on a service the heartbeat does not
    // restate, a restated service and a changed one.
    const first = hb("a", 1, [{ service: "web", state: "running", pid: 3 }, { service: "db", state: "running" }, { service: "worker", state: "running" }], { checks: [{ service: "web", check: "http", ok: true, consecutive_failures: 0, at: at(1) }] });
    const w1 = deepFreeze(fold([first]));
    const before = JSON.stringify(w1);
    const second = hb("a", 6, [{ service: "web", state: "running", pid: 3 }, { service: "db", state: "exited" }], {
      checks: [
        { service: "web", check: "http", ok: false, consecutive_failures: 1, detail: "503", at: at(5) },
        { service: "web", check: "tcp", ok: true, consecutive_failures: 0, at: at(5) },
        { service: "cache", check: "ping", ok: true, consecutive_failures: 0, at: at(5) },
        { service: "db", check: "tcp", ok: true, consecutive_failures: 0, at: at(5) },
        { service: "worker", check: "queue", ok: false, consecutive_failures: 2, at: at(5) },
      ],
    });
    const w2 = reduceWorld(w1, second, { seq: 2 });
    expect(JSON.stringify(w1)).toBe(before);
    const a = w2.nodes["a"];
    expect(a?.services["web"]).toMatchObject({ state: "running", since: at(1), updated_at: at(6), checks: { http: { ok: false, consecutive_failures: 1, detail: "503", at: at(5) }, tcp: { ok: true, consecutive_failures: 0, at: at(5) } } });
    expect(a?.services["db"]).toMatchObject({ state: "exited", since: at(6), checks: { tcp: { ok: true, consecutive_failures: 0, at: at(5) } } });
    expect(a?.services["worker"]).toMatchObject({ state: "running", updated_at: at(1), checks: { queue: { ok: false, consecutive_failures: 2, at: at(5) } } });
    expect(a?.services["cache"]).toMatchObject({ state: "unknown", health: "unknown", checks: { ping: { ok: true, consecutive_failures: 0, at: at(5) } } });
    // The same heartbeat's checks as separate health-check events after a checkless heartbeat give the same services.
    const { checks: _c, ...bare } = second as Extract<NodeEvent, { type: "heartbeat" }>;
    const separately = fold([{ ...bare, checks: [] }, ...(second.type === "heartbeat" ? second.checks : []).map((c) => NodeEvent.parse({ type: "health_check", id: nextId(), node: "a", ts: c.at, service: c.service, check: c.check, ok: c.ok, consecutive_failures: c.consecutive_failures, detail: c.detail }))], w1);
    for (const name of ["web", "db", "worker"]) expect(separately.nodes["a"]?.services[name]?.checks).toEqual(a?.services[name]?.checks);
  });

  it("is deterministic: the same events give the same world", () => {
    const events = [svc("a", 1, "web", "running"), hb("a", 2, [{ service: "web", state: "failed" }]), check("a", 3, "web", "h", false)];
    expect(fold(events)).toStrictEqual(fold(events));
  });
});

describe("markStale", () => {
  const base = () => fold([hb("a", 0, [{ service: "web", state: "running", health: "healthy" }]), hb("b", 10, [{ service: "api", state: "exited" }])]);
  const opts = { missedHeartbeats: 3 };
  // heartbeat interval is 5 s, so a node is stale when more than 15 s have passed since its last heartbeat

  const cases: { name: string; world: () => WorldState; nowS: number; stale: string[] }[] = [
    { name: "nothing stale within 3 intervals", world: base, nowS: 15, stale: [] },
    { name: "a stale after 3 intervals, b not yet", world: base, nowS: 16, stale: ["a"] },
    { name: "both stale later", world: base, nowS: 100, stale: ["a", "b"] },
    { name: "a node without heartbeats goes stale by its newest report", world: () => fold([svc("c", 0, "x", "running")]), nowS: 16, stale: ["c"] },
    { name: "a node without heartbeats, recently reported, is not stale", world: () => fold([svc("c", 10, "x", "running")]), nowS: 16, stale: [] },
    {
      name: "the node's own interval counts",
      world: () => fold([hb("d", 0, [], { interval_ms: 60_000 })]),
      nowS: 100,
      stale: [],
    },
  ];

  it.each(cases)("$name", ({ world, nowS, stale }) => {
    const w = world();
    const out = markStale(w, new Date(T0 + nowS * 1000), opts);
    const staleNow = Object.values(out.nodes).filter((n) => n.status === "stale").map((n) => n.name);
    expect(staleNow.sort()).toEqual(stale);
    if (stale.length === 0) expect(out).toBe(w);
    for (const name of stale) {
      for (const s of Object.values(out.nodes[name]?.services ?? {})) {
        expect(s.state).toBe("unknown");
        expect(s.health).toBe("unknown");
        expect(s.detail).toMatch(/last known: \w+\/\w+ since/);
      }
    }
    expect(WorldState.safeParse(out).success).toBe(true);
  });

  it("keeps the last known state in detail, leaves other fields and the input alone", () => {
    const w = deepFreeze(base());
    const out = markStale(w, new Date(T0 + 16_000), opts);
    const s = out.nodes["a"]?.services["web"];
    expect(s?.detail).toBe(`node stale (no heartbeat since ${at(0)}); last known: running/healthy since ${at(0)}`);
    expect(s?.since).toBe(at(16));
    expect(s?.updated_at).toBe(at(0));
    expect(out.nodes["b"]).toBe(w.nodes["b"]);
    expect(w.nodes["a"]?.status).toBe("up");
  });

  it("an already stale node is left as is (returns the same world)", () => {
    const once = markStale(base(), new Date(T0 + 100_000), opts);
    expect(markStale(once, new Date(T0 + 200_000), opts)).toBe(once);
  });

  it("a heartbeat afterwards brings the node back up with the restated services", () => {
    const stale = markStale(base(), new Date(T0 + 16_000), opts);
    const back = reduceWorld(stale, hb("a", 17, [{ service: "web", state: "running", health: "healthy" }]), { seq: stale.last_seq + 1 });
    expect(back.nodes["a"]?.status).toBe("up");
    expect(back.nodes["a"]?.services["web"]).toMatchObject({ state: "running", health: "healthy", since: at(17), updated_at: at(17) });
    expect(back.nodes["a"]?.services["web"]?.detail).toBeUndefined();
  });

  it("a late heartbeat older than the last one does not bring a stale node back", () => {
    const w = fold([hb("a", 10, [{ service: "web", state: "running" }])]);
    const stale = markStale(w, new Date(T0 + 30_000), opts);
    const late = reduceWorld(stale, hb("a", 5, [{ service: "web", state: "running" }]), { seq: stale.last_seq + 1 });
    expect(late.nodes["a"]?.status).toBe("stale");
    expect(late.nodes["a"]?.services["web"]?.state).toBe("unknown");
  });
});
