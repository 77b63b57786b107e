import { constants } from "node:fs";
import { mkdir, open, readFile, unlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { generateSigningKey } from "@steward/contracts/command-keys";
import { NATS_COMPONENTS } from "@steward/contracts/nats-permissions";
import { parseFleetSpec } from "@steward/fleet/fleet-spec";
import { writeNatsKeys, type NatsKeysResult } from "../nats-keys.js";
import { findSubcommand, KEYS, type Io } from "../command-table.js";
import { parseFlags } from "../parse.js";

export const PRIVATE_FILE = "executor-signing.key";
export const PUBLIC_FILE = "node-command.pub";

type Pair = ReturnType<typeof generateSigningKey>;

/** Pure: what `steward keys signing` prints. The private key is printed only when it is not written to a file. */
export function renderSigningKeys(pair: Pair, o: { json: boolean; files?: { private: string; public: string } }): string {
  if (o.json) {
    return JSON.stringify({ key_id: pair.id, public_key: pair.publicKey, ...(o.files ? { files: o.files } : { private_key: pair.privateKey }) }, null, 2);
  }
  const lines = [`# Steward command-signing key ${pair.id} (Ed25519)`];
  if (o.files) {
    lines.push(`# private key: ${o.files.private} (mode 0600): the executor's EXECUTOR_SIGNING_KEY, on no other host`);
    lines.push(`# public key: ${o.files.public}`);
  } else {
    lines.push("# The executor only (keep it secret; it is on no other host):", `EXECUTOR_SIGNING_KEY=${pair.privateKey}`);
  }
  lines.push("# Every node-agent (during a rotation: old,new):", `NODE_COMMAND_PUBLIC_KEY=${pair.publicKey}`);
  return lines.join("\n");
}

/** Creates `path` with `data` and `mode`; refuses (EEXIST) to replace a file, so a key in use is never overwritten. */
async function writeNew(path: string, data: string, mode: number): Promise<void> {
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await fh.writeFile(data);
    // The umask applies to open(); the file gets exactly the mode asked for.
    await fh.chmod(mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Pure: what `steward keys nats` prints: each identity's public key and seed file, never a seed. */
export function renderNatsKeys(r: NatsKeysResult, o: { json: boolean }): string {
  if (o.json) return JSON.stringify({ config: r.configFile, created: r.created, rotated: r.rotated, users: r.users.map((u) => ({ name: u.name, public_key: u.publicKey, seed_file: u.seedFile })) }, null, 2);
  const width = Math.max(...r.users.map((u) => u.name.length));
  const lines = [`# nats-server: include ${r.configFile} in its config (public keys and permissions only)`];
  for (const u of r.users) {
    const what = r.rotated.includes(u.name) ? "  (rotated)" : r.created.includes(u.name) ? "  (new)" : "";
    lines.push(`${u.name.padEnd(width)}  ${u.publicKey}  ${u.seedFile}${what}`);
  }
  lines.push("# Give each process its own seed file (mode 0600) as NATS_NKEY_SEED_FILE; then reload nats-server (nats-server --signal reload).");
  return lines.join("\n");
}

/** `steward keys nats --out DIR [--fleet FILE] [--rotate NAME,...] [--json]`. */
async function natsKeysCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(KEYS.subcommands.nats.flags, args);
  if (!values.out) {
    io.err("error: --out DIR is required (where nats-users.conf and the seeds go)");
    return 2;
  }
  const fleet = values.fleet ?? io.env["FLEET_SPEC"];
  if (!fleet) {
    io.err("error: --fleet FILE is required (or FLEET_SPEC): its nodes get identities");
    return 2;
  }
  let text: string;
  try {
    text = await readFile(resolve(fleet), "utf8");
  } catch (err) {
    io.err(`error: --fleet ${fleet}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return 2;
  }
  const parsed = parseFleetSpec(text, fleet);
  if (!parsed.ok) {
    io.err(`error: --fleet ${fleet} is invalid:\n${parsed.problems.map((p) => `  ${p.file}:${p.path}: ${p.message}`).join("\n")}`);
    return 2;
  }
  const rotate = (values.rotate ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  try {
    const r = await writeNatsKeys(resolve(values.out), Object.keys(parsed.spec.nodes), NATS_COMPONENTS, rotate);
    io.out(renderNatsKeys(r, { json: values.json }));
    return 0;
  } catch (err) {
    io.err(`error: ${(err as Error).message}`);
    return err instanceof RangeError ? 2 : 1;
  }
}

/** `steward keys signing [--out DIR] [--json]`, `steward keys nats ...`. */
export async function keysCommand(args: string[], io: Io): Promise<number> {
  const sub = findSubcommand(KEYS, args)?.[0];
  if (sub === "nats") return natsKeysCommand(args.slice(1), io);
  if (sub !== "signing") {
    io.err(args[0] === undefined ? "usage: steward keys signing|nats ... (see 'steward keys --help')" : `unknown subcommand '${args[0]}'; see 'steward keys --help'`);
    return 2;
  }
  const { values } = parseFlags(KEYS.subcommands.signing.flags, args.slice(1));
  const pair = generateSigningKey();
  if (values.out === undefined) {
    io.out(renderSigningKeys(pair, { json: values.json }));
    return 0;
  }
  const dir = resolve(values.out);
  const files = { private: join(dir, PRIVATE_FILE), public: join(dir, PUBLIC_FILE) };
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // The public file first: when it exists already, nothing is written. When the private one cannot be, the new
    // public file goes again, so a directory never holds the halves of two different pairs.
    await writeNew(files.public, `${pair.publicKey}\n`, 0o644);
    await writeNew(files.private, `${pair.privateKey}\n`, 0o600).catch(async (err: unknown) => {
      await unlink(files.public).catch(() => undefined);
      throw err;
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    io.err(e.code === "EEXIST" ? `error: ${e.path ?? dir} exists already; not replacing a key that may be in use (remove it, or choose another --out)` : `error: could not write the keys into ${dir}: ${e.code ?? e.message}`);
    return 1;
  }
  io.out(renderSigningKeys(pair, { json: values.json, files }));
  return 0;
}
