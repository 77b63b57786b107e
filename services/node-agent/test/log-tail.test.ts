import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answerLogTail, type TailableService } from "../src/log-tail.js";

let dir: string;
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "log-tail-"));
  const lines = Array.from({ length: 200 }, (_, i) => `line ${i} ok`).join("\n");
  await writeFile(join(dir, "api.log"), `${lines}\nusing password from env: hunter2-resolved\nMODE is plain-value-77\nAPI_TOKEN=abcdefgh12345\nfatal: cannot connect\n`);
  await writeFile(join(dir, "gone.log"), "old\n");
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const services = new Map<string, TailableService>([
  ["api", { declared: true, spec: { env: { DB_PASSWORD: { secret: "db" }, MODE: "plain-value-77" } } }],
  ["gone", { declared: false, spec: { env: {} } }],
]);
const depsOf = () => ({ node: "n1", logDir: dir, services: () => services, resolveSecret: () => "hunter2-resolved" });

describe("log tail", () => {
  it("answers the bounded tail of a declared service's log with env and secret values masked", async () => {
    const deps = depsOf();
    const r = await answerLogTail(enc({ service: "api", max_bytes: 300 }), deps);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.truncated).toBe(true);
    expect(r.bytes).toBeLessThanOrEqual(300);
    expect(r.text).toContain("fatal: cannot connect");
    expect(r.text).not.toContain("hunter2-resolved");
    expect(r.text).not.toContain("plain-value-77");
    expect(r.text).not.toContain("abcdefgh12345");
    expect(r.text.startsWith("line ")).toBe(true); // cut at a line start
  });

  it("refuses undeclared services, path tricks and bad requests", async () => {
    const deps = depsOf();
    expect(await answerLogTail(enc({ service: "gone" }), deps)).toMatchObject({ ok: false, code: "unknown_service" });
    expect(await answerLogTail(enc({ service: "../../etc/passwd" }), deps)).toMatchObject({ ok: false, code: "unknown_service" });
    expect(await answerLogTail(enc({ service: "api", max_bytes: 10_000_000 }), deps)).toMatchObject({ ok: false, code: "invalid" });
    expect(await answerLogTail(new TextEncoder().encode("nope"), deps)).toMatchObject({ ok: false, code: "invalid" });
    const none = new Map(services).set("web", { declared: true, spec: { env: {} } });
    expect(await answerLogTail(enc({ service: "web" }), { ...deps, services: () => none })).toMatchObject({ ok: false, code: "no_log" });
  });
});
