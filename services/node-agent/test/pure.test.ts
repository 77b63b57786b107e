import { describe, expect, it } from "vitest";
import { ProcessService } from "@steward/fleet/fleet-spec";
import { signNodeCommand } from "@steward/contracts/node-command";
import { newCommandKeyPair } from "@steward/contracts/command-keys";
import { formatSeenFile, parseSeenFile } from "../src/seen-command-file.js";
import { BoundedQueue } from "../src/bounded-queue.js";
import { SeenCommands, verifyCommand } from "../src/commands.js";
import { aggregateHealth, checkName, diffServices, diskUsage, memUsedPct, restartDelayMs, shouldRestart, startOrder, type CheckProgress } from "../src/plan.js";

const svc = (over: Record<string, unknown> = {}) => ProcessService.parse({ kind: "process", command: ["true"], ...over });

describe("startOrder", () => {
  it.each([
    [{}, []],
    [{ b: { depends_on: [] }, a: { depends_on: [] } }, ["a", "b"]],
    [{ web: { depends_on: ["db", "cache"] }, db: { depends_on: [] }, cache: { depends_on: ["db"] } }, ["db", "cache", "web"]],
    [{ proxy: { depends_on: ["app"] }, app: { depends_on: ["missing"] } }, ["app", "proxy"]],
    // A cycle the validator should have refused still yields every service once.
    [{ a: { depends_on: ["b"] }, b: { depends_on: ["a"] } }, ["b", "a"]],
  ] as [Record<string, { depends_on: string[] }>, string[]][])("%j → %j", (services, want) => {
    expect(startOrder(services)).toEqual(want);
  });
});

describe("diffServices", () => {
  it("finds added, removed and changed services", () => {
    const before = { a: svc(), b: svc(), c: svc() };
    const after = { a: svc(), c: svc({ env: { X: "1" } }), d: svc() };
    expect(diffServices(before, after)).toEqual({ added: ["d"], removed: ["b"], changed: ["c"] });
  });
  it("is empty when nothing changed", () => {
    expect(diffServices({ a: svc() }, { a: svc() })).toEqual({ added: [], removed: [], changed: [] });
  });
});

describe("aggregateHealth", () => {
  const p = (passedOnce: boolean, consecutiveFailures: number, retries = 3): CheckProgress => ({ passedOnce, consecutiveFailures, retries });
  it.each([
    [[], "none"],
    [[p(false, 0)], "starting"],
    [[p(false, 2)], "starting"],
    [[p(false, 3)], "unhealthy"],
    [[p(true, 0)], "healthy"],
    [[p(true, 2)], "healthy"],
    [[p(true, 3)], "unhealthy"],
    [[p(true, 0), p(false, 0)], "starting"],
    [[p(true, 0), p(true, 1)], "healthy"],
    [[p(true, 0), p(false, 1, 1)], "unhealthy"],
  ] as [CheckProgress[], string][])("%j → %s", (checks, want) => {
    expect(aggregateHealth(checks)).toBe(want);
  });
});

describe("restart policy", () => {
  it.each([
    ["never", 1, null, false, false],
    ["on-failure", 0, null, false, false],
    ["on-failure", 1, null, false, true],
    ["on-failure", null, "SIGKILL", false, true],
    ["on-failure", 1, null, true, false],
    ["always", 0, null, false, true],
    ["always", 0, null, true, false],
  ] as const)("%s with code %s signal %s (stopped by command: %s) → %s", (policy, code, signal, stoppedByCommand, want) => {
    expect(shouldRestart(policy, { code, signal, stoppedByCommand })).toBe(want);
  });
  it("backs off exponentially up to a cap", () => {
    expect([0, 1, 2, 3, 10, 100].map((n) => restartDelayMs(n))).toEqual([1000, 2000, 4000, 8000, 30_000, 30_000]);
  });
});

describe("host figures", () => {
  it("computes disk usage like df", () => {
    expect(diskUsage("/", { bsize: 4096, blocks: 1000, bfree: 300, bavail: 200 })).toEqual({ path: "/", used_pct: 77.78, free_bytes: 200 * 4096 });
    expect(diskUsage("/x", { bsize: 4096, blocks: 0, bfree: 0, bavail: 0 })).toEqual({ path: "/x", used_pct: 0, free_bytes: 0 });
  });
  it("computes memory used", () => {
    expect(memUsedPct(1000, 250)).toBe(75);
    expect(memUsedPct(0, 0)).toBe(0);
  });
  it("names checks by name, else type and position", () => {
    expect(checkName({ type: "tcp", host: "h", port: 1, interval: 1, timeout: 1, retries: 1, start_period: 0, via: [] }, 2)).toBe("tcp-2");
    expect(checkName({ type: "tcp", name: "db-port", host: "h", port: 1, interval: 1, timeout: 1, retries: 1, start_period: 0, via: [] }, 2)).toBe("db-port");
  });
});

describe("BoundedQueue", () => {
  it("drops the oldest when full and keeps FIFO order", () => {
    const q = new BoundedQueue<number>(3);
    expect([1, 2, 3].map((n) => q.push(n))).toEqual([undefined, undefined, undefined]);
    expect(q.push(4)).toBe(1);
    expect(q.push(5)).toBe(2);
    expect(q.toArray()).toEqual([3, 4, 5]);
    expect(q.shift()).toBe(3);
    expect(q.size).toBe(2);
  });
  it("puts failed entries back in front, dropping the oldest on overflow", () => {
    const q = new BoundedQueue<number>(4);
    q.push(5);
    q.push(6);
    q.push(7);
    expect(q.unshiftAll([2, 3, 4])).toEqual([2, 3]);
    expect(q.toArray()).toEqual([4, 5, 6, 7]);
    expect(q.unshiftAll([])).toEqual([]);
    expect(q.drain()).toEqual([4, 5, 6, 7]);
    expect(q.size).toBe(0);
    expect(q.shift()).toBeUndefined();
  });
  it("refuses a capacity below 1", () => {
    expect(() => new BoundedQueue(0)).toThrow(RangeError);
  });
});

