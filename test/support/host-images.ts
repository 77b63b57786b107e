/**
 * Base images made from this machine's own binaries, for a test dockerd that reaches no registry: a rootfs with the
 * host's `node`, `nats-server` or PostgreSQL and exactly the shared libraries `ldd` names for them, plus the static
 * busybox for a shell and small tools, put on the engine with `docker import` under the tag the real image has
 * (the Dockerfile's node bases, nats:2.10-alpine, postgres:15). Each keeps the contract the compose file relies on (paths,
 * users, entry point, environment), no more.
 */
import { execFile } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

const BUSYBOX_APPLETS = ["sh", "env", "chown", "wget", "cat", "ls", "mkdir", "rm", "chmod", "id", "echo", "printf", "sleep", "test", "true", "false", "sed", "grep", "find"];
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

interface Rootfs {
  root: string;
  /** Copies a host file (following symlinks) to `to` (default: the same path), and every library `ldd` names for it. */
  binary(from: string, to?: string): Promise<void>;
  /** Copies a file or directory as it is (no library resolution). */
  copy(from: string, to?: string, filter?: (src: string) => boolean): void;
  write(path: string, text: string, mode?: number): void;
  /** Makes a directory; `uid` owns it (tar keeps owners: the tests run as root). */
  dir(path: string, mode?: number, uid?: number): void;
}

function hostBinary(name: string, candidates: string[]): string {
  const hit = candidates.find((p) => existsSync(p));
  if (!hit) throw new Error(`${name} not found on this machine (looked at ${candidates.join(", ")})`);
  return realpathSync(hit);
}

async function lddPaths(file: string): Promise<string[]> {
  const out = await run("ldd", [file]).then((r) => r.stdout, () => "");
  const paths: string[] = [];
  for (const line of out.split("\n")) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) paths.push(m[1]);
  }
  return paths;
}

