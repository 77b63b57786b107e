import { existsSync } from "node:fs";
import { request, type RequestOptions } from "node:http";
import type { ContainerCreateBody, ContainerCreateResponse, ContainerInspect, ContainerSummary, EngineEvent } from "./types.js";

/** A request the engine answered with an error status (or that never got an answer). `status` 0: no answer. */
export class DockerError extends Error {
  constructor(
    readonly op: string,
    readonly status: number,
    /** The engine's own `message`, which names the container or image (never env values: Steward sends none in paths). */
    readonly engineMessage: string,
  ) {
    super(`docker ${op}: ${status ? `HTTP ${status}: ` : ""}${engineMessage}`);
    this.name = "DockerError";
  }
}

export interface DockerClientOptions {
  /** `unix:///var/run/docker.sock` (default), `tcp://host:2375` or `http://host:2375`. */
  host?: string;
  /**
   * A fixed API version, e.g. `v1.41` (DOCKER_API_VERSION). Without it the client negotiates as the Docker CLI
   * does: it asks the engine's `/version` and speaks the lower of the engine's and its own (`MAX_API_VERSION`).
   */
  apiVersion?: string | undefined;
  timeoutMs?: number;
}

type Target = { socketPath: string } | { host: string; port: number };

/** Where DOCKER_HOST points. Throws on a scheme the client cannot speak (e.g. ssh://). */
export function parseDockerHost(host: string): Target {
  if (host.startsWith("unix://")) {
    const socketPath = host.slice("unix://".length);
    if (!socketPath.startsWith("/")) throw new Error(`DOCKER_HOST ${host}: a unix socket needs an absolute path`);
    return { socketPath };
  }
  const m = /^(?:tcp|http):\/\/([^:/]+)(?::(\d+))?\/?$/.exec(host);
  if (m) return { host: m[1] as string, port: m[2] ? Number(m[2]) : 2375 };
  throw new Error(`DOCKER_HOST ${host}: only unix:// and tcp:// (plain HTTP) are supported`);
}

/** How a followed `/events` stream ended. `connected`: the engine answered 200 before it ended. */
export interface EventsEnd {
  connected: boolean;
  /** `aborted`: by the caller; `ended`: the engine closed it; `refused`: a non-200 answer; `broken`: no connection or it broke. */
  reason: "aborted" | "ended" | "refused" | "broken";
  detail: string;
}

/** The newest Engine API version whose shapes this client speaks. */
export const MAX_API_VERSION = "1.43";

