import { execFile, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { stopProcess, waitFor } from "./index.js";

const run = promisify(execFile);

/**
 * A real Docker Engine of the test's own (Debian's dockerd 20.10 from `docker.io`): its own data root, exec root and
 * unix socket under a temp dir, the `vfs` storage driver, no bridge and no iptables (containers use host networking
 * or a user-defined network). Needs root. No registry is reachable: images come from `importBusyboxImage`.
 */
export interface Dockerd {
  /** `unix:///tmp/…/docker.sock`, for DOCKER_HOST. */
  host: string;
  socketPath: string;
  /** The engine's own maximum API version, e.g. `1.41`. */
  apiVersion: string;
  /** Stops the daemon (SIGTERM; it stops its containers first); data stays for `up`. */
  down(): Promise<void>;
  /** Starts it again on the same socket and data; resolves once `/_ping` answers. */
  up(): Promise<void>;
  /** Stops the daemon and removes everything it had (containers, images, dirs). */
  stop(): Promise<void>;
}

export const DOCKERD_BIN = process.env["DOCKERD_BIN"] ?? "dockerd";

/** Why a live-engine test cannot run here (not root, no dockerd), or undefined when it can. */
export function dockerdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "dockerd needs root";
  const found = (process.env["PATH"] ?? "").split(":").some((d) => existsSync(join(d, DOCKERD_BIN))) || existsSync(DOCKERD_BIN);
  return found ? undefined : "dockerd not installed (apt-get install docker.io)";
}

/** GET on the engine's socket; status and body, or throws when nothing answers. */
export function engineGet(socketPath: string, path: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: "GET", headers: { host: "docker" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error("no answer")));
    req.on("error", reject);
    req.end();
  });
}

export async function startDockerd(): Promise<Dockerd> {
  const dir = await mkdtemp(join(tmpdir(), "stw-dockerd-"));
  const dataRoot = join(dir, "data");
  const execRoot = join(dir, "exec");
  const socketPath = join(dir, "docker.sock");
  let proc: ChildProcess | undefined;
  let log = "";

  async function up(): Promise<void> {
    log = "";
    const args = [
      `--data-root=${dataRoot}`,
      `--exec-root=${execRoot}`,
      `--pidfile=${join(dir, "docker.pid")}`,
      `--host=unix://${socketPath}`,
      "--storage-driver=vfs",
      "--iptables=false",
      "--ip6tables=false",
      "--bridge=none",
      "--ip-masq=false",
      // No hidden state elsewhere on the machine: no default config file, no shared containerd.
      `--config-file=${join(dir, "daemon.json")}`,
    ];
    if (!existsSync(join(dir, "daemon.json"))) writeFileSync(join(dir, "daemon.json"), "{}\n");
    const p = spawn(DOCKERD_BIN, args, { stdio: ["ignore", "ignore", "pipe"], detached: false });
    proc = p;
    p.stderr?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
    await waitFor(`dockerd on ${socketPath}`, async () => {
      if (p.exitCode !== null) throw new Error(`dockerd exited with ${p.exitCode}: ${log.slice(-2000)}`);
      const r = await engineGet(socketPath, "/_ping", 2000).catch(() => undefined);
      return r?.status === 200 && r.body === "OK";
    }, 60_000, 100);
  }

  async function down(): Promise<void> {
    // dockerd stops its containers (10 s grace each) before it exits; give it that, then kill.
    if (proc) await stopProcess(proc, 30_000);
    proc = undefined;
  }

  /** Mounts dockerd/containerd left under the temp dir (a killed daemon leaves its shm and overlay mounts). */
  async function unmountLeftovers(): Promise<void> {
    let mounts: string[] = [];
    try {
      mounts = readFileSync("/proc/self/mounts", "utf8").split("\n").map((l) => l.split(" ")[1] ?? "").filter((m) => m.startsWith(dir));
    } catch {
      return;
    }
    for (const m of mounts.sort((a, b) => b.length - a.length)) await run("umount", ["-l", m]).catch(() => undefined);
  }

  await up();
  const version = JSON.parse((await engineGet(socketPath, "/version")).body) as { ApiVersion: string };
  return {
    host: `unix://${socketPath}`,
    socketPath,
    apiVersion: version.ApiVersion,
    down,
    up,
    async stop() {
      await down();
      await unmountLeftovers();
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
}

/** Applets linked into the busybox image's /bin. */
const APPLETS = ["sh", "sleep", "httpd", "wget", "nc", "echo", "cat", "ls", "kill", "true", "false", "test", "mkdir", "rm", "env", "ps", "touch", "date", "grep", "id"];

function busyboxBin(): string {
  const hit = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
  if (!hit) throw new Error("busybox not found: apt-get install busybox-static");
  return hit;
}

/**
 * Makes a tiny image on the engine with `docker import` (no registry needed): a rootfs holding the static busybox
 * and its applets (sh, httpd, wget, sleep, …), tagged `tag`.
 */
export async function importBusyboxImage(dockerHost: string, tag: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "stw-rootfs-"));
  try {
    const root = join(dir, "root");
    for (const d of ["bin", "etc", "tmp", "var/www", "proc", "sys", "dev"]) mkdirSync(join(root, d), { recursive: true });
    copyFileSync(busyboxBin(), join(root, "bin/busybox"));
    chmodSync(join(root, "bin/busybox"), 0o755);
    for (const a of APPLETS) symlinkSync("busybox", join(root, "bin", a));
    writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n");
    writeFileSync(join(root, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");
    writeFileSync(join(root, "var/www/index.html"), "ok\n");
    const tarball = join(dir, "rootfs.tar");
    await run("tar", ["-C", root, "-cf", tarball, "."]);
    await run("docker", ["import", "--change", 'CMD ["/bin/sh"]', "--change", "ENV PATH=/bin", tarball, tag], { env: { ...process.env, DOCKER_HOST: dockerHost } });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
