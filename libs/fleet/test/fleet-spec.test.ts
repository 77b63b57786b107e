import { describe, expect, it } from "vitest";
import { findCycle, formatProblem, parseFleetSpec } from "@steward/fleet/fleet-spec";

const good = `
version: 1
nodes:
  web1:
    services:
      api:
        kind: process
        command: [node, api.js]
        health:
          - type: http
            url: http://127.0.0.1:8080/health
            interval: 2s
        depends_on: [db]
      db:
        kind: process
        command: [postgres]
`;

describe("parseFleetSpec", () => {
  it("accepts a valid spec and fills defaults", () => {
    const r = parseFleetSpec(good, "fleet.yaml");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const api = r.spec.nodes["web1"]?.services["api"];
    expect(api?.kind).toBe("process");
    if (api?.kind !== "process") return;
    expect(api.restart).toBe("never");
    expect(api?.autostart).toBe(true);
    expect(api?.health[0]?.interval).toBe(2000);
    expect(api?.health[0]?.retries).toBe(3);
  });

  const cases: { name: string; text: string; path: string; message: RegExp }[] = [
    { name: "YAML syntax", text: "version: 1\nnodes: [\n", path: "", message: /YAML/ },
    { name: "wrong version", text: "version: 2\nnodes: {a: {}}\n", path: "version", message: /1/ },
    { name: "no nodes", text: "version: 1\nnodes: {}\n", path: "nodes", message: /at least one node/ },
    { name: "bad node name", text: "version: 1\nnodes: {Web_1!: {}}\n", path: "nodes.Web_1!", message: /lower-case/ },
    { name: "unknown service kind", text: "version: 1\nnodes: {a: {services: {s: {kind: vm, command: [x]}}}}\n", path: "nodes.a.services.s.kind", message: /./ },
    { name: "empty command", text: "version: 1\nnodes: {a: {services: {s: {kind: process, command: []}}}}\n", path: "nodes.a.services.s.command", message: /at least the program/ },
    { name: "unknown field", text: "version: 1\nnodes: {a: {services: {s: {kind: process, command: [x], restart_policy: always}}}}\n", path: "nodes.a.services.s", message: /restart_policy/ },
    { name: "bad duration", text: "version: 1\nnodes: {a: {services: {s: {kind: process, command: [x], health: [{type: tcp, port: 80, interval: soon}]}}}}\n", path: "nodes.a.services.s.health.0.interval", message: /duration/ },
    { name: "bad port", text: "version: 1\nnodes: {a: {services: {s: {kind: process, command: [x], health: [{type: tcp, port: 70000}]}}}}\n", path: "nodes.a.services.s.health.0.port", message: /./ },
    { name: "bad url", text: "version: 1\nnodes: {a: {services: {s: {kind: process, command: [x], health: [{type: http, url: nope}]}}}}\n", path: "nodes.a.services.s.health.0.url", message: /./ },
    { name: "unknown dependency", text: "version: 1\nnodes: {a: {services: {s: {kind: process, command: [x], depends_on: [t]}}}}\n", path: "nodes.a.services.s.depends_on.0", message: /'t', which is not declared/ },
    { name: "dependency cycle", text: "version: 1\nnodes: {a: {services: {s: {kind: process, command: [x], depends_on: [t]}, t: {kind: process, command: [y], depends_on: [s]}}}}\n", path: "nodes.a.services", message: /cycle: s -> t -> s/ },
    { name: "duplicate key", text: "version: 1\nversion: 1\nnodes: {a: {}}\n", path: "", message: /YAML/ },
  ];
  for (const c of cases) {
    it(`rejects: ${c.name}`, () => {
      const r = parseFleetSpec(c.text, "f.yaml");
      expect(r.ok).toBe(false);
      if (r.ok) return;
      const hit = r.problems.find((p) => p.path === c.path);
      expect(hit, JSON.stringify(r.problems)).toBeDefined();
      expect(hit?.message).toMatch(c.message);
      expect(hit?.file).toBe("f.yaml");
    });
  }

  it("points at the line of the problem", () => {
    const r = parseFleetSpec("version: 1\nnodes:\n  a:\n    services:\n      s:\n        kind: process\n        command: []\n", "f.yaml");
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(formatProblem(r.problems[0]!)).toBe("f.yaml:7:nodes.a.services.s.command: command needs at least the program");
  });
});

describe("recovery_objective", () => {
  it("is a duration on process and compose services, absent by default", () => {
    const r = parseFleetSpec("version: 1\nnodes:\n  a:\n    services:\n      s: {kind: process, command: [x], recovery_objective: 30s}\n      t: {kind: process, command: [y]}\n      c: {kind: compose, files: [c.yml], recovery_objective: 2m}\n", "f.yaml");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const svcs = r.spec.nodes["a"]!.services;
    expect(svcs["s"]?.recovery_objective).toBe(30_000);
    expect(svcs["t"]?.recovery_objective).toBeUndefined();
    expect(svcs["c"]?.recovery_objective).toBe(120_000);
  });

  it.each([
    ["soon", /duration like/],
    ["0", /./],
    ["-5s", /duration like/],
  ])("refuses %s with the file and line", (value, message) => {
    const r = parseFleetSpec(`version: 1\nnodes:\n  a:\n    services:\n      s:\n        kind: process\n        command: [x]\n        recovery_objective: ${value}\n`, "f.yaml");
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const p = r.problems.find((x) => x.path === "nodes.a.services.s.recovery_objective");
    expect(p, JSON.stringify(r.problems)).toBeDefined();
    expect(p?.message).toMatch(message);
    expect(formatProblem(p!)).toMatch(/^f\.yaml:8:nodes\.a\.services\.s\.recovery_objective: /);
  });
});

describe("findCycle", () => {
  const table: [Record<string, string[]>, string[] | undefined][] = [
    [{}, undefined],
    [{ a: ["b"], b: [] }, undefined],
    [{ a: ["b"], b: ["a"] }, ["a", "b", "a"]],
    [{ a: ["b"], b: ["c"], c: ["a"] }, ["a", "b", "c", "a"]],
    [{ a: ["b", "c"], b: ["c"], c: [] }, undefined],
    [{ x: ["y"], y: ["z"], z: ["y"] }, ["y", "z", "y"]],
  ];
  it.each(table)("%j → %j", (edges, want) => {
    expect(findCycle(edges)).toEqual(want);
  });
});