describe("command verification", () => {
  const key = newCommandKeyPair().signing;
  const other = newCommandKeyPair().signing;
  const now = new Date("2025-01-01T00:00:00Z");
  const body = (over: Record<string, unknown> = {}) => ({
    id: "cmd-000001",
    node: "web1",
    op: "start" as const,
    service: "api",
    action_id: null,
    issued_at: "2024-12-31T23:59:50Z",
    expires_at: "2025-01-01T00:01:00Z",
    ...over,
  });
  const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
  const verify = (data: Uint8Array, seen = new SeenCommands()) => verifyCommand(data, { node: "web1", keys: [key.publicKey], now, seen, bounds: { startedAt: new Date("2024-12-31T23:59:00Z") } });
  const code = (r: ReturnType<typeof verify>) => (r.ok ? "ok" : r.reply.code);

  it.each([
    ["valid", () => enc(signNodeCommand(body(), key)), "ok"],
    ["not JSON", () => enc("{nope"), "invalid"],
    ["JSON null", () => enc("null"), "invalid"],
    ["no signature", () => enc({ body: body() }), "invalid"],
    ["unknown op", () => enc({ body: body({ op: "rm" }), sig: "A".repeat(86) }), "invalid"],
    ["an HMAC signature (the old format)", () => enc({ body: body(), sig: "0".repeat(64) }), "invalid"],
    ["signed with another key", () => enc(signNodeCommand(body(), other)), "bad_signature"],
    ["tampered body", () => enc({ ...signNodeCommand(body(), key), body: body({ service: "db" }) }), "bad_signature"],
    ["other node", () => enc(signNodeCommand(body({ node: "web2" }), key)), "wrong_node"],
    ["expired", () => enc(signNodeCommand(body({ expires_at: "2024-12-31T23:59:59Z" }), key)), "expired"],
    ["issued in the future", () => enc(signNodeCommand(body({ issued_at: "2025-01-01T00:05:00Z", expires_at: "2025-01-01T00:06:00Z" }), key)), "expired"],
    ["issued before the agent started", () => enc(signNodeCommand(body({ issued_at: "2024-12-31T23:58:00Z" }), key)), "issued_before_start"],
    ["living past the bound", () => enc(signNodeCommand(body({ expires_at: "2025-01-01T01:00:00Z" }), key)), "lifetime_too_long"],
  ] as const)("%s → %s", (_what, data, want) => {
    expect(code(verify(data()))).toBe(want);
  });

  it("refuses a replay while the command lives, and remembers ids only until they expire", () => {
    const seen = new SeenCommands();
    const cmd = enc(signNodeCommand(body(), key));
    expect(code(verify(cmd, seen))).toBe("ok");
    seen.add("cmd-000001", Date.parse("2025-01-01T00:01:00Z"), now.getTime());
    expect(code(verify(cmd, seen))).toBe("replayed");
    expect(seen.has("cmd-000001", Date.parse("2025-01-01T00:01:01Z"))).toBe(false);
    seen.add("cmd-000002", Date.parse("2025-01-01T00:09:00Z"), Date.parse("2025-01-01T00:02:00Z"));
    expect(seen.size).toBe(1);
  });

  it("keeps its bound by refusing a new id when full of live ones, never forgetting one that could replay", () => {
    const seen = new SeenCommands(2);
    const t = now.getTime();
    expect([seen.add("a", t + 1000, t), seen.add("b", t + 5000, t), seen.add("c", t + 3000, t)]).toEqual([true, true, false]);
    expect([seen.has("a", t), seen.has("b", t), seen.has("c", t)]).toEqual([true, true, false]);
    // Once one expires there is room again.
    expect(seen.add("c", t + 3000, t + 1000)).toBe(true);
    expect(seen.entries(t + 1000)).toEqual([["b", t + 5000], ["c", t + 3000]]);
  });

  it("reads back what it persisted, dropping expired ids; an unreadable file says why", () => {
    const t = now.getTime();
    const text = formatSeenFile([["a", t + 1000], ["b", t - 1]]);
    expect(parseSeenFile(text, t)).toEqual({ ok: true, entries: [["a", t + 1000]] });
    expect(parseSeenFile(text.slice(0, 10), t)).toEqual({ ok: false, reason: "not JSON" });
    expect(parseSeenFile('{"version":2,"ids":{}}', t)).toMatchObject({ ok: false, reason: expect.stringMatching(/version 1/) });
    expect(parseSeenFile('{"version":1,"ids":{"a":"soon"}}', t)).toMatchObject({ ok: false, reason: expect.stringMatching(/no expiry/) });
    expect(parseSeenFile("null", t)).toMatchObject({ ok: false });
  });

  it("reports the id and op of a rejected command when they can be read", () => {
    const r = verify(enc(signNodeCommand(body({ op: "stop" }), other)));
    expect(r.ok).toBe(false);
    if (!r.ok) expect([r.reply.id, r.op]).toEqual(["cmd-000001", "stop"]);
  });
});
