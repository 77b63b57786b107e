import { constants } from "node:fs";
import { mkdir, open, unlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { generateSigningKey } from "@steward/contracts/command-keys";
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

/** `steward keys signing [--out DIR] [--json]`. */
export async function keysCommand(args: string[], io: Io): Promise<number> {
  const sub = findSubcommand(KEYS, args)?.[0];
  if (sub !== "signing") {
    io.err(args[0] === undefined ? "usage: steward keys signing [--out DIR] [--json]" : `unknown subcommand '${args[0]}'; see 'steward keys --help'`);
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
