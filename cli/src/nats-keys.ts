import { randomBytes } from "node:crypto";
import { chmod, mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { natsIdentityName, type NatsComponent } from "@steward/contracts/nats-permissions";
import { natsIdentities, natsPublicKeyOf, newNatsUserKey, planNatsUsers, renderNatsAuthorization, type NatsKeyPair } from "@steward/platform/nats-auth";

/**
 * The NATS identities of one installation on disk (`steward keys nats`, and `steward up` for its own stack):
 * `<dir>/nats-users.conf` (the server's authorization include: public keys only) and `<dir>/seeds/<name>.nk`
 * (one seed per identity, mode 0600, in a 0700 directory). Seeds already there are kept, so adding a node or
 * rotating one identity leaves every other identity's seed as it is.
 */
export const NATS_USERS_FILE = "nats-users.conf";
export const SEEDS_DIR = "seeds";
export const seedFileOf = (dir: string, name: string): string => join(dir, SEEDS_DIR, `${name}.nk`);

export interface NatsKeysResult {
  /** The server's authorization include. */
  configFile: string;
  users: { name: string; publicKey: string; seedFile: string }[];
  /** Identities given a new seed this run (new ones and rotated ones). */
  created: string[];
  rotated: string[];
}

/** A seed file: written whole to a 0600 temp file, then renamed over the old one (a reader never sees half a seed). */
async function writeSeed(path: string, seed: string): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.chmod(0o600); // the umask applies to open()
    await fh.writeFile(`${seed}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path).catch(async (err: unknown) => {
    await unlink(tmp).catch(() => undefined);
    throw err;
  });
}

async function existingKey(path: string): Promise<NatsKeyPair | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const seed = text.trim();
  try {
    return { seed, publicKey: natsPublicKeyOf(seed) };
  } catch (err) {
    throw new Error(`${path} ${(err as Error).message}; remove it or rotate that identity`);
  }
}

/** Makes (or keeps) a seed per identity and writes the server config. `rotate` names identities to give new seeds. */
export async function writeNatsKeys(dir: string, nodes: readonly string[], components: readonly NatsComponent[], rotate: readonly string[] = []): Promise<NatsKeysResult> {
  await mkdir(join(dir, SEEDS_DIR), { recursive: true, mode: 0o700 });
  await chmod(join(dir, SEEDS_DIR), 0o700);
  const names = natsIdentities(nodes, components).map(natsIdentityName);
  const unknown = rotate.filter((r) => !names.includes(r));
  if (unknown.length) throw new RangeError(`--rotate: no identity named ${unknown.join(", ")} (there are: ${names.join(", ")})`);
  const keys = new Map<string, NatsKeyPair>();
  const created: string[] = [];
  for (const name of names) {
    const kept = rotate.includes(name) ? undefined : await existingKey(seedFileOf(dir, name));
    if (kept) {
      keys.set(name, kept);
      continue;
    }
    const fresh = newNatsUserKey();
    await writeSeed(seedFileOf(dir, name), fresh.seed);
    keys.set(name, fresh);
    created.push(name);
  }
  const users = planNatsUsers(nodes, components, (name) => keys.get(name)!);
  const configFile = join(dir, NATS_USERS_FILE);
  const tmp = `${configFile}.${randomBytes(4).toString("hex")}.tmp`;
  const fh = await open(tmp, "wx", 0o644);
  try {
    await fh.writeFile(renderNatsAuthorization(users));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, configFile);
  return {
    configFile,
    users: users.map((u) => ({ name: u.name, publicKey: u.publicKey, seedFile: seedFileOf(dir, u.name) })),
    created: created.filter((n) => !rotate.includes(n)),
    rotated: [...rotate],
  };
}
