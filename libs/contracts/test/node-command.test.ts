import { describe, expect, it } from "vitest";
import { canonicalJson, checkNodeCommand, signNodeCommand, type NodeCommandBody } from "@steward/contracts/node-command";

const key = "k".repeat(32);
const now = new Date("2026-01-01T00:00:00Z");
const body: NodeCommandBody = {
  id: "cmd-00000001",
  node: "web1",
  op: "restart",
  service: "api",
  action_id: null,
  issued_at: "2026-01-01T00:00:00.000Z",
  expires_at: "2026-01-01T00:00:30.000Z",
};

describe("node command signing", () => {
  it("canonical JSON sorts keys at every depth", () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { y: 1, x: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[2,{"x":2,"y":1}]},"b":1}');
  });

  const seen = (id: string) => id === "cmd-seen0001";
  const table: { name: string; cmd: ReturnType<typeof signNodeCommand>; want: string }[] = [
    { name: "valid", cmd: signNodeCommand(body, key), want: "ok" },
    { name: "forged (other key)", cmd: signNodeCommand(body, "x".repeat(32)), want: "bad_signature" },
    { name: "tampered body", cmd: { ...signNodeCommand(body, key), body: { ...body, op: "stop" } }, want: "bad_signature" },
    { name: "misaddressed", cmd: signNodeCommand({ ...body, node: "web2" }, key), want: "wrong_node" },
    { name: "expired", cmd: signNodeCommand({ ...body, expires_at: "2025-12-31T23:59:59.000Z" }, key), want: "expired" },
    { name: "issued in the future", cmd: signNodeCommand({ ...body, issued_at: "2026-01-01T01:00:00.000Z", expires_at: "2026-01-01T02:00:00.000Z" }, key), want: "expired" },
    { name: "replayed", cmd: signNodeCommand({ ...body, id: "cmd-seen0001" }, key), want: "replayed" },
  ];
  it.each(table)("$name → $want", ({ cmd, want }) => {
    const r = checkNodeCommand(cmd, { node: "web1", fleetKey: key, now, seen });
    expect(r.ok ? "ok" : r.code).toBe(want);
  });
});
