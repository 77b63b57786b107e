import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import postgres from "postgres";

/**
 * The range test servers take their ports from: just below the kernel's ephemeral range, which it hands to every
 * outgoing connection and every `listen(0)`. A port picked inside that range and released until a child process binds
 * it could be taken meanwhile by any connection the suite opens (seen in CI: a cluster nats-server exited with "address
 * already in use"); below it, only another explicit bind can take it.
 */
function testPortRange(): { low: number; high: number } | undefined {
  try {
    const [ephemeralLow] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (ephemeralLow && ephemeralLow >= 12_000) return { low: ephemeralLow - 10_000, high: ephemeralLow - 1 };
  } catch {
    // not Linux, or no procfs: fall back to what the kernel hands out
  }
  return undefined;
}
const PORT_RANGE = testPortRange();

function bindable(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.unref();
    s.once("error", () => resolve(undefined));
    s.listen(port, "127.0.0.1", () => {
      const a = s.address();
      const p = typeof a === "object" && a ? a.port : undefined;
      s.close(() => resolve(p));
    });
  });
}

/**
 * Each vitest worker walks its own slice of the range (VITEST_POOL_ID), from a random start, so two workers never pick
 * the same port and one worker hands a port out again only after walking its whole slice.
 */
const SLICES = 8;
const POOL_ID = Number(process.env["VITEST_POOL_ID"]);
const SLICE = Number.isInteger(POOL_ID) && POOL_ID > 0 ? (POOL_ID - 1) % SLICES : Math.floor(Math.random() * SLICES);
let cursor = -1;

/** A loopback port nobody listens on, for a server a test starts in another process (nats-server, PostgreSQL). */
export async function freePort(): Promise<number> {
  if (PORT_RANGE) {
    const sliceSize = Math.floor((PORT_RANGE.high - PORT_RANGE.low + 1) / SLICES);
    if (cursor < 0) cursor = Math.floor(Math.random() * sliceSize);
    for (let i = 0; i < 100; i++) {
      cursor = (cursor + 1) % sliceSize;
      const port = await bindable(PORT_RANGE.low + SLICE * sliceSize + cursor);
      if (port !== undefined) return port;
    }
  }
  const port = await bindable(0);
  if (port === undefined) throw new Error("no free loopback port");
  return port;
}

export interface WaitOptions {
  /**
   * Asked before each try: a reason ends the wait at once, failing with it. For what can never come any more, such as
   * a watched child process that exited (`unlessExited`): without it the wait would look like a hang until its deadline.
   */
  failIf?: () => string | undefined;
}

/**
 * Retries `fn` every `everyMs` until it gives a value (not `undefined` or `false`), through any error it throws (the
 * last one is in the timeout's message), for at most `timeoutMs`; `opts.failIf` ends it early.
 */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, everyMs = 50, opts: WaitOptions = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    const fatal = opts.failIf?.();
    if (fatal !== undefined) throw new Error(`gave up waiting for ${what}: ${fatal}${lastErr ? ` (last try: ${String(lastErr)})` : ""}`);
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A child process a wait depends on; `output`, when kept, is read at the moment it is found dead. */
export interface WatchedProcess {
  child: ChildProcess;
  name?: string;
  output?: string;
}

/** WaitOptions that fail the wait as soon as one of `procs` has exited, naming it, how it ended and the tail of its output. */
export function unlessExited(...procs: WatchedProcess[]): WaitOptions {
  return {
    failIf() {
      const dead = procs.find((p) => p.child.exitCode !== null || p.child.signalCode !== null);
      if (!dead) return undefined;
      const how = dead.child.exitCode !== null ? `code ${dead.child.exitCode}` : `signal ${dead.child.signalCode}`;
      const tail = dead.output ? `; its last output: ${dead.output.slice(-1500)}` : "";
      return `${dead.name ?? `process ${dead.child.pid}`} exited (${how})${tail}`;
    },
  };
}

export interface NatsServerHandle {
  url: string;
  port: number;
  storeDir: string;
  proc: ChildProcess;
  /** Stops the server (SIGTERM, then SIGKILL) and removes its store unless keepStore. */
  stop(opts?: { keepStore?: boolean }): Promise<void>;
  /** Kill -9 and start again on the same port and store. */
  restart(): Promise<void>;
  /** What the server logged lately (errors such as permission violations are logged without -D). */
  readonly log: string;
}

export interface StartNatsOptions {
  /** Extra server configuration (e.g. an `authorization { users: [...] }` block); the server then runs from a config file. */
  config?: string;
}

const NATS_BIN = process.env["NATS_SERVER_BIN"] ?? "nats-server";

