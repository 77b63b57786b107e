import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { promisify } from "node:util";
import { NATS_COMPONENTS } from "@steward/contracts/nats-permissions";
import { natsAuthFromEnv } from "@steward/platform/nats-auth";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSigningKey, parseVerifyKeys, PRIVATE_PREFIX } from "@steward/contracts/command-keys";
import { loadConfig as loadExecutorConfig } from "@steward/executor";
import { loadConfig as loadAgentConfig } from "@steward/node-agent";
import { runCli } from "../src/cli.js";
import { PRIVATE_FILE, PUBLIC_FILE } from "../src/commands/keys.js";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s), env: {} }, out: () => out.join("\n"), err: () => err.join("\n") };
}
const envLine = (text: string, name: string) => new RegExp(`^${name}=(.*)$`, "m").exec(text)?.[1];

describe("steward keys signing", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "steward-keys-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("prints a pair as env lines that the executor and a node-agent take as they are", async () => {
    const c = capture();
    expect(await runCli(["keys", "signing"], c.io)).toBe(0);
    const priv = envLine(c.out(), "EXECUTOR_SIGNING_KEY")!;
    const pub = envLine(c.out(), "NODE_COMMAND_PUBLIC_KEY")!;
    const exe = loadExecutorConfig({ DATABASE_URL: "postgres://x@127.0.0.1/db", API_TOKEN: "a-real-api-token-123456", EXECUTOR_SIGNING_KEY: priv });
    const agent = loadAgentConfig({ NODE_NAME: "n1", FLEET_SPEC: "/f.yaml", FLEET_KEY: "a-real-fleet-key-0123456789", NODE_COMMAND_PUBLIC_KEY: pub });
    expect(agent.commandKeys.map((k) => k.id)).toEqual([exe.signingKey.publicKey.id]);
    expect(c.out()).toContain(`key ${exe.signingKey.publicKey.id}`);
    // A second run makes another pair.
    const again = capture();
    await runCli(["keys", "signing", "--json"], again.io);
    const j = JSON.parse(again.out()) as { private_key: string; public_key: string; key_id: string };
    expect(j.private_key).not.toBe(priv);
    expect(parseSigningKey(j.private_key)).toMatchObject({ ok: true, key: { publicKey: { text: j.public_key, id: j.key_id } } });
  });

  it("--out writes the private key 0600 and the public key, prints only the public one, and never overwrites", async () => {
    const out = join(dir, "keys");
    const c = capture();
    expect(await runCli(["keys", "signing", "--out", out], c.io)).toBe(0);
    const priv = (await readFile(join(out, PRIVATE_FILE), "utf8")).trim();
    const pub = (await readFile(join(out, PUBLIC_FILE), "utf8")).trim();
    expect((await stat(join(out, PRIVATE_FILE))).mode & 0o777).toBe(0o600);
    const parsed = parseSigningKey(priv);
    expect(parsed.ok && parsed.key.publicKey.text).toBe(pub);
    expect(parseVerifyKeys(pub).ok).toBe(true);
    expect(c.out()).not.toContain(priv.slice(PRIVATE_PREFIX.length));
    expect(envLine(c.out(), "NODE_COMMAND_PUBLIC_KEY")).toBe(pub);

    const again = capture();
    expect(await runCli(["keys", "signing", "--out", out], again.io)).toBe(1);
    expect(again.err()).toMatch(/exists already; not replacing a key/);
    expect((await readFile(join(out, PRIVATE_FILE), "utf8")).trim()).toBe(priv);
  });

  it("an existing private key file is not replaced, and no public file is left beside it", async () => {
    const out = join(dir, "half");
    const first = capture();
    await runCli(["keys", "signing", "--out", out], first.io);
    await rm(join(out, PUBLIC_FILE));
    const c = capture();
    expect(await runCli(["keys", "signing", "--out", out], c.io)).toBe(1);
    expect(c.err()).toContain(PRIVATE_FILE);
    await expect(stat(join(out, PUBLIC_FILE))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("a missing or unknown subcommand is a usage error", async () => {
    const c = capture();
    expect(await runCli(["keys"], c.io)).toBe(2);
    expect(await runCli(["keys", "ssh"], c.io)).toBe(2);
    expect(c.err()).toMatch(/unknown subcommand 'ssh'/);
  });
});

describe("steward keys nats", () => {
  let dir = "";
  let fleet = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "steward-keys-nats-"));
    fleet = join(dir, "fleet.yaml");
    await writeFile(fleet, JSON.stringify({ version: 1, nodes: { a: { services: {} }, b: { services: {} } } }));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  type Out = { config: string; created: string[]; rotated: string[]; users: { name: string; public_key: string; seed_file: string }[] };
  const run = async (...args: string[]) => {
    const c = capture();
    const code = await runCli(["keys", "nats", ...args], c.io);
    return { code, c, json: code === 0 && args.includes("--json") ? (JSON.parse(c.out()) as Out) : undefined };
  };

  it("writes a seed per node and component (0600, in a 0700 dir) and the server's include, printing no seed", async () => {
    const out = join(dir, "keys");
    const { code, json, c } = await run("--out", out, "--fleet", fleet, "--json");
    expect(code, c.err()).toBe(0);
    expect(json!.users.map((u) => u.name)).toEqual(["node.a", "node.b", ...NATS_COMPONENTS]);
    expect(json!.created).toHaveLength(json!.users.length);
    expect((await stat(join(out, "seeds"))).mode & 0o777).toBe(0o700);
    const conf = await readFile(json!.config, "utf8");
    for (const u of json!.users) {
      expect((await stat(u.seed_file)).mode & 0o777).toBe(0o600);
      const auth = natsAuthFromEnv({ NATS_NKEY_SEED_FILE: u.seed_file })!;
      expect(auth.publicKey).toBe(u.public_key);
      expect(conf).toContain(u.public_key);
      expect(conf).not.toContain(auth.seed);
    }
    const table = await run("--out", out, "--fleet", fleet);
    expect(table.code).toBe(0);
    expect(table.c.out()).toMatch(/^node\.a\s+U[A-Z2-7]{55}\s+\S+node\.a\.nk$/m);
    expect(table.c.out()).not.toMatch(/\bSU[A-Z2-7]{50,}/);
    // nats-server takes the include as it is.
    await writeFile(join(out, "server.conf"), `listen: 127.0.0.1:4222\ninclude ./nats-users.conf\n`);
    const t = await promisify(execFile)(process.env["NATS_SERVER_BIN"] ?? "nats-server", ["-t", "-c", join(out, "server.conf")]);
    expect(t.stdout + t.stderr).toMatch(/valid|successful/);
  });

  it("a second run keeps every seed; --rotate gives only the named identity a new one", async () => {
    const out = join(dir, "rotate");
    const first = (await run("--out", out, "--fleet", fleet, "--json")).json!;
    const again = (await run("--out", out, "--fleet", fleet, "--json")).json!;
    expect(again.created).toEqual([]);
    expect(again.users).toEqual(first.users);
    const rotated = (await run("--out", out, "--fleet", fleet, "--rotate", "node.b", "--json")).json!;
    expect(rotated.rotated).toEqual(["node.b"]);
    const changed = rotated.users.filter((u, i) => u.public_key !== first.users[i]!.public_key).map((u) => u.name);
    expect(changed).toEqual(["node.b"]);
    const conf = await readFile(rotated.config, "utf8");
    expect(conf).not.toContain(first.users.find((u) => u.name === "node.b")!.public_key);
  });

  it("bad input exits 2 naming it", async () => {
    expect((await run("--fleet", fleet)).c.err()).toMatch(/--out DIR is required/);
    const r = await run("--out", join(dir, "x"), "--fleet", fleet, "--rotate", "node.zzz");
    expect(r.code).toBe(2);
    expect(r.c.err()).toMatch(/--rotate: no identity named node\.zzz/);
    const f = await run("--out", join(dir, "x"), "--fleet", join(dir, "none.yaml"));
    expect(f.code).toBe(2);
    expect(f.c.err()).toMatch(/--fleet .*ENOENT/);
  });
});
