import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { promisify } from "node:util";
import { NATS_COMPONENTS } from "@steward/contracts/nats-permissions";
import { natsAuthFromEnv } from "@steward/platform/nats-auth";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
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

describe("steward keys tls", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "steward-keys-tls-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  type Out = { ca_file: string; cert_file: string; key_file: string; subject_alt_name: string; days: number; replaced: boolean };
  const run = async (...args: string[]) => {
    const c = capture();
    const code = await runCli(["keys", "tls", ...args], c.io);
    return { code, c, json: code === 0 && args.includes("--json") ? (JSON.parse(c.out()) as Out) : undefined };
  };
  const files = async (out: string) => Object.fromEntries(await Promise.all(["ca.pem", "server.pem", "server.key"].map(async (f) => [f, await readFile(join(out, "tls", f), "utf8")] as const)));
  /** The NATS services docker-compose.yml defines: clients and routes reach the servers by these names. */
  const composeNats = Object.keys((parseYaml(readFileSync(join(dirname(fileURLToPath(import.meta.url)), "..", "..", "docker-compose.yml"), "utf8"), { merge: true }) as { services: Record<string, unknown> }).services).filter((s) => /^nats-\d+$/.test(s));

  it("writes a CA and a server certificate it signed for the compose NATS services, localhost, 127.0.0.1 and each --host; the key 0600", async () => {
    const out = join(dir, "keys");
    const { code, json, c } = await run("--out", out, "--host", "steward.example.lan,192.0.2.7", "--days", "90", "--json");
    expect(code, c.err()).toBe(0);
    expect(json).toMatchObject({ ca_file: join(out, "tls", "ca.pem"), cert_file: join(out, "tls", "server.pem"), key_file: join(out, "tls", "server.key"), days: 90, replaced: false });
    expect((await stat(join(out, "tls"))).mode & 0o777).toBe(0o700);
    expect((await stat(json!.key_file)).mode & 0o777).toBe(0o600);
    expect((await stat(json!.ca_file)).mode & 0o777).toBe(0o644);
    // Nothing else is left: the CA's key, the request and the serial are gone (a new certificate is a new CA).
    expect((await readdir(join(out, "tls"))).sort()).toEqual(["ca.pem", "server.key", "server.pem"]);
    expect((await readdir(out)).sort()).toEqual(["tls"]);
    const ca = new X509Certificate(await readFile(json!.ca_file));
    const cert = new X509Certificate(await readFile(json!.cert_file));
    expect(ca.ca).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkPrivateKey((await import("node:crypto")).createPrivateKey(await readFile(json!.key_file)))).toBe(true);
    expect(composeNats).toEqual(["nats-1", "nats-2", "nats-3"]);
    for (const host of [...composeNats, "localhost", "steward.example.lan"]) expect(cert.checkHost(host), host).toBe(host);
    for (const ip of ["127.0.0.1", "192.0.2.7"]) expect(cert.checkIP(ip), ip).toBe(ip);
    expect(cert.checkHost("nats-4")).toBeUndefined();
    expect(cert.checkIP("192.0.2.8")).toBeUndefined();
    // Server and client: cluster routes present it to each other (verify: true).
    expect(cert.keyUsage).toEqual(expect.arrayContaining(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]));
    const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(88);
    expect(days).toBeLessThan(91);
    expect(json!.subject_alt_name).toBe("DNS:nats-1,DNS:nats-2,DNS:nats-3,DNS:localhost,IP:127.0.0.1,DNS:steward.example.lan,IP:192.0.2.7");
    // The table names the files and never prints a key.
    const key = await readFile(json!.key_file, "utf8");
    expect(key).toMatch(/PRIVATE KEY/);
    expect(c.out()).not.toContain("PRIVATE KEY");
  });

  it("refuses to replace certificates already there (exit 1, files unchanged); --force makes a new CA and certificate", async () => {
    const out = join(dir, "again");
    expect((await run("--out", out)).code).toBe(0);
    const before = await files(out);
    const again = await run("--out", out, "--host", "other.lan");
    expect(again.code).toBe(1);
    expect(again.c.err()).toMatch(/holds ca\.pem, server\.pem, server\.key already; not replacing certificates that may be in use \(--force/);
    expect(await files(out)).toEqual(before);
    // One file left of three still counts as in use.
    await rm(join(out, "tls", "server.pem"));
    expect((await run("--out", out)).c.err()).toMatch(/holds ca\.pem, server\.key already/);
    const forced = await run("--out", out, "--force", "--json");
    expect(forced.code, forced.c.err()).toBe(0);
    expect(forced.json!.replaced).toBe(true);
    const after = await files(out);
    expect(after["ca.pem"]).not.toBe(before["ca.pem"]);
    expect(after["server.key"]).not.toBe(before["server.key"]);
    expect(new X509Certificate(after["server.pem"]!).verify(new X509Certificate(after["ca.pem"]!).publicKey)).toBe(true);
    expect((await stat(join(out, "tls", "server.key"))).mode & 0o777).toBe(0o600);
    expect(forced.c.out()).not.toContain("PRIVATE KEY");
  });

  it("bad input exits 2 naming it, and writes nothing", async () => {
    expect((await run()).c.err()).toMatch(/--out DIR is required/);
    const out = join(dir, "bad");
    for (const [args, msg] of [
      [["--host", "a b"], /--host: 'a b' is neither a host name nor an IP address/],
      [["--host", "x;rm -rf /"], /--host: 'x;rm -rf \/' is neither/],
      [["--days", "0"], /--days must be a whole number of days from 1 to 3650/],
      [["--days", "2.5"], /--days must be/],
      [["--days", "ten"], /--days must be/],
    ] as const) {
      const r = await run("--out", out, ...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.c.err()).toMatch(msg);
    }
    await expect(stat(out)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("without openssl it fails saying so and changes nothing", async () => {
    const out = join(dir, "no-openssl");
    const kept = process.env["OPENSSL_BIN"];
    process.env["OPENSSL_BIN"] = join(dir, "no-such-openssl");
    try {
      const r = await run("--out", out);
      expect(r.code).toBe(1);
      expect(r.c.err()).toMatch(/openssl is not installed; nothing was changed/);
    } finally {
      if (kept === undefined) delete process.env["OPENSSL_BIN"];
      else process.env["OPENSSL_BIN"] = kept;
    }
    expect(await readdir(out)).toEqual([]);
  });
});
