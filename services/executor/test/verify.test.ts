import { describe, expect, it } from "vitest";
import type { Snapshot } from "@steward/contracts/world-state";
import { judgeWorld } from "../src/verify.js";
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

describe("judgeWorld", () => {
  it.each(cases)("$name", ({ snap, kind, ok, says }) => {
    const v = judgeWorld(snap, { node: "n1", service: "web", kind: kind ?? "restart" }, sent);
    expect(v.ok).toBe(ok);
    expect(v.ok ? v.detail : v.seen).toMatch(says);
  });
});