/** Pure: `1.41` vs `1.43` → negative, as numbers per part (`1.9` < `1.10`). */
export function compareApiVersions(a: string, b: string): number {
  const pa = a.replace(/^v/, "").split(".").map(Number);
  const pb = b.replace(/^v/, "").split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Pure: the version to speak with an engine whose `/version` says `engineMax` (missing: ours, as the CLI does). */
export function negotiateApiVersion(engineMax: string | undefined, ours = MAX_API_VERSION): string {
  if (!engineMax || !/^v?\d+\.\d+$/.test(engineMax)) return ours;
  return compareApiVersions(engineMax, ours) < 0 ? engineMax.replace(/^v/, "") : ours;
}

interface Raw {
  status: number;
  body: string;
}

/**
 * Docker Engine API client over HTTP on the engine's socket: only the endpoints Steward uses.
 * Bodies may carry container env (create): they are sent, never logged; errors carry the engine's message only.
 */
export class DockerClient {
  private readonly target: Target;
  /** `/v1.41`, once fixed or negotiated; negotiation runs again after the engine could not be reached. */
  private prefix: string | undefined;
  private negotiating: Promise<string> | undefined;
  private readonly fixed: boolean;
  private readonly timeoutMs: number;

  constructor(opts: DockerClientOptions = {}) {
    this.target = parseDockerHost(opts.host ?? "unix:///var/run/docker.sock");
    this.fixed = opts.apiVersion !== undefined;
    if (opts.apiVersion !== undefined) this.prefix = `/v${opts.apiVersion.replace(/^v/, "")}`;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** The API version in use (`1.41`), negotiating first when needed. */
  async apiVersion(): Promise<string> {
    return (await this.versionPrefix()).slice(2);
  }

  private versionPrefix(): Promise<string> {
    if (this.prefix) return Promise.resolve(this.prefix);
    this.negotiating ??= (async () => {
      try {
        const raw = await this.sendRaw("negotiate API version", "GET", "/version");
        if (raw.status !== 200) throw new DockerError("negotiate API version", raw.status, engineMessage(raw.body));
        let engineMax: string | undefined;
        try {
          engineMax = (JSON.parse(raw.body) as { ApiVersion?: unknown }).ApiVersion as string | undefined;
        } catch {
          engineMax = undefined;
        }
        this.prefix = `/v${negotiateApiVersion(typeof engineMax === "string" ? engineMax : undefined)}`;
        return this.prefix;
      } finally {
        this.negotiating = undefined;
      }
    })();
    return this.negotiating;
  }

  /**
   * True when the engine is going away: its unix socket is gone. dockerd removes the socket as soon as it starts
   * shutting down, while connections already open keep answering (and report its containers dying) for seconds.
   */
  engineGone(): boolean {
    return "socketPath" in this.target && !existsSync(this.target.socketPath);
  }

  /**
   * Follows the engine's `/events` (filtered) on a connection of its own until the engine ends it, it breaks or
   * `signal` aborts. `onConnected` runs once the engine accepted the stream. Never rejects.
   */
  async followEvents(filters: Record<string, string[]>, handlers: { onConnected(): void; onEvent(e: EngineEvent): void }, signal: AbortSignal): Promise<EventsEnd> {
    let prefix: string;
    try {
      prefix = await this.versionPrefix();
    } catch (err) {
      return { connected: false, reason: "broken", detail: (err as Error).message };
    }
    const q = new URLSearchParams({ filters: JSON.stringify(filters) });
    return new Promise<EventsEnd>((resolve) => {
      let connected = false;
      let done = false;
      const finish = (reason: EventsEnd["reason"], detail: string) => {
        if (done) return;
        done = true;
        signal.removeEventListener("abort", onAbort);
        resolve({ connected, reason: signal.aborted ? "aborted" : reason, detail });
      };
      const req = request({ ...this.target, method: "GET", path: `${prefix}/events?${q}`, agent: false, headers: { host: "docker" } }, (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => finish("refused", `HTTP ${res.statusCode ?? 0}: ${engineMessage(Buffer.concat(chunks).toString("utf8"))}`));
          res.on("error", (err) => finish("broken", err.message));
          return;
        }
        connected = true;
        handlers.onConnected();
        let buf = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            try {
              handlers.onEvent(JSON.parse(line) as EngineEvent);
            } catch {
              // a line that is not JSON: skipped
            }
          }
        });
        res.on("end", () => finish("ended", "the engine closed its event stream"));
        res.on("error", (err) => finish("broken", err.message));
        res.on("close", () => finish("broken", "the event stream was cut"));
      });
      const onAbort = () => req.destroy(new Error("aborted"));
      signal.addEventListener("abort", onAbort);
      req.on("error", (err: NodeJS.ErrnoException) => finish("broken", err.code === "ENOENT" || err.code === "ECONNREFUSED" ? `cannot reach the engine (${err.code})` : err.message));
      req.end();
      if (signal.aborted) onAbort();
    });
  }

  /** Containers of a compose project (all states), newest first as the engine returns them. */
  async listProjectContainers(project: string): Promise<ContainerSummary[]> {
    return this.listContainers({ label: [`com.docker.compose.project=${project}`] });
  }

  async listContainers(filters: Record<string, string[]> = {}): Promise<ContainerSummary[]> {
    const q = new URLSearchParams({ all: "1" });
    if (Object.keys(filters).length > 0) q.set("filters", JSON.stringify(filters));
    return this.json<ContainerSummary[]>("list containers", "GET", `/containers/json?${q}`, undefined, [200]);
  }

  async inspectContainer(id: string): Promise<ContainerInspect> {
    return this.json<ContainerInspect>("inspect container", "GET", `/containers/${encodeURIComponent(id)}/json`, undefined, [200]);
  }

  /**
   * The end of a container's log (`GET /containers/{id}/logs`, stdout and stderr, each line prefixed with the engine's
   * RFC 3339 timestamp). Only the last `maxBytes` of what the engine sends are kept while reading; the engine's own
   * `tail` (lines) bounds what it sends when no `until` is given, else at most `readCapBytes` are read.
   */
  async containerLogs(id: string, opts: { tty: boolean; maxBytes: number; tailLines?: number; since?: Date; until?: Date; readCapBytes?: number }): Promise<{ text: string; truncated: boolean }> {
    const prefix = await this.versionPrefix();
    const q = new URLSearchParams({ stdout: "1", stderr: "1", timestamps: "1", tail: opts.tailLines === undefined ? "all" : String(opts.tailLines) });
    // The engine takes seconds with a fraction: `since` inclusive, `until` exclusive of later lines.
    if (opts.since) q.set("since", (opts.since.getTime() / 1000).toFixed(3));
    if (opts.until) q.set("until", (opts.until.getTime() / 1000).toFixed(3));
    const cap = opts.readCapBytes ?? 16 * 1024 * 1024;
    const keep = Math.max(1, opts.maxBytes);
    return new Promise((resolve, reject) => {
      const req = request({ ...this.target, method: "GET", path: `${prefix}/containers/${encodeURIComponent(id)}/logs?${q}`, agent: false, headers: { host: "docker" } }, (res) => {
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => reject(new DockerError("container logs", res.statusCode ?? 0, engineMessage(Buffer.concat(chunks).toString("utf8")))));
          return;
        }
        let kept: Buffer[] = [];
        let keptLen = 0;
        let dropped = false;
        let read = 0;
        let pending: Buffer = Buffer.alloc(0);
        const add = (b: Buffer) => {
          kept.push(b);
          keptLen += b.length;
          if (keptLen > keep * 2) {
            const all = Buffer.concat(kept);
            kept = [all.subarray(all.length - keep)];
            keptLen = keep;
            dropped = true;
          }
        };
        const finish = (cut: boolean) => {
          let all = Buffer.concat(kept);
          if (all.length > keep) {
            all = all.subarray(all.length - keep);
            dropped = true;
          }
          let text = all.toString("utf8");
          if (dropped || cut) {
            const nl = text.indexOf("\n");
            if (nl >= 0 && nl < text.length - 1) text = text.slice(nl + 1);
          }
          resolve({ text, truncated: dropped || cut });
        };
        res.on("data", (c: Buffer) => {
          read += c.length;
          if (opts.tty) add(c);
          else {
            // Frames: [stream, 0, 0, 0, size (uint32 BE)] then `size` bytes.
            pending = pending.length ? Buffer.concat([pending, c]) : c;
            while (pending.length >= 8) {
              const size = pending.readUInt32BE(4);
              if (pending.length < 8 + size) break;
              add(pending.subarray(8, 8 + size));
              pending = pending.subarray(8 + size);
            }
          }
          if (read > cap) {
            res.destroy();
            finish(true);
          }
        });
        res.on("end", () => finish(false));
        res.on("error", (err) => reject(new DockerError("container logs", 0, err.message)));
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on("error", (err: NodeJS.ErrnoException) => reject(new DockerError("container logs", 0, err.code === "ENOENT" || err.code === "ECONNREFUSED" ? `cannot reach the engine (${err.code})` : err.message)));
      req.end();
    });
  }

  /** Whether the engine has the image locally (`GET /images/{name}/json`: 404 is no). */
  async imageExists(image: string): Promise<boolean> {
    const raw = await this.send("inspect image", "GET", `/images/${encodeURIComponent(image)}/json`);
    if (raw.status === 200) return true;
    if (raw.status === 404) return false;
    throw new DockerError("inspect image", raw.status, engineMessage(raw.body));
  }

  /**
   * Pulls an image. The engine answers 200 and streams progress as JSON lines; a failure mid-way arrives as a
   * line with `error`, so the whole stream is read and checked.
   */
  async pullImage(image: string): Promise<void> {
    const { name, tag } = splitImage(image);
    const q = new URLSearchParams({ fromImage: name });
    if (tag) q.set("tag", tag);
    const raw = await this.send("pull image", "POST", `/images/create?${q}`);
    if (raw.status !== 200) throw new DockerError("pull image", raw.status, engineMessage(raw.body));
    for (const line of raw.body.split("\n")) {
      if (!line.trim()) continue;
      let msg: { error?: string; errorDetail?: { message?: string } };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        continue;
      }
      if (msg.error || msg.errorDetail) throw new DockerError("pull image", 200, msg.errorDetail?.message ?? msg.error ?? "pull failed");
    }
  }

  async createContainer(name: string, body: ContainerCreateBody): Promise<ContainerCreateResponse> {
    return this.json<ContainerCreateResponse>("create container", "POST", `/containers/create?${new URLSearchParams({ name })}`, body, [201]);
  }

  /** 304 (already started) is success. */
  async startContainer(id: string): Promise<void> {
    await this.expect("start container", "POST", `/containers/${encodeURIComponent(id)}/start`, [204, 304]);
  }

  /** SIGTERM, then SIGKILL after `timeoutS`. 304 (already stopped) is success. */
  async stopContainer(id: string, timeoutS = 10): Promise<void> {
    await this.expect("stop container", "POST", `/containers/${encodeURIComponent(id)}/stop?t=${timeoutS}`, [204, 304], (timeoutS + 5) * 1000);
  }

  async removeContainer(id: string, opts: { force?: boolean } = {}): Promise<void> {
    await this.expect("remove container", "DELETE", `/containers/${encodeURIComponent(id)}?force=${opts.force ? "true" : "false"}`, [204]);
  }

  private async expect(op: string, method: string, path: string, ok: number[], timeoutMs?: number): Promise<void> {
    const raw = await this.send(op, method, path, undefined, timeoutMs);
    if (!ok.includes(raw.status)) throw new DockerError(op, raw.status, engineMessage(raw.body));
  }

  private async json<T>(op: string, method: string, path: string, body: unknown, ok: number[]): Promise<T> {
    const raw = await this.send(op, method, path, body);
    if (!ok.includes(raw.status)) throw new DockerError(op, raw.status, engineMessage(raw.body));
    try {
      return JSON.parse(raw.body) as T;
    } catch {
      throw new DockerError(op, raw.status, "the engine sent a body that is not JSON");
    }
  }

  private async send(op: string, method: string, path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<Raw> {
    const prefix = await this.versionPrefix();
    try {
      return await this.sendRaw(op, method, prefix + path, body, timeoutMs);
    } catch (err) {
      // The engine went away: it may come back as another version (an upgrade), so negotiate again.
      if (!this.fixed && err instanceof DockerError && err.status === 0) this.prefix = undefined;
      throw err;
    }
  }

  private sendRaw(op: string, method: string, path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<Raw> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const opts: RequestOptions = {
      ...this.target,
      method,
      path,
      headers: { host: "docker", ...(payload ? { "content-type": "application/json", "content-length": String(payload.length) } : {}) },
    };
    return new Promise<Raw>((resolve, reject) => {
      const req = request(opts, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", (err) => reject(new DockerError(op, 0, err.message)));
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on("error", (err: NodeJS.ErrnoException) => reject(new DockerError(op, 0, err.code === "ENOENT" || err.code === "ECONNREFUSED" ? `cannot reach the engine (${err.code})` : err.message)));
      req.end(payload);
    });
  }
}

function engineMessage(body: string): string {
  try {
    const m = (JSON.parse(body) as { message?: unknown }).message;
    if (typeof m === "string") return m.slice(0, 500);
  } catch {
    // not JSON
  }
  return body.trim().slice(0, 200) || "(empty answer)";
}

/** `nginx:1.27` → (nginx, 1.27); `reg:5000/app` → (reg:5000/app, latest); `app@sha256:…` keeps the digest in the name. */
export function splitImage(image: string): { name: string; tag: string | undefined } {
  if (image.includes("@")) return { name: image, tag: undefined };
  const slash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  if (colon > slash) return { name: image.slice(0, colon), tag: image.slice(colon + 1) };
  return { name: image, tag: "latest" };
}
