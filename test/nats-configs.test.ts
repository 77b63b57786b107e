/**
 * The NATS configs in infra/nats/ parse with the real nats-server (`nats-server -t -c FILE`). Options newer than the
 * installed server are stripped for the check (the test's name says which and why); everything else must parse.
 * docker-compose.yml runs nats:2.10, which knows every option used. Every config includes the users file
 * `steward keys nats` writes (`include ./nats-users.conf`): the check writes one next to each copy, from the same
 * generator, so auth is part of what parses. Every config requires TLS with the files `steward keys tls` writes,
 * at their path in the NATS containers (/etc/nats/tls); the check makes them with that command and points the copies
 * at them (the one change besides the newer options), so the certificates are part of what parses too: nats-server
 * loads them while checking. No TLS option needs a newer server than 2.9.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NATS_COMPONENTS } from "@steward/contracts/nats-permissions";
import { newNatsUserKey, planNatsUsers, renderNatsAuthorization } from "@steward/platform/nats-auth";
import { runCli } from "@steward/cli";

const run = promisify(execFile);
const BIN = process.env["NATS_SERVER_BIN"] ?? "nats-server";
const DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "infra", "nats");

/** Options the configs use that older servers refuse as unknown, with the first version that knows them. */
const NEWER_OPTIONS: Record<string, [number, number]> = {
  // fsync every write (jetstream block).
  sync_interval: [2, 10],
};

async function serverVersion(): Promise<[number, number] | undefined> {
  try {
    const { stdout } = await run(BIN, ["--version"]);
    const m = /v(\d+)\.(\d+)/.exec(stdout);
    return m ? [Number(m[1]), Number(m[2])] : undefined;
  } catch {
    return undefined;
  }
}

const version = await serverVersion();
const older = (need: [number, number]) => version !== undefined && (version[0] < need[0] || (version[0] === need[0] && version[1] < need[1]));
const unknownHere = Object.keys(NEWER_OPTIONS).filter((o) => older(NEWER_OPTIONS[o]!));
const files = (await readdir(DIR)).filter((f) => f.endsWith(".conf")).sort();
const work = await mkdtemp(join(tmpdir(), "steward-nats-conf-"));
afterAll(() => rm(work, { recursive: true, force: true }));

/** Where docker-compose.yml mounts the TLS files; the copies read them from `tlsDir` instead. */
const CONTAINER_TLS_DIR = "/etc/nats/tls/";
let tlsDir = join(work, "tls");

/** Drops the lines setting an option this server does not know, and says which lines went; points TLS at `tlsDir`. */
function strip(text: string): { text: string; dropped: string[] } {
  const dropped: string[] = [];
  const kept = text.split("\n").filter((line) => {
    const key = /^\s*([A-Za-z_]+)\s*[:=\s]/.exec(line)?.[1];
    if (key && unknownHere.includes(key)) return dropped.push(line.trim()), false;
    return true;
  });
  return { text: kept.join("\n").replaceAll(CONTAINER_TLS_DIR, `${tlsDir}/`), dropped };
}

async function check(path: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await run(BIN, ["-t", "-c", path]);
    return { ok: true, output: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ""}${e.stderr ?? ""}${e.message}` };
  }
}

const skipped = unknownHere.length ? ` (without ${unknownHere.map((o) => `${o}: needs ${NEWER_OPTIONS[o]!.join(".")}+`).join(", ")}; installed ${version!.join(".")})` : "";

describe.skipIf(version === undefined)(`infra/nats configs parse with nats-server -t${skipped}`, () => {
  beforeAll(async () => {
    // What `steward keys nats` writes as nats-users.conf, for a fleet of two nodes.
    await writeFile(join(work, "nats-users.conf"), renderNatsAuthorization(planNatsUsers(["web1", "db1"], NATS_COMPONENTS, () => newNatsUserKey())));
    // What `steward keys tls --out DIR` writes as DIR/tls.
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t), env: {} };
    expect(await runCli(["keys", "tls", "--out", work], io), out.join("\n")).toBe(0);
  });

  it("there are configs to check", () => {
    expect(files.length).toBeGreaterThanOrEqual(4);
  });

  it.each(files)("%s includes the generated users file (clients must log in)", async (file) => {
    expect(await readFile(join(DIR, file), "utf8")).toMatch(/^include \.\/nats-users\.conf$/m);
  });

  it.each(files)("%s requires TLS on client connections (and on cluster routes, each side verified), from /etc/nats/tls", async (file) => {
    const text = await readFile(join(DIR, file), "utf8");
    const block = (from: number) => text.slice(from, text.indexOf("}", from));
    const client = /^tls \{/m.exec(text);
    expect(client, file).not.toBeNull();
    expect(block(client!.index)).toMatch(/cert_file: \/etc\/nats\/tls\/server\.pem\n\s*key_file: \/etc\/nats\/tls\/server\.key/);
    if (/^cluster \{/m.test(text)) {
      const route = /^ {2}tls \{/m.exec(text);
      expect(route, file).not.toBeNull();
      expect(block(route!.index)).toMatch(/ca_file: \/etc\/nats\/tls\/ca\.pem\n\s*verify: true/);
    }
  });

  it.each(files)("%s", async (file) => {
    const { text, dropped } = strip(await readFile(join(DIR, file), "utf8"));
    // Only the known-newer options are dropped, and each at most once per file.
    expect(dropped.every((l) => unknownHere.some((o) => l.startsWith(o)))).toBe(true);
    const path = join(work, file);
    await writeFile(path, text);
    const r = await check(path);
    expect(r.ok, r.output).toBe(true);
    expect(r.output).toMatch(/is valid/);
  });

  it("the check fails when the users file is missing (a config that includes it cannot run open by accident)", async () => {
    const sub = await mkdtemp(join(work, "no-users-"));
    const path = join(sub, files[0]!);
    await writeFile(path, strip(await readFile(join(DIR, files[0]!), "utf8")).text);
    const r = await check(path);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/nats-users\.conf/);
  });

  it("the check fails when the server certificate is missing (a config that requires TLS cannot run without it)", async () => {
    const sub = await mkdtemp(join(work, "no-tls-"));
    await writeFile(join(sub, "nats-users.conf"), await readFile(join(work, "nats-users.conf"), "utf8"));
    const path = join(sub, files[0]!);
    const kept = tlsDir;
    tlsDir = join(sub, "tls");
    try {
      await writeFile(path, strip(await readFile(join(DIR, files[0]!), "utf8")).text);
    } finally {
      tlsDir = kept;
    }
    const r = await check(path);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/server\.pem/);
  });

  it("the check fails on an option the server does not know (so a typo in a config is caught)", async () => {
    const path = join(work, "typo.conf");
    await writeFile(path, `${strip(await readFile(join(DIR, files[0]!), "utf8")).text}\njetstream_typo: true\n`);
    const r = await check(path);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/unknown field "jetstream_typo"/);
  });
});
