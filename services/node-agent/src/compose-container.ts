import { resolve as resolvePath } from "node:path";
import type { ContainerCreateBody, HealthConfig } from "./docker/types.js";
import { ComposeError, LABEL_CONFIG_HASH, LABEL_PROJECT, LABEL_SERVICE, LABEL_STACK, type StackRevision } from "./compose-model.js";
import { contentHash } from "./compose-revision.js";

const ns = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : ms * 1_000_000);

function parsePort(p: string): { key: string; binding?: { HostIp?: string; HostPort: string } } {
  const [main, proto = "tcp"] = p.split("/") as [string, string?];
  const parts = main.split(":");
  const container = parts[parts.length - 1] as string;
  const key = `${container}/${proto}`;
  if (parts.length === 1) return { key };
  const hostPort = parts[parts.length - 2] as string;
  const hostIp = parts.length > 2 ? parts.slice(0, -2).join(":") : undefined;
  return { key, binding: hostIp ? { HostIp: hostIp, HostPort: hostPort } : { HostPort: hostPort } };
}

/**
 * The engine's create body for one service of a revision. `env` is the final environment (compose's, then the
 * env file, then the spec's with secrets resolved): it goes to the engine and nowhere else.
 */
export function containerCreateBody(r: StackRevision, stack: string, service: string, env: Record<string, string>, baseDir: string): ContainerCreateBody {
  const s = r.services[service];
  if (!s) throw new ComposeError(undefined, `stack ${stack} has no service ${service}`);
  const body: ContainerCreateBody = {
    Image: s.image,
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: {
      ...s.labels,
      [LABEL_PROJECT]: r.project,
      [LABEL_SERVICE]: service,
      "com.docker.compose.container-number": "1",
      "com.docker.compose.oneoff": "False",
      [LABEL_CONFIG_HASH]: contentHash(r),
      [LABEL_STACK]: stack,
    },
    HostConfig: {},
  };
  if (s.command) body.Cmd = s.command;
  if (s.entrypoint) body.Entrypoint = s.entrypoint;
  if (s.working_dir) body.WorkingDir = s.working_dir;
  if (s.user) body.User = s.user;
  if (s.healthcheck === null) body.Healthcheck = { Test: ["NONE"] };
  else if (s.healthcheck) {
    const h: HealthConfig = { Test: s.healthcheck.test };
    const iv = ns(s.healthcheck.interval_ms);
    const to = ns(s.healthcheck.timeout_ms);
    const sp = ns(s.healthcheck.start_period_ms);
    if (iv !== undefined) h.Interval = iv;
    if (to !== undefined) h.Timeout = to;
    if (sp !== undefined) h.StartPeriod = sp;
    if (s.healthcheck.retries !== undefined) h.Retries = s.healthcheck.retries;
    body.Healthcheck = h;
  }
  const hc = body.HostConfig as NonNullable<ContainerCreateBody["HostConfig"]>;
  if (s.restart) hc.RestartPolicy = { Name: s.restart };
  if (s.ports.length > 0) {
    body.ExposedPorts = {};
    hc.PortBindings = {};
    for (const p of s.ports) {
      const { key, binding } = parsePort(p);
      body.ExposedPorts[key] = {};
      if (binding) (hc.PortBindings[key] ??= []).push(binding);
    }
  }
  if (s.volumes.length > 0) {
    // Relative host paths resolve against the deploy checkout, as compose resolves them against the project dir.
    hc.Binds = s.volumes.map((v) => {
      const [host, ...rest] = v.split(":");
      return host !== undefined && (host.startsWith("./") || host.startsWith("../")) ? [resolvePath(baseDir, host), ...rest].join(":") : v;
    });
  }
  return body;
}
