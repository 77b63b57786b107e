import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { STACK_ID_ENV } from "@steward/platform/stack-member";
import { natsTlsConfig, type LocalTls } from "./local-tls.js";

export interface LocalNats {
  url: string;
  proc: ChildProcess;
}

/** The client URL from nats-server's ports file (`<executable>_<pid>.ports`), once it has written it. */
export function natsUrlFromPortsFile(text: string): string | undefined {
  try {
    const urls = (JSON.parse(text) as { nats?: unknown }).nats;
    return Array.isArray(urls) && typeof urls[0] === "string" ? urls[0] : undefined;
  } catch {
    return undefined; // not fully written yet
  }
}

/** The server config `up` runs its nats-server with: the generated authorization include and TLS (flags set the rest). */
export const localNatsConfig = (authorizationFile: string, tls?: LocalTls): string =>
  `# Written by steward up: every client is an nkey user (authorization below)${tls ? " and speaks TLS" : ""}.\ninclude ${JSON.stringify(authorizationFile)}\n${tls ? natsTlsConfig(tls) : ""}`;

/**
 * A nats-server with JetStream on a port it picks itself (`-p -1`): it reports the port in a ports file, so there is
 * no gap between choosing a port and binding it. In its own process group, so the terminal's Ctrl-C reaches only
 * `steward up`, which stops the engines last. With `authorizationFile` (relative to `dir`), only its users get in.
 */
export async function startLocalNats(dir: string, logFile: string, stackId: string, o: { authorizationFile?: string; tls?: LocalTls | undefined; timeoutMs?: number } = {}): Promise<LocalNats> {
  const timeoutMs = o.timeoutMs ?? 30_000;
  const store = join(dir, "store");
  mkdirSync(store, { recursive: true });
  const config: string[] = [];
  if (o.authorizationFile) {
    writeFileSync(join(dir, "nats-server.conf"), localNatsConfig(o.authorizationFile, o.tls), { mode: 0o644 });
    config.push("-c", join(dir, "nats-server.conf"));
  }
  const fd = openSync(logFile, "a");
  const proc = spawn(process.env["NATS_SERVER_BIN"] ?? "nats-server", [...config, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", store, "--ports_file_dir", dir], {
    stdio: ["ignore", fd, fd],
    detached: true,
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", [STACK_ID_ENV]: stackId },
  });
  closeSync(fd);
  await new Promise<void>((resolve, reject) => {
    proc.once("error", (e) => reject(new Error(`cannot start nats-server (${e.message}); install it (Debian: apt-get install nats-server) or set NATS_URL`)));
    proc.once("spawn", () => resolve());
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`nats-server exited (${proc.exitCode ?? proc.signalCode}) during start-up; see ${logFile}`);
    const file = readdirSync(dir).find((f) => f.endsWith(`_${proc.pid}.ports`));
    const url = file ? natsUrlFromPortsFile(readFileSync(join(dir, file), "utf8")) : undefined;
    if (url) return { url, proc };
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`nats-server did not report its port within ${timeoutMs} ms; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
