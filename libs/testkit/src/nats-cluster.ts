import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, stopProcess, waitFor } from "./index.js";

const NATS_BIN = process.env["NATS_SERVER_BIN"] ?? "nats-server";

export interface NatsClusterServer {
  name: string;
  /** Client URL, e.g. nats://127.0.0.1:41234. */
  url: string;
  port: number;
  /** Monitoring port (/jsz, /routez, /healthz). */
  httpPort: number;
  routePort: number;
  storeDir: string;
  readonly proc: ChildProcess;
  /** Everything the server logged lately (for post-mortems). */
  readonly log: string;
  /** True while its process runs. */
  readonly running: boolean;
  /** kill -9 (a crash: no graceful step-down). */
  kill(): Promise<void>;
  /** Starts it again on the same ports and store, and waits until it is routed to every running peer. */
  start(): Promise<void>;
}

export interface NatsCluster {
  servers: NatsClusterServer[];
  /** Every server's client URL, comma-separated (what NATS_URL takes). */
  url: string;
  /** The name of the JetStream meta leader as the running servers see it ("" when none). */
  metaLeader(): Promise<string>;
  /** Finds a server by its server_name. */
  byName(name: string): NatsClusterServer | undefined;
  /** Stops every server and removes the stores. */
  stop(): Promise<void>;
}

async function getJson(url: string): Promise<Record<string, unknown>> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return (await r.json()) as Record<string, unknown>;
}

/**
 * `size` real nats-servers forming one JetStream cluster on loopback: free client, route and monitoring ports, a temp
 * store each, one cluster name. Resolves once every server is routed to every other and a JetStream meta leader is
 * elected (so a stream with `size` replicas can be created right away).
 */
export async function startNatsCluster(size = 3, opts: StartClusterOptions = {}): Promise<NatsCluster> {
  // freePort() keeps clear of the ports the kernel hands out, but another process may still bind one of the nine
  // first; new ports, once more, rather than a failed test.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(size, opts);
    } catch (err) {
      if (attempt >= 3 || !String(err).includes("address already in use")) throw err;
    }
  }
}

interface StartClusterOptions {
  timeoutMs?: number;
  /** Extra config for every server (e.g. `authorization` and client `tls` blocks). */
  config?: string;
}

async function startOnce(size: number, opts: StartClusterOptions): Promise<NatsCluster> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ port: await freePort(), routePort: await freePort(), httpPort: await freePort() })));
  const base = await mkdtemp(join(tmpdir(), "steward-nats-cluster-"));
  const routes = ports.map((p) => `nats-route://127.0.0.1:${p.routePort}`);
  const servers: NatsClusterServer[] = [];
  const cluster: NatsCluster = {
    servers,
    url: ports.map((p) => `nats://127.0.0.1:${p.port}`).join(","),
    async metaLeader() {
      for (const s of servers.filter((x) => x.running)) {
        try {
          const jsz = await getJson(`http://127.0.0.1:${s.httpPort}/jsz`);
          const leader = (jsz["meta_cluster"] as { leader?: string } | undefined)?.leader;
          if (leader) return leader;
        } catch {
          // this one is not answering; ask the next
        }
      }
      return "";
    },
    byName: (name) => servers.find((s) => s.name === name),
    async stop() {
      await Promise.all(servers.map((s) => stopProcess(s.proc)));
      await rm(base, { recursive: true, force: true });
    },
  };

  /** Routed to every other running server, JetStream enabled, and a meta leader known. */
  const ready = async (s: NatsClusterServer): Promise<boolean> => {
    if (!s.running) throw new Error(`${s.name} exited: ${s.log.slice(-2000)}`);
    const peers = servers.filter((x) => x !== s && x.running).length;
    const routez = await getJson(`http://127.0.0.1:${s.httpPort}/routez`);
    if (Number(routez["num_routes"] ?? 0) < peers) return false;
    const jsz = await getJson(`http://127.0.0.1:${s.httpPort}/jsz`);
    return Boolean((jsz["meta_cluster"] as { leader?: string } | undefined)?.leader);
  };

  for (const [i, p] of ports.entries()) {
    const name = `steward-test-nats-${i + 1}`;
    const storeDir = join(base, name);
    const conf = join(base, `${name}.conf`);
    // Every server lists every route (itself included, which nats-server ignores), as infra/nats/ does.
    await writeFile(
      conf,
      [
        `server_name: ${name}`,
        `listen: 127.0.0.1:${p.port}`,
        `http: 127.0.0.1:${p.httpPort}`,
        `jetstream { store_dir: ${JSON.stringify(storeDir)} }`,
        `cluster { name: steward-test, listen: 127.0.0.1:${p.routePort}, no_advertise: true, routes: [${routes.join(", ")}] }`,
        opts.config ?? "",
        "",
      ].join("\n"),
    );
    let proc: ChildProcess | undefined;
    let log = "";
    const launch = () => {
      proc = spawn(NATS_BIN, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
      proc.stderr?.on("data", (d: Buffer) => {
        log += d.toString();
        if (log.length > 40_000) log = log.slice(-20_000);
      });
    };
    const server: NatsClusterServer = {
      name,
      url: `nats://127.0.0.1:${p.port}`,
      port: p.port,
      httpPort: p.httpPort,
      routePort: p.routePort,
      storeDir,
      get proc() {
        return proc!;
      },
      get log() {
        return log;
      },
      get running() {
        return proc !== undefined && proc.exitCode === null && proc.signalCode === null;
      },
      async kill() {
        if (!this.running) return;
        const exited = new Promise((r) => proc!.once("exit", r));
        proc!.kill("SIGKILL");
        await exited;
      },
      async start() {
        if (this.running) return;
        launch();
        // A server that exits (a port taken meanwhile) fails the wait at once, with what it said.
        await waitFor(`${name} routed to its peers with a JetStream meta leader`, () => ready(server), timeoutMs, 100, {
          failIf: () => (server.running ? undefined : `${name} exited: ${log.slice(-2000)}`),
        });
      },
    };
    servers.push(server);
  }
  try {
    // Started together: a lone server waits for its peers before a meta leader is elected.
    await Promise.all(servers.map((s) => s.start()));
  } catch (err) {
    await cluster.stop().catch(() => undefined);
    throw err;
  }
  return cluster;
}
