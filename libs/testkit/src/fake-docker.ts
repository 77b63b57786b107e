import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readText } from "./loopback-server.js";

/**
 * A local server on a unix socket that speaks the Docker Engine API endpoints Steward uses, with the engine's
 * JSON shapes and status codes, keeping containers in memory. Containers do not run anything: their state,
 * health and crashes are what the test says.
 */

export type FakeHealth = "starting" | "healthy" | "unhealthy";

export interface FakeContainer {
  Id: string;
  Name: string;
  Created: string;
  Image: string;
  RestartCount: number;
  State: {
    Status: "created" | "running" | "exited" | "dead";
    Running: boolean;
    Paused: boolean;
    Restarting: boolean;
    OOMKilled: boolean;
    Dead: boolean;
    Pid: number;
    ExitCode: number;
    Error: string;
    StartedAt: string;
    FinishedAt: string;
    Health?: { Status: FakeHealth; FailingStreak: number; Log: never[] };
  };
  Config: { Image: string; Env: string[]; Labels: Record<string, string>; Cmd: string[] | null; Healthcheck?: unknown };
  HostConfig: { RestartPolicy?: { Name: string } };
}

export interface RecordedRequest {
  method: string;
  /** Without the `/v1.xx` prefix, without the query. */
  path: string;
  query: Record<string, string>;
  /** Parsed JSON body, if any. */
  body: unknown;
}

export interface FakeDockerOptions {
  /** Defaults to a socket in a fresh temp dir. */
  socketPath?: string;
  /** Images that do not exist in the registry: a pull answers 404. */
  missingImages?: string[];
  /** Health a started container with a healthcheck reaches after `healthDelayMs` (default: healthy). */
  healthPolicy?: (c: FakeContainer) => FakeHealth;
  healthDelayMs?: number;
}

export interface FakeDocker {
  /** `unix:///…/docker.sock`, for DOCKER_HOST. */
  readonly host: string;
  readonly socketPath: string;
  readonly requests: RecordedRequest[];
  healthPolicy: (c: FakeContainer) => FakeHealth;
  containers(): FakeContainer[];
  /** Finds by id, id prefix or name (with or without the leading '/'). */
  find(ref: string): FakeContainer | undefined;
  setHealth(ref: string, status: FakeHealth): void;
  /** The container's process dies: restarted at once (RestartCount + 1) if its restart policy says so, else exited. */
  crash(ref: string, exitCode?: number): void;
  /** Adds a container as if someone ran it outside Steward. */
  seed(name: string, c: { image: string; labels?: Record<string, string>; running?: boolean; health?: FakeHealth }): FakeContainer;
  stop(): Promise<void>;
}

const imageId = (image: string): string => `sha256:${createHash("sha256").update(image).digest("hex")}`;
const normImage = (image: string): string => (/:[^/]*$/.test(image) || image.includes("@") ? image : `${image}:latest`);

