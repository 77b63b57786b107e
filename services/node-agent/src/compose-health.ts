import type { ServiceHealth } from "@steward/contracts/events";
import type { HealthCheck } from "@steward/fleet/fleet-spec";
import { runCheck } from "./checks.js";
import { containerName } from "./compose-model.js";
import { containerHealth } from "./compose-status.js";
import { StackDeployError, type Stack } from "./compose-stack.js";
import type { DockerClient } from "./docker/client.js";
import type { ContainerInspect } from "./docker/types.js";
import { aggregateHealth, checkName, freshCheckProgress, nextCheckProgress, type CheckProgress } from "./plan.js";

/** Steward's health gates for stacks: a container's own healthcheck, then the spec's checks. */
export interface StackHealth {
  /** Runs the spec's checks once (a probe of a running stack), keeping their progress on the stack. */
  specHealth(s: Stack): Promise<ServiceHealth>;
  /** Waits until a just-started container is healthy (or running, without a healthcheck); throws the gate's verdict. */
  waitContainer(s: Stack, id: string, service: string, deadline: number): Promise<string>;
  /** Waits until each of the spec's checks has passed once; throws the first still failing when the gate closes. */
  waitSpecChecks(s: Stack, deadline: number): Promise<string[]>;
}

export interface StackHealthDeps {
  docker: Pick<DockerClient, "inspectContainer">;
  /** How often a gate re-inspects a container or re-runs a check (ms). */
  pollMs: number;
  now?: () => number;
}

export type GateVerdict = { pass: string } | { fail: string } | { wait: ServiceHealth };

/** Pure: the container health gate's verdict on one inspection. */
export function containerGate(c: ContainerInspect, nowMs: number, deadline: number): GateVerdict {
  const name = c.Name.replace(/^\//, "");
  if (!c.State.Running) return { fail: `container ${name} ${c.State.Status} (exit code ${c.State.ExitCode}) during its health gate` };
  const h = containerHealth(c);
  if (h === "healthy") return { pass: `${name} healthy` };
  if (h === "none") return { pass: `${name} running (no container healthcheck)` };
  if (h === "unhealthy") return { fail: `container ${name} is unhealthy (failing streak ${c.State.Health?.FailingStreak ?? 0})` };
  if (nowMs >= deadline) return { fail: `container ${name} still ${h} when the health gate closed` };
  return { wait: h };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export function createStackHealth(deps: StackHealthDeps): StackHealth {
  const now = deps.now ?? Date.now;
  const run = (s: Stack, check: HealthCheck) => runCheck(check, { cwd: s.checkout, env: { PATH: process.env["PATH"] ?? "" } });

  return {
    async specHealth(s) {
      if (s.spec.health.length === 0) return "none";
      if (s.checks.length !== s.spec.health.length) s.checks = s.spec.health.map((c) => freshCheckProgress(c, now()));
      for (const [i, check] of s.spec.health.entries()) {
        const r = await run(s, check);
        s.checks[i] = nextCheckProgress(s.checks[i] as CheckProgress, r.ok, now());
      }
      return aggregateHealth(s.checks);
    },

    async waitContainer(s, id, service, deadline) {
      for (;;) {
        let c: ContainerInspect;
        try {
          c = await deps.docker.inspectContainer(id);
        } catch (err) {
          throw new StackDeployError(s.name, "health", `container ${containerName(s.project, service)}: ${(err as Error).message}`);
        }
        const verdict = containerGate(c, now(), deadline);
        if ("pass" in verdict) return verdict.pass;
        if ("fail" in verdict) throw new StackDeployError(s.name, "health", verdict.fail);
        await sleep(Math.min(deps.pollMs, Math.max(10, deadline - now())));
      }
    },

    async waitSpecChecks(s, deadline) {
      const done: string[] = [];
      for (const [i, check] of s.spec.health.entries()) {
        const name = checkName(check, i);
        for (;;) {
          const r = await run(s, check);
          if (r.ok) break;
          if (now() >= deadline) throw new StackDeployError(s.name, "health", `health check ${name} still failing when the health gate closed: ${r.detail}`);
          await sleep(Math.min(deps.pollMs, check.interval, Math.max(10, deadline - now())));
        }
        done.push(`check ${name} ok`);
      }
      return done;
    },
  };
}
