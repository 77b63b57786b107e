import { constants } from "node:fs";
import { access, mkdir, mkdtemp, open, readFile, rename, rm, unlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { generateSigningKey } from "@steward/contracts/command-keys";
import { NATS_COMPONENTS } from "@steward/contracts/nats-permissions";
import { parseFleetSpec } from "@steward/fleet/fleet-spec";
import { writeNatsKeys, type NatsKeysResult } from "../nats-keys.js";
import { CA_FILE, CERT_FILE, COMPOSE_NATS_HOSTS, KEY_FILE, LOCAL_NATS_HOSTS, makeNatsTls, subjectAltName, type NatsTlsFiles } from "../nats-tls.js";
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

export const TLS_DIR = "tls";
const DEFAULT_TLS_DAYS = 730;
const MAX_TLS_DAYS = 3650;

export interface TlsKeysResult {
  files: NatsTlsFiles;
  /** What the server certificate is valid for, as its subjectAltName says. */
  subjectAltName: string;
  days: number;
  replaced: boolean;
}

/** Pure: what `steward keys tls` prints: the files and the names, never a key. */
export function renderTlsKeys(r: TlsKeysResult, o: { json: boolean }): string {
  if (o.json) return JSON.stringify({ ca_file: r.files.caFile, cert_file: r.files.certFile, key_file: r.files.keyFile, subject_alt_name: r.subjectAltName, days: r.days, replaced: r.replaced }, null, 2);
  return [
    `# NATS TLS${r.replaced ? " (replaced: give every client the new CA)" : ""}, valid ${r.days} days for ${r.subjectAltName}`,
    `CA (every client's NATS_CA_FILE; copy it to each node):  ${r.files.caFile}`,
    `server certificate:                                      ${r.files.certFile}`,
    `server key (mode 0600, the NATS servers only):           ${r.files.keyFile}`,
    "# docker-compose.yml mounts them from $STEWARD_NATS_KEYS/tls; the CA's own key is not kept (a new certificate is a new CA).",
  ].join("\n");
}

/** `steward keys tls --out DIR [--host NAME|IP,...] [--days N] [--force] [--json]`. */
async function tlsKeysCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(KEYS.subcommands.tls.flags, args);
  if (!values.out) {
    io.err("error: --out DIR is required (the keys directory; the files go into DIR/tls)");
    return 2;
  }
  const days = values.days === undefined ? DEFAULT_TLS_DAYS : Number(values.days);
  if (!Number.isInteger(days) || days < 1 || days > MAX_TLS_DAYS) {
    io.err(`error: --days must be a whole number of days from 1 to ${MAX_TLS_DAYS}`);
    return 2;
  }
  const extra = (values.host ?? "").split(",").map((h) => h.trim()).filter(Boolean);
  const hosts = [...COMPOSE_NATS_HOSTS, ...LOCAL_NATS_HOSTS, ...extra];
  let san: string;
  try {
    san = subjectAltName(hosts);
  } catch (err) {
    io.err(`error: --host: ${(err as Error).message}`);
    return 2;
  }
  const out = resolve(values.out);
  const dir = join(out, TLS_DIR);
  const names = [CA_FILE, CERT_FILE, KEY_FILE];
  const present = (await Promise.all(names.map((n) => access(join(dir, n)).then(() => n, () => undefined)))).filter((n): n is string => n !== undefined);
  if (present.length && !values.force) {
    io.err(`error: ${dir} holds ${present.join(", ")} already; not replacing certificates that may be in use (--force replaces them, and every client then needs the new ${CA_FILE})`);
    return 1;
  }
  // Made whole in a directory of its own, then moved into place: a failure leaves the files there as they were.
  let tmp: string | undefined;
  try {
    await mkdir(out, { recursive: true, mode: 0o700 });
    tmp = await mkdtemp(join(out, ".tls-new-"));
    const made = makeNatsTls(tmp, { hosts, days, caName: "Steward NATS CA", clientAuth: true });
    if ("missing" in made) {
      io.err(`error: could not make the certificates: ${made.missing}; nothing was changed`);
      return 1;
    }
    await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const n of names) await rename(join(tmp, n), join(dir, n));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    io.err(`error: could not write the certificates into ${dir}: ${e.code ?? e.message}`);
    return 1;
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
  const files = { caFile: join(dir, CA_FILE), certFile: join(dir, CERT_FILE), keyFile: join(dir, KEY_FILE) };
  io.out(renderTlsKeys({ files, subjectAltName: san, days, replaced: present.length > 0 }, { json: values.json }));
  return 0;
}

/** `steward keys signing [--out DIR] [--json]`, `steward keys nats ...`, `steward keys tls ...`. */
export async function keysCommand(args: string[], io: Io): Promise<number> {
  const sub = findSubcommand(KEYS, args)?.[0];
  if (sub === "nats") return natsKeysCommand(args.slice(1), io);
  if (sub === "tls") return tlsKeysCommand(args.slice(1), io);
  if (sub !== "signing") {
    io.err(args[0] === undefined ? "usage: steward keys signing|nats|tls ... (see 'steward keys --help')" : `unknown subcommand '${args[0]}'; see 'steward keys --help'`);
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
