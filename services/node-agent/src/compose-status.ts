import { hmacHex } from "@steward/contracts/node-command";
import type { ServiceHealth, ServiceObservation } from "@steward/contracts/events";
import type { ContainerInspect } from "./docker/types.js";
import { LABEL_COMPOSE_HASH, LABEL_CONFIG_HASH, LABEL_SERVICE } from "./compose-model.js";
import { resolvedHash } from "./compose-revision.js";

/** Health of one container as the engine reports it; `none` when its image has no healthcheck. */
export function containerHealth(c: ContainerInspect): ServiceHealth {
  const h = c.State.Health?.Status;
  return h === "healthy" || h === "unhealthy" || h === "starting" ? h : "none";
}

/** The worst of several healths (unhealthy, then starting, then healthy). */
export function worst(hs: ServiceHealth[]): ServiceHealth {
  if (hs.includes("unhealthy")) return "unhealthy";
  if (hs.includes("starting")) return "starting";
  if (hs.includes("healthy")) return "healthy";
  return "none";
}

/**
 * Pure: the running revision's identity from the containers' labels when Compose applies stacks: Steward's content
 * label with Compose's config-hash label of each service, folded as `resolvedHash` folds the wanted revision's. A
 * container without Compose's label (made by the Engine-API applier) leaves the content hash: never equal to a
 * resolved one, so it is drift. One service whose containers disagree is `mixed`.
 */
export function observedHash(containers: readonly ContainerInspect[], key: string | undefined): { hash?: string; problem?: string } {
  const contents = new Set(containers.map((c) => c.Config.Labels?.[LABEL_CONFIG_HASH] ?? ""));
  if (contents.size > 1) return { hash: "mixed", problem: "containers carry different config hashes" };
  const content = [...contents][0];
  if (!content) return {};
  if (key === undefined) return { hash: content };
  const byService = new Map<string, Set<string>>();
  for (const c of containers) {
    const service = c.Config.Labels?.[LABEL_SERVICE] ?? "";
    const set = byService.get(service) ?? new Set<string>();
    set.add(c.Config.Labels?.[LABEL_COMPOSE_HASH] ?? "");
    byService.set(service, set);
  }
  const compose: Record<string, string> = {};
  for (const [service, set] of [...byService].sort(([a], [b]) => a.localeCompare(b))) {
    if (set.has("")) return { hash: content };
    if (set.size > 1) return { hash: "mixed", problem: `the containers of service ${service} carry different Compose config hashes` };
    compose[service] = [...set][0] as string;
  }
  return { hash: resolvedHash(key, content, compose) };
}

/** Pure: a stack's observation from its containers' inspect data. Never reads env. */
export function observeContainers(
  name: string,
  containers: ContainerInspect[],
  opts: { desiredHash?: string | undefined; desiredError?: string | undefined; stoppedByCommand: boolean; resolvedKey?: string | undefined },
): ServiceObservation {
  const o: ServiceObservation = { service: name, state: "stopped", health: "none", starts: containers.length > 0 ? 1 : 0, declared: true };
  if (opts.desiredHash) o.desired_config_hash = opts.desiredHash;
  const problems: string[] = [];
  if (opts.desiredError) problems.push(`spec side: ${opts.desiredError}`);
  if (containers.length > 0) {
    const running = containers.filter((c) => c.State.Running);
    const short = (c: ContainerInspect) => c.Name.replace(/^\//, "");
    if (running.length === containers.length) o.state = "running";
    else if (running.length > 0) {
      o.state = "failed";
      problems.push(`not running: ${containers.filter((c) => !c.State.Running).map((c) => `${short(c)} (${c.State.Status}, exit ${c.State.ExitCode})`).join(", ")}`);
    } else if (containers.every((c) => c.State.Status === "created")) o.state = "stopped";
    else {
      const exited = containers.find((c) => c.State.Status === "exited" || c.State.Status === "dead");
      o.state = opts.stoppedByCommand ? "stopped" : "exited";
      if (exited && !opts.stoppedByCommand) {
        o.exit_code = exited.State.ExitCode;
        problems.push(`${short(exited)} exited with code ${exited.State.ExitCode}`);
      }
    }
    if (o.state === "running") {
      // A paused container still runs (its process exists) but serves nothing: unhealthy, never down.
      const paused = running.filter((c) => c.State.Paused).map(short);
      o.health = paused.length ? "unhealthy" : worst(running.map(containerHealth));
      if (paused.length) problems.push(`paused: ${paused.join(", ")}`);
      const bad = running.filter((c) => !c.State.Paused && containerHealth(c) === "unhealthy").map(short);
      if (bad.length) problems.push(`unhealthy: ${bad.join(", ")}`);
    }
    o.restart_count = containers.reduce((n, c) => n + (c.RestartCount ?? 0), 0);
    const images = [...new Set(containers.map((c) => c.Image))].sort();
    if (images.length === 1) o.image_digest = images[0] as string;
    else o.image_digest = `combined:${hmacHex("steward-images", images.join(",")).slice(0, 32)}`;
    const seen = observedHash(containers, opts.resolvedKey);
    if (seen.hash) o.config_hash = seen.hash;
    if (seen.problem) problems.push(seen.problem);
  }
  if (problems.length) o.detail = problems.join("; ").slice(0, 2000);
  return o;
}