export async function startFakeDocker(opts: FakeDockerOptions = {}): Promise<FakeDocker> {
  const dir = opts.socketPath ? undefined : await mkdtemp(join(tmpdir(), "steward-fake-docker-"));
  const socketPath = opts.socketPath ?? join(dir as string, "docker.sock");
  const missing = new Set((opts.missingImages ?? []).map(normImage));
  const pulled = new Set<string>();
  const byId = new Map<string, FakeContainer>();
  const timers = new Set<NodeJS.Timeout>();
  const requests: RecordedRequest[] = [];
  const delay = opts.healthDelayMs ?? 50;
  let pidSeq = 1000;

  const fake: FakeDocker = {
    host: `unix://${socketPath}`,
    socketPath,
    requests,
    healthPolicy: opts.healthPolicy ?? (() => "healthy"),
    containers: () => [...byId.values()],
    find,
    setHealth(ref, status) {
      const c = mustFind(ref);
      if (!c.State.Health) throw new Error(`container ${ref} has no healthcheck`);
      c.State.Health = { Status: status, FailingStreak: status === "unhealthy" ? 3 : 0, Log: [] };
    },
    crash(ref, exitCode = 137) {
      const c = mustFind(ref);
      const policy = c.HostConfig.RestartPolicy?.Name ?? "";
      if (["always", "unless-stopped", "on-failure"].includes(policy)) {
        c.RestartCount += 1;
        c.State.Pid = ++pidSeq;
        c.State.StartedAt = new Date().toISOString();
        if (c.State.Health) scheduleHealth(c);
        return;
      }
      c.State = { ...c.State, Status: "exited", Running: false, Pid: 0, ExitCode: exitCode, FinishedAt: new Date().toISOString(), ...(c.State.Health ? { Health: { Status: "unhealthy", FailingStreak: 0, Log: [] } } : {}) };
    },
    seed(name, s) {
      const c = newContainer(name, { Image: s.image, Labels: s.labels ?? {} });
      if (s.running !== false) startIt(c);
      if (s.health) c.State.Health = { Status: s.health, FailingStreak: 0, Log: [] };
      return c;
    },
    async stop() {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };

  function find(ref: string): FakeContainer | undefined {
    const name = ref.startsWith("/") ? ref : `/${ref}`;
    for (const c of byId.values()) if (c.Id === ref || c.Name === name || (ref.length >= 12 && c.Id.startsWith(ref))) return c;
    return undefined;
  }

  function mustFind(ref: string): FakeContainer {
    const c = find(ref);
    if (!c) throw new Error(`fake docker: no container ${ref}`);
    return c;
  }

  function newContainer(name: string, body: { Image: string; Env?: string[]; Labels?: Record<string, string>; Cmd?: string[] | null; Healthcheck?: unknown; HostConfig?: { RestartPolicy?: { Name: string } } }): FakeContainer {
    const id = randomBytes(32).toString("hex");
    const c: FakeContainer = {
      Id: id,
      Name: `/${name}`,
      Created: new Date().toISOString(),
      Image: imageId(normImage(body.Image)),
      RestartCount: 0,
      State: { Status: "created", Running: false, Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: 0, ExitCode: 0, Error: "", StartedAt: "0001-01-01T00:00:00Z", FinishedAt: "0001-01-01T00:00:00Z" },
      Config: { Image: body.Image, Env: body.Env ?? [], Labels: body.Labels ?? {}, Cmd: body.Cmd ?? null, ...(body.Healthcheck ? { Healthcheck: body.Healthcheck } : {}) },
      HostConfig: { ...(body.HostConfig?.RestartPolicy ? { RestartPolicy: body.HostConfig.RestartPolicy } : {}) },
    };
    byId.set(id, c);
    return c;
  }

  function scheduleHealth(c: FakeContainer): void {
    c.State.Health = { Status: "starting", FailingStreak: 0, Log: [] };
    const pid = c.State.Pid;
    const t = setTimeout(() => {
      timers.delete(t);
      // Only if the same run (pid) is still going.
      if (c.State.Running && c.State.Pid === pid && c.State.Health?.Status === "starting") {
        const h = fake.healthPolicy(c);
        c.State.Health = { Status: h, FailingStreak: h === "unhealthy" ? 3 : 0, Log: [] };
      }
    }, delay);
    timers.add(t);
  }

  function startIt(c: FakeContainer): void {
    c.State = { ...c.State, Status: "running", Running: true, Pid: ++pidSeq, ExitCode: 0, StartedAt: new Date().toISOString() };
    if (c.Config.Healthcheck) scheduleHealth(c);
  }

  function statusText(c: FakeContainer): string {
    if (c.State.Status === "running") return `Up 1 second${c.State.Health ? ` (${c.State.Health.Status === "starting" ? "health: starting" : c.State.Health.Status})` : ""}`;
    if (c.State.Status === "exited") return `Exited (${c.State.ExitCode}) 1 second ago`;
    return c.State.Status === "created" ? "Created" : "Dead";
  }

  function summary(c: FakeContainer) {
    return { Id: c.Id, Names: [c.Name], Image: c.Config.Image, ImageID: c.Image, Command: (c.Config.Cmd ?? []).join(" "), Created: Math.floor(Date.parse(c.Created) / 1000), State: c.State.Status, Status: statusText(c), Labels: c.Config.Labels };
  }

  function matches(c: FakeContainer, filters: Record<string, string[]>): boolean {
    for (const want of filters["label"] ?? []) {
      const eq = want.indexOf("=");
      const [k, v] = eq < 0 ? [want, undefined] : [want.slice(0, eq), want.slice(eq + 1)];
      if (!(k in c.Config.Labels)) return false;
      if (v !== undefined && c.Config.Labels[k] !== v) return false;
    }
    for (const want of filters["name"] ?? []) if (!c.Name.includes(want)) return false;
    return true;
  }

  const send = (res: ServerResponse, status: number, body?: unknown) => {
    if (body === undefined) {
      res.writeHead(status).end();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
  };
  const noSuch = (res: ServerResponse, ref: string) => send(res, 404, { message: `No such container: ${ref}` });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://docker");
    const path = url.pathname.replace(/^\/v1\.\d+/, "");
    const query = Object.fromEntries(url.searchParams);
    const text = await readText(req);
    let body: unknown;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        return send(res, 400, { message: "invalid JSON body" });
      }
    }
    requests.push({ method: req.method ?? "GET", path, query, body });

    const m = /^\/containers\/([^/]+)(?:\/(json|start|stop))?$/.exec(path);
    if (req.method === "GET" && path === "/_ping") {
      res.writeHead(200, { "content-type": "text/plain" }).end("OK");
      return;
    }
    if (req.method === "GET" && path === "/version") return send(res, 200, { Version: "24.0.0-fake", ApiVersion: "1.43", MinAPIVersion: "1.12" });
    if (req.method === "GET" && path === "/containers/json") {
      let filters: Record<string, string[]> = {};
      if (query["filters"]) {
        try {
          filters = JSON.parse(query["filters"]) as Record<string, string[]>;
        } catch {
          return send(res, 400, { message: "invalid filter" });
        }
      }
      const all = query["all"] === "1" || query["all"] === "true";
      const list = [...byId.values()].filter((c) => (all || c.State.Running) && matches(c, filters)).reverse();
      return send(res, 200, list.map(summary));
    }
    if (req.method === "POST" && path === "/images/create") {
      const from = query["fromImage"];
      if (!from) return send(res, 400, { message: "fromImage is required" });
      const image = normImage(query["tag"] ? `${from}:${query["tag"]}` : from);
      if (missing.has(image)) return send(res, 404, { message: `pull access denied for ${from}, repository does not exist or may require 'docker login'` });
      pulled.add(image);
      const lines = [{ status: `Pulling from ${from}`, id: query["tag"] ?? "latest" }, { status: `Digest: ${imageId(image)}` }, { status: `Status: Downloaded newer image for ${image}` }];
      res.writeHead(200, { "content-type": "application/json" });
      res.end(lines.map((l) => JSON.stringify(l)).join("\r\n") + "\r\n");
      return;
    }
    if (req.method === "POST" && path === "/containers/create") {
      const name = query["name"];
      const b = body as { Image?: string } | undefined;
      if (!b || typeof b.Image !== "string") return send(res, 400, { message: "config cannot be empty in order to create a container" });
      if (name && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(name)) return send(res, 400, { message: `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed` });
      if (!pulled.has(normImage(b.Image))) return send(res, 404, { message: `No such image: ${b.Image}` });
      const clash = name ? find(name) : undefined;
      if (clash) return send(res, 409, { message: `Conflict. The container name "/${name}" is already in use by container "${clash.Id}". You have to remove (or rename) that container to be able to reuse that name.` });
      const c = newContainer(name ?? randomBytes(6).toString("hex"), body as Parameters<typeof newContainer>[1]);
      return send(res, 201, { Id: c.Id, Warnings: [] });
    }
    if (m) {
      const ref = decodeURIComponent(m[1] as string);
      const c = find(ref);
      if (!c) return noSuch(res, ref);
      if (req.method === "GET" && m[2] === "json") return send(res, 200, c);
      if (req.method === "POST" && m[2] === "start") {
        if (c.State.Running) return send(res, 304);
        startIt(c);
        return send(res, 204);
      }
      if (req.method === "POST" && m[2] === "stop") {
        if (!c.State.Running) return send(res, 304);
        c.State = { ...c.State, Status: "exited", Running: false, Pid: 0, ExitCode: 0, FinishedAt: new Date().toISOString() };
        return send(res, 204);
      }
      if (req.method === "DELETE" && m[2] === undefined) {
        if (c.State.Running && query["force"] !== "true" && query["force"] !== "1") {
          return send(res, 409, { message: `You cannot remove a running container ${c.Id}. Stop the container before attempting removal or force remove` });
        }
        byId.delete(c.Id);
        return send(res, 204);
      }
    }
    send(res, 404, { message: "page not found" });
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => send(res, 500, { message: err.message }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  return fake;
}
