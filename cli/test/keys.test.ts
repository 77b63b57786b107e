import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
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
    expect(await runCli(["keys", "nats"], c.io)).toBe(2);
    expect(c.err()).toMatch(/unknown subcommand 'nats'/);
  });
});
