import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { NodeCommandOp, type NodeCommandBody, type NodeCommandReply } from "@steward/contracts/node-command";
import { newCommandKeyPair } from "@steward/contracts/command-keys";
import { ServiceSpec } from "@steward/fleet/fleet-spec";
import { silentLogger } from "@steward/platform/logger";
import { CheckoutOp, ServiceOp, dispatchCommand, verifyCommand, SeenCommands } from "../src/commands.js";
import { createDriverTable, supportedOps, type ServiceCommand, type ServiceDriver, type ServiceKind, type ServiceOps } from "../src/driver.js";

const body = (op: NodeCommandBody["op"], service: string): NodeCommandBody => ({ id: randomUUID(), node: "n1", op, service, action_id: null, issued_at: new Date().toISOString(), expires_at: new Date(Date.now() + 30_000).toISOString() });
const svc = (op: ServiceOp, service: string) => body(op, service) as ServiceCommand;

/** A driver that answers every op it supports with `<kind> <op> <service>` and records the calls. */
function fakeDriver<K extends ServiceKind>(kind: K, services: string[], ops: ServiceOp[]): ServiceDriver & { kind: K; calls: string[] } {
  const calls: string[] = [];
  const handlers: Partial<Record<ServiceOp, (cmd: ServiceCommand) => Promise<NodeCommandReply>>> = {};
  for (const op of ops) handlers[op] = async (cmd) => (calls.push(`${op} ${cmd.service}`), { ok: true, id: cmd.id, node: "n1", service: cmd.service, pid: null, detail: `${kind} ${op} ${cmd.service}` });
  return { kind, calls, has: (s) => services.includes(s), observe: () => services.map((s) => ({ service: s, state: "running", health: "none", starts: 1, declared: true })), ops: handlers as ServiceOps };
}

function table(kinds: Record<string, ServiceKind>) {
  const process = fakeDriver("process", ["api", "leftover"], ["start", "stop", "restart"]);
  const compose = fakeDriver("compose", ["shop"], ServiceOp.options);
  return { process, compose, table: createDriverTable({ node: "n1", drivers: { process, compose }, kindOf: (s) => kinds[s], logger: silentLogger() }) };
}

describe("node command ops", () => {
  it("partition the contract's ops: pull goes to the checkout, every other op to a service driver", () => {
    expect([...ServiceOp.options, ...CheckoutOp.options].sort()).toEqual([...NodeCommandOp.options].sort());
    expect(CheckoutOp.options).toEqual(["pull"]);
  });

  it.each([
    ["pull", "@repo", "checkout"],
    ["deploy", "shop", "services"],
    ["start", "api", "services"],
  ] as const)("%s %s → %s", async (op, service, want) => {
    const seen: string[] = [];
    const reply = (cmd: NodeCommandBody): Promise<NodeCommandReply> => Promise.resolve({ ok: true, id: cmd.id, node: "n1", service: cmd.service, pid: null, detail: "" });
    await dispatchCommand(body(op, service), { checkout: { pull: (c) => (seen.push("checkout"), reply(c)) }, services: { execute: (c) => (seen.push("services"), reply(c)) } });
    expect(seen).toEqual([want]);
  });

  it("labels a malformed command with its op when the op is one of the contract's", () => {
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    const verify = (op: string) => verifyCommand(enc({ body: { ...body("start", "api"), op } }), { node: "n1", keys: [newCommandKeyPair().signing.publicKey], now: new Date(), seen: new SeenCommands() });
    expect(NodeCommandOp.options.map((op) => verify(op)).map((v) => !v.ok && v.op)).toEqual(NodeCommandOp.options);
    expect(verify("rm")).toMatchObject({ ok: false, op: "unknown" });
  });
});

describe("driver table", () => {
  it("has a driver for every kind the fleet spec defines", () => {
    const kinds = ServiceSpec.options.map((o) => o.shape.kind.value);
    const { table: t } = table(Object.fromEntries(kinds.map((k) => [`svc-${k}`, k])));
    expect(kinds.map((k) => t.driverFor(`svc-${k}`)?.kind)).toEqual(kinds);
  });

  it("sends a command to the driver of the service's declared kind", async () => {
    const { table: t, process, compose } = table({ api: "process", shop: "compose" });
    expect(await t.execute(svc("deploy", "shop"))).toMatchObject({ ok: true, detail: "compose deploy shop" });
    expect(await t.execute(svc("restart", "api"))).toMatchObject({ ok: true, detail: "process restart api" });
    expect([process.calls, compose.calls]).toEqual([["restart api"], ["deploy shop"]]);
  });

  it("refuses an op the kind does not support with a clear error, calling no driver", async () => {
    const { table: t, process, compose } = table({ api: "process", shop: "compose" });
    const cmd = svc("deploy", "api");
    expect(await t.execute(cmd)).toEqual({ ok: false, id: cmd.id, code: "failed", message: "op 'deploy' does not apply to process service 'api' (a process service takes start, stop, restart)" });
    expect(await t.execute(svc("rollback", "api"))).toMatchObject({ ok: false, code: "failed", message: expect.stringMatching(/^op 'rollback' does not apply to process service 'api'/) });
    expect([process.calls, compose.calls]).toEqual([[], []]);
  });

  it("an undeclared service goes to the driver that still has it; one nobody has is unknown", async () => {
    const { table: t } = table({});
    expect(await t.execute(svc("stop", "leftover"))).toMatchObject({ ok: true, detail: "process stop leftover" });
    const cmd = svc("start", "ghost");
    expect(await t.execute(cmd)).toEqual({ ok: false, id: cmd.id, code: "unknown_service", message: "no service 'ghost' on node 'n1'" });
  });

  it("observes every driver's services, by name", () => {
    expect(table({}).table.observe().map((o) => o.service)).toEqual(["api", "leftover", "shop"]);
  });

  it.each<[string, ServiceOps, ServiceOp[]]>([
    ["none", {}, []],
    ["in the contract's order", { restart: async () => ({ ok: false, id: null, code: "failed", message: "" }), start: async () => ({ ok: false, id: null, code: "failed", message: "" }) }, ["start", "restart"]],
  ])("supported ops: %s", (_what, ops, want) => {
    expect(supportedOps(ops)).toEqual(want);
  });
});