async function withRootfs(tag: string, dockerHost: string, changes: string[], fill: (fs: Rootfs) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "stw-host-image-"));
  const root = join(dir, "root");
  const copied = new Set<string>();
  const fs: Rootfs = {
    root,
    async binary(from, to = from) {
      const target = join(root, to);
      mkdirSync(dirname(target), { recursive: true });
      copyFileSync(from, target);
      chmodSync(target, 0o755);
      for (const lib of await lddPaths(from)) {
        if (copied.has(lib)) continue;
        copied.add(lib);
        mkdirSync(dirname(join(root, lib)), { recursive: true });
        copyFileSync(lib, join(root, lib));
      }
    },
    copy(from, to = from, filter) {
      cpSync(from, join(root, to), { recursive: true, dereference: false, filter: filter ? (s) => filter(s) : undefined });
    },
    write(path, text, mode = 0o644) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text, { mode });
    },
    dir(path, mode = 0o755, uid = 0) {
      mkdirSync(join(root, path), { recursive: true });
      chmodSync(join(root, path), mode);
      if (uid !== 0) chownSync(join(root, path), uid, uid);
    },
  };
  try {
    for (const d of ["bin", "usr/bin", "etc", "proc", "sys", "dev", "root"]) fs.dir(d);
    fs.dir("tmp", 0o1777);
    const busybox = hostBinary("busybox", ["/bin/busybox", "/usr/bin/busybox"]);
    copyFileSync(busybox, join(root, "bin/busybox"));
    chmodSync(join(root, "bin/busybox"), 0o755);
    for (const a of BUSYBOX_APPLETS) symlinkSync("busybox", join(root, "bin", a));
    symlinkSync("/bin/busybox", join(root, "usr/bin/env"));
    await fill(fs);
    const tarball = join(dir, "rootfs.tar");
    await run("tar", ["--numeric-owner", "-C", root, "-cf", tarball, "."]);
    const args = ["import", ...changes.flatMap((c) => ["--change", c]), tarball, tag];
    await run("docker", args, { env: { ...process.env, DOCKER_HOST: dockerHost }, maxBuffer: 1 << 20 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function users(fs: Rootfs, extra: string[]): void {
  fs.write("etc/passwd", ["root:x:0:0:root:/root:/bin/sh", ...extra, "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh", ""].join("\n"));
  fs.write("etc/group", ["root:x:0:", ...extra.map((u) => { const [name, , , gid] = u.split(":"); return `${name}:x:${gid}:`; }), "nogroup:x:65534:", ""].join("\n"));
}

/**
 * The Dockerfile's base images, read from its FROM lines (build stage first, runtime last), so the stand-ins below
 * carry the names the Dockerfile asks for. The node inside is the host's, whatever version the tag names: no
 * registry is reachable here to pull the real one.
 */
function dockerfileBases(): { build: string; runtime: string } {
  const from = readFileSync(new URL("../../Dockerfile", import.meta.url), "utf8")
    .split("\n")
    .map((l) => /^FROM\s+(\S+)/i.exec(l.trim())?.[1])
    .filter((x): x is string => x !== undefined);
  if (from.length < 2) throw new Error("Dockerfile: expected a build stage and a runtime stage (two FROM lines)");
  return { build: from[0]!, runtime: from[from.length - 1]! };
}

/**
 * The runtime base (node:NN-bookworm-slim): the host's node at /usr/local/bin/node (where the official image has it),
 * user `node` (1000), busybox for `sh` and `install`.
 */
export async function importNodeSlimImage(dockerHost: string, tag = dockerfileBases().runtime): Promise<void> {
  await withRootfs(tag, dockerHost, [`ENV PATH=${PATH}`, 'CMD ["node"]'], async (fs) => {
    users(fs, ["node:x:1000:1000::/home/node:/bin/sh"]);
    fs.dir("home/node", 0o755, 1000);
    await fs.binary(hostBinary("node", [process.execPath]), "/usr/local/bin/node");
  });
}

/** The rest of glibc next to the libc node uses (native addons such as a bundler's binding link librt and friends). */
async function glibcCompanions(fs: Rootfs, node: string): Promise<void> {
  const libc = (await lddPaths(node)).find((p) => /\/libc\.so\.6$/.test(p));
  if (!libc) return;
  for (const name of ["librt.so.1", "libresolv.so.2", "libutil.so.1", "libanl.so.1"]) {
    const p = join(dirname(libc), name);
    if (existsSync(p)) fs.copy(realpathSync(p), p);
  }
}

/**
 * The build stage's base (node:NN-bookworm): the slim image plus the host's npm and its package cache, with npm told to
 * prefer that cache, so `npm ci` installs what the lock file pins without a registry round trip for each package.
 */
export async function importNodeBuildImage(dockerHost: string, tag = dockerfileBases().build): Promise<void> {
  const npmDir = dirname(dirname(realpathSync(hostBinary("npm", ["/usr/bin/npm", "/usr/local/bin/npm"]))));
  const cache = join(process.env["npm_config_cache"] ?? join(homedir(), ".npm"), "_cacache");
  await withRootfs(tag, dockerHost, [`ENV PATH=${PATH}`, "ENV npm_config_prefer_offline=true", "ENV npm_config_update_notifier=false", 'CMD ["node"]'], async (fs) => {
    users(fs, ["node:x:1000:1000::/home/node:/bin/sh"]);
    fs.dir("home/node", 0o755, 1000);
    await fs.binary(hostBinary("node", [process.execPath]), "/usr/local/bin/node");
    await glibcCompanions(fs, hostBinary("node", [process.execPath]));
    fs.copy(npmDir, "/usr/local/lib/node_modules/npm");
    symlinkSync("../lib/node_modules/npm/bin/npm-cli.js", join(fs.root, "usr/local/bin/npm"));
    symlinkSync("../lib/node_modules/npm/bin/npx-cli.js", join(fs.root, "usr/local/bin/npx"));
    if (existsSync(cache)) fs.copy(cache, "/root/.npm/_cacache");
  });
}

/**
 * nats:2.10-alpine: nats-server on the PATH and busybox's wget for the healthcheck. The binary is the host's (Debian
 * bookworm ships 2.9), so a config may only use what 2.9 knows.
 */
export async function importNatsImage(dockerHost: string, tag = "nats:2.10-alpine"): Promise<void> {
  await withRootfs(tag, dockerHost, [`ENV PATH=${PATH}`, 'CMD ["nats-server"]'], async (fs) => {
    users(fs, []);
    await fs.binary(hostBinary("nats-server", ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]), "/usr/local/bin/nats-server");
  });
}

const PG_ENTRYPOINT = `#!/bin/sh
# The official image's contract, reduced: on an empty data dir, initdb with POSTGRES_USER / POSTGRES_PASSWORD,
# create POSTGRES_DB, allow password logins over TCP; then run the server.
set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s' "$POSTGRES_PASSWORD" > /tmp/pwfile
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=/tmp/pwfile --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C >/dev/null
  rm -f /tmp/pwfile
  echo "CREATE DATABASE \\"$POSTGRES_DB\\"" | postgres --single -D "$PGDATA" -c jit=off postgres >/dev/null
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
fi
exec "$@"
`;

/** postgres:15: the host's PostgreSQL 15 (bin, lib without JIT, share), user postgres (999), PGDATA as the official image has it. */
export async function importPostgresImage(dockerHost: string, tag = "postgres:15"): Promise<void> {
  const base = "/usr/lib/postgresql/15";
  if (!existsSync(join(base, "bin/postgres"))) throw new Error(`PostgreSQL 15 not found at ${base}`);
  await withRootfs(
    tag,
    dockerHost,
    [`ENV PATH=${PATH}:${base}/bin`, "ENV PGDATA=/var/lib/postgresql/data", "ENV TZ=UTC", "USER postgres", 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]', 'CMD ["postgres", "-c", "listen_addresses=*", "-c", "jit=off"]'],
    async (fs) => {
      users(fs, ["postgres:x:999:999::/var/lib/postgresql:/bin/sh"]);
      for (const b of ["postgres", "initdb", "pg_ctl", "pg_isready", "psql"]) await fs.binary(join(base, "bin", b));
      for (const so of readdirSync(join(base, "lib")).filter((f) => f.endsWith(".so") && !f.startsWith("llvmjit"))) await fs.binary(join(base, "lib", so));
      fs.copy("/usr/share/postgresql/15");
      fs.copy("/usr/share/zoneinfo/UTC");
      fs.copy("/usr/share/zoneinfo/Etc/UTC");
      fs.dir("var/lib/postgresql", 0o755, 999);
      fs.dir("var/lib/postgresql/data", 0o700, 999);
      fs.dir("var/run/postgresql", 0o2775, 999);
      fs.write("usr/local/bin/docker-entrypoint.sh", PG_ENTRYPOINT, 0o755);
      },
  );
}
