import { spawn, type ChildProcess } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FleetSpec, type SecretStore } from "@steward/fleet/fleet-spec";
import type { SecretEvent, NodeEvent } from "@steward/contracts/events";
import { waitFor } from "@steward/testkit";
import { parseEnvFile } from "../src/env-file.js";
import { classifyValue, createSecretProbe, fingerprint, fingerprintKey, trimFileValue, type ContainerEnvReader, type SecretProbe, type ServiceLocation } from "../src/secret-probe.js";

describe("env file parsing", () => {
  const cases: [string, string, Record<string, string>][] = [
    ["plain", "A=1\nB=two words\n", { A: "1", B: "two words" }],
    ["export and comments", "# comment\nexport A=1\n  # indented comment\n\nB = 2 # inline\n", { A: "1", B: "2" }],
    ["double quotes with escapes", 'A="x y # not a comment"\nB="line1\\nline2"\nC="q\\"uote"\n', { A: "x y # not a comment", B: "line1\nline2", C: 'q"uote' }],
    ["single quotes are literal", "A='a\\nb $X'\n", { A: "a\\nb $X" }],
    ["multi-line double quotes", 'A="first\nsecond"\nB=3\n', { A: "first\nsecond", B: "3" }],
    ["a later line wins", "A=1\nA=2\n", { A: "2" }],
    ["empty values", "A=\nB=''\nC=\"\"\n", { A: "", B: "", C: "" }],
    ["CRLF and BOM", "\ufeffA=1\r\nB=2\r\n", { A: "1", B: "2" }],
    ["bare keys and junk carry no value", "JUST_A_KEY\n=novalue\nnot a key=1\nOK=1", { OK: "1" }],
    ["# inside an unquoted value without a space", "A=abc#def\n", { A: "abc#def" }],
  ];
  it.each(cases)("%s", (_name, text, want) => {
    expect(Object.fromEntries(parseEnvFile(text))).toEqual(want);
  });
});

describe("fingerprints", () => {
  const key = fingerprintKey("fleet-key-0123456789abcdef");
  it("are 32 hex characters, deterministic and keyed", () => {
    const fp = fingerprint(key, "hunter2-but-longer");
    expect(fp).toMatch(/^[0-9a-f]{32}$/);
    expect(fingerprint(key, "hunter2-but-longer")).toBe(fp);
    expect(fingerprint(fingerprintKey("another-fleet-key-0123456789"), "hunter2-but-longer")).not.toBe(fp);
    expect(fingerprint(key, "hunter3-but-longer")).not.toBe(fp);
  });
  it("use a derived key, not the fleet key (which signs node commands) itself", () => {
    const direct = createHmac("sha256", "fleet-key-0123456789abcdef").update("v").digest("hex").slice(0, 32);
    expect(fingerprint(key, "v")).not.toBe(direct);
  });
  it.each([
    ["", "empty"],
    ["   \t", "empty"],
    ["changeme", "placeholder"],
    ["GENERATE_ON_HOST", "placeholder"],
    ["__CHANGE_ME__", "placeholder"],
    ["TODO: real one", "placeholder"],
    ["********", "placeholder"],
    ["${DB_PASSWORD}", "placeholder"],
    ["Zq8-real-secret-value", "ok"],
  ])("%j is %s", (v, status) => {
    const r = classifyValue(key, v);
    expect(r.status).toBe(status);
    expect(r.fingerprint === null).toBe(status === "empty");
  });
  it("a file's trailing newline is not part of the value", () => {
    expect(trimFileValue("abc\n")).toBe("abc");
    expect(trimFileValue("abc\r\n\n")).toBe("abc");
    expect(trimFileValue("a\nb\n")).toBe("a\nb");
  });
});