function launchNats(port: number, storeDir: string, confFile: string | undefined): ChildProcess {
  const args = confFile ? ["-c", confFile] : ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir];
  return spawn(NATS_BIN, args, { stdio: ["ignore", "ignore", "pipe"] });
}

async function waitNatsReady(proc: ChildProcess, port: number, onLog: (text: string) => void): Promise<void> {
  let stderr = "";
  proc.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 20_000) stderr = stderr.slice(-10_000);
    onLog(d.toString());
  });
  // A server that exits (port taken, bad config) fails the wait at once, with what it said.
  const watched = { child: proc, name: "nats-server", get output() { return stderr; } };
  await waitFor(`nats-server on port ${port}`, () => stderr.includes("Server is ready"), 15_000, 25, unlessExited(watched));
}

/** A real nats-server with JetStream on a free loopback port and a temp store dir (and the extra `config`, if any). */
export async function startNats(opts: StartNatsOptions = {}): Promise<NatsServerHandle> {
  const port = await freePort();
  const storeDir = await mkdtemp(join(tmpdir(), "steward-nats-"));
  let confFile: string | undefined;
  if (opts.config !== undefined) {
    confFile = join(storeDir, "nats-server.conf");
    await writeFile(confFile, [`listen: 127.0.0.1:${port}`, `jetstream { store_dir: ${JSON.stringify(join(storeDir, "js"))} }`, opts.config, ""].join("\n"), { mode: 0o600 });
  }
  let log = "";
  const onLog = (t: string) => {
    log += t;
    if (log.length > 200_000) log = log.slice(-100_000);
  };
  let proc = launchNats(port, storeDir, confFile);
  try {
    await waitNatsReady(proc, port, onLog);
  } catch (err) {
    await stopProcess(proc);
    await rm(storeDir, { recursive: true, force: true });
    throw err;
  }
  const handle: NatsServerHandle = {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    get proc() {
      return proc;
    },
    get log() {
      return log;
    },
    async stop(opts = {}) {
      await stopProcess(proc);
      if (!opts.keepStore) await rm(storeDir, { recursive: true, force: true });
    },
    async restart() {
      proc.kill("SIGKILL");
      await new Promise((r) => (proc.exitCode !== null || proc.signalCode !== null ? r(null) : proc.once("exit", r)));
      proc = launchNats(port, storeDir, confFile);
      await waitNatsReady(proc, port, onLog);
    },
  };
  return handle;
}

export async function stopProcess(proc: ChildProcess, graceMs = 3000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGTERM");
  const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(t);
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** Admin connection for creating throwaway databases; override with STEWARD_TEST_PG_ADMIN_URL. */
export const PG_ADMIN_URL = process.env["STEWARD_TEST_PG_ADMIN_URL"] ?? "postgres://postgres@127.0.0.1:5432/postgres";

export async function createTestDatabase(prefix = "steward_test"): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(5).toString("hex")}`;
  const admin = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => undefined });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    async drop() {
      const a = postgres(PG_ADMIN_URL, { max: 1, onnotice: () => undefined });
      try {
        await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}
export { startFakeOllama, type OllamaChatRequest, type OllamaAnswer, type RecordedOllamaRequest, type FakeOllamaMode, type FakeOllamaOptions, type FakeOllama } from "./fake-ollama.js";
export { startFakeAnthropic, type AnthropicMessagesRequest, type AnthropicAnswer, type RecordedAnthropicRequest, type FakeAnthropicOptions, type FakeAnthropic } from "./fake-anthropic.js";
export { startFakeDocker, type FakeDocker, type FakeDockerOptions, type FakeContainer, type FakeHealth, type RecordedRequest } from "./fake-docker.js";
export { startFakeNtfy, type NtfyAction, type NtfyPublished, type FakeNtfy, type FakeNtfyOptions } from "./fake-ntfy.js";
export { startFakeTelegram, type TgUser, type TgChat, type TgButton, type TgMessage, type TgCallbackQuery, type TgUpdate, type FakeTelegram } from "./fake-telegram.js";
export { createGitFixture, gitSync, type GitFixture } from "./git-fixture.js";
export { listenOnLoopback, readText, readJsonLoose, type LoopbackServer } from "./loopback-server.js";
export { startPrivatePostgres, type PrivatePostgres } from "./private-postgres.js";
export { startDockerd, importBusyboxImage, dockerdUnavailable, engineGet, type Dockerd } from "./dockerd.js";
export { metricValue, sampleValue, waitForChanges, waitForTicks, type MetricsSource } from "./metrics.js";
export { importGraph } from "./import-graph.js";
export { startNatsCluster, type NatsCluster, type NatsClusterServer } from "./nats-cluster.js";