describe("secret probe on real files and a real process", () => {
  const FLEET_KEY = "probe-test-fleet-key-0123456789";
  const value = `v-${randomBytes(12).toString("hex")}`;
  const other = `o-${randomBytes(12).toString("hex")}`;
  let dir: string;
  let repo: string;
  let child: ChildProcess;
  let probe: SecretProbe;
  const events: SecretEvent[] = [];
  const logs: string[] = [];
  const located: Record<string, ServiceLocation> = {};
  const containers: Record<string, string> = {};
  const fp = (v: string) => fingerprint(fingerprintKey(FLEET_KEY), v);

  const stores: SecretStore[] = [
    { type: "env_file", node: "n1", path: ".env", key: "DB_PASSWORD" },
    { type: "file", node: "n1", path: "secrets/db" },
    { type: "service_env", node: "n1", service: "app", key: "DB_PASSWORD" },
    { type: "file", node: "n2", path: "/not/this/node" },
  ];
  const spec = (extra: Record<string, unknown> = {}) =>
    FleetSpec.parse({
      version: 1,
      nodes: { n1: { repo_path: "checkout" }, n2: {} },
      secrets: {
        db: { stores },
        other: {
          stores: [
            { type: "env_file", node: "n1", path: ".env", key: "NOT_THERE" },
            { type: "file", node: "n1", path: "no/such/file" },
            { type: "file", node: "n1", path: "secrets" },
            { type: "service_env", node: "n1", service: "stopped", key: "X" },
            { type: "service_env", node: "n1", service: "ghost", key: "X" },
            { type: "service_env", node: "n1", service: "stack", key: "X" },
          ],
        },
        ...extra,
      },
    });

  const latest = (secret: string, store: string) => [...events].reverse().find((e) => e.secret === secret && e.store === store);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "secret-probe-"));
    repo = join(dir, "checkout");
    await mkdir(join(repo, "secrets"), { recursive: true });
    await writeFile(join(repo, ".env"), `# app\nexport DB_PASSWORD="${value}"\nOTHER=1\n`);
    await writeFile(join(repo, "secrets", "db"), `${value}\n`);
    child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { env: { DB_PASSWORD: value, PATH: process.env["PATH"] ?? "" }, stdio: "ignore" });
    await new Promise((r) => child.once("spawn", r));
    located["app"] = { kind: "process", pid: child.pid };
    located["stopped"] = { kind: "process", pid: undefined };
    located["stack"] = { kind: "other" };
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString());
        cb();
      },
    });
    probe = createSecretProbe({
      node: "n1",
      fleetKey: FLEET_KEY,
      specDir: dir,
      logger: pino({ level: "trace" }, sink),
      publish: (e: NodeEvent) => {
        if (e.type === "secret") events.push(e);
      },
      locate: (name) => located[name] ?? { kind: "absent" },
      probeMs: 60_000,
      pollMs: 60_000,
    });
    probe.setSpec(spec());
  });

  afterAll(async () => {
    probe?.stop();
    child?.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });

  it("fingerprints an env file, a file and a running process's environment alike, and only this node's stores", async () => {
    await probe.probeNow(true);
    for (const id of ["env_file:.env#DB_PASSWORD", "file:secrets/db", "service_env:app#DB_PASSWORD"]) {
      expect(latest("db", id)).toMatchObject({ status: "ok", fingerprint: fp(value), node: "n1" });
    }
    expect(events.some((e) => e.store === "file:/not/this/node")).toBe(false);
  });

  it("says missing, unreadable or absent with a reason, never guessing", async () => {
    expect(latest("other", "env_file:.env#NOT_THERE")).toMatchObject({ status: "missing", fingerprint: null, detail: "NOT_THERE is not set in .env" });
    expect(latest("other", "file:no/such/file")).toMatchObject({ status: "missing", detail: "file no/such/file does not exist" });
    expect(latest("other", "file:secrets")).toMatchObject({ status: "unreadable", detail: "cannot read file secrets: EISDIR" });
    expect(latest("other", "service_env:stopped#X")?.status).toBe("unreadable");
    expect(latest("other", "service_env:stopped#X")?.detail).toMatch(/not running/);
    expect(latest("other", "service_env:ghost#X")).toMatchObject({ status: "missing", detail: "no service 'ghost' on node 'n1'" });
    expect(latest("other", "service_env:stack#X")?.detail).toMatch(/no docker driver/);
  });

  it("publishes only changes on a poll, everything on a restatement", async () => {
    const before = events.length;
    await probe.probeNow(false);
    expect(events.length).toBe(before);
    await writeFile(join(repo, "secrets", "db"), `${other}\n`);
    await probe.probeNow(false);
    expect(events.slice(before).map((e) => e.store)).toEqual(["file:secrets/db"]);
    expect(latest("db", "file:secrets/db")?.fingerprint).toBe(fp(other));
    const mid = events.length;
    await probe.probeNow(true);
    expect(events.length - mid).toBe(9);
  });

  it("flags empty and placeholder values", async () => {
    await writeFile(join(repo, "secrets", "db"), "  \n");
    await writeFile(join(repo, ".env"), "DB_PASSWORD=changeme\n");
    await probe.probeNow(false);
    expect(latest("db", "file:secrets/db")).toMatchObject({ status: "empty", fingerprint: null });
    expect(latest("db", "env_file:.env#DB_PASSWORD")?.status).toBe("placeholder");
  });

  it("reads a container's environment through the docker driver when there is one", async () => {
    const reader: ContainerEnvReader = async (service, key) => (containers[`${service}/${key}`] !== undefined ? { found: true, value: containers[`${service}/${key}`]! } : { found: false, status: "missing", detail: `${key} not set in ${service}` });
    containers["stack/X"] = value;
    const p = createSecretProbe({ node: "n1", fleetKey: FLEET_KEY, specDir: dir, logger: pino({ level: "silent" }), publish: (e) => e.type === "secret" && events.push(e), locate: () => ({ kind: "other" }), containerEnv: reader, probeMs: 60_000, pollMs: 60_000 });
    p.setSpec(FleetSpec.parse({ version: 1, nodes: { n1: {} }, secrets: { c: { stores: [{ type: "service_env", node: "n1", service: "stack", key: "X" }, { type: "service_env", node: "n1", service: "stack", key: "Y" }] } } }));
    await p.probeNow(true);
    expect(latest("c", "service_env:stack#X")).toMatchObject({ status: "ok", fingerprint: fp(value) });
    expect(latest("c", "service_env:stack#Y")).toMatchObject({ status: "missing", detail: "Y not set in stack" });
  });

  it("resolves a secret for a process from a file first, then an env file, skipping unusable values", async () => {
    await writeFile(join(repo, "secrets", "db"), `${value}\n`);
    await writeFile(join(repo, ".env"), `DB_PASSWORD=${other}\n`);
    expect(probe.resolve({ secret: "db" })).toBe(value);
    await writeFile(join(repo, "secrets", "db"), "GENERATE_ON_HOST\n");
    expect(probe.resolve({ secret: "db" })).toBe(other);
    await writeFile(join(repo, ".env"), "DB_PASSWORD=\n");
    expect(probe.resolve({ secret: "db" })).toBeUndefined();
    expect(probe.resolve({ secret: "undeclared" })).toBeUndefined();
  });

  it("a reloaded spec forgets stores it no longer declares", async () => {
    probe.setSpec(FleetSpec.parse({ version: 1, nodes: { n1: { repo_path: "checkout" } }, secrets: { db: { stores: [stores[1]] } } }));
    const before = events.length;
    await probe.probeNow(true);
    expect(events.slice(before).map((e) => `${e.secret}|${e.store}`)).toEqual(["db|file:secrets/db"]);
    expect([...probe.readings().keys()]).toEqual(["db|file:secrets/db"]);
  });

  it("never lets a value out: not in events, not in logs", () => {
    const out = JSON.stringify(events) + logs.join("");
    expect(logs.length).toBeGreaterThan(0);
    for (const v of [value, other]) expect(out).not.toContain(v);
  });
});

describe("secret probe without waiting", () => {
  it("probes at start and restates on its timer", async () => {
    const dir = await mkdtemp(join(tmpdir(), "secret-probe-timer-"));
    try {
      await writeFile(join(dir, "s"), "Zq8-real-secret-value");
      const seen: NodeEvent[] = [];
      const p = createSecretProbe({ node: "n1", fleetKey: "k".repeat(20) + "0123", specDir: dir, logger: pino({ level: "silent" }), publish: (e) => seen.push(e), locate: () => ({ kind: "absent" }), probeMs: 100, pollMs: 50 });
      p.setSpec(FleetSpec.parse({ version: 1, nodes: { n1: {} }, secrets: { s: { stores: [{ type: "file", node: "n1", path: "s" }] } } }));
      p.start();
      await waitFor("three restatements", () => seen.length >= 3, 5000);
      p.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
