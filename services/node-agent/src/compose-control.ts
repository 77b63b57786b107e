import type { ServiceActionKind } from "@steward/contracts/action";
import { deployOrder } from "./compose-revision.js";
import { serviceOf, type StackApplier } from "./compose-apply.js";
import type { StackConfig } from "./compose-config.js";
import type { StackObserver } from "./compose-observe.js";
import { StackDeployError, type Stack } from "./compose-stack.js";
import type { ContainerInspect } from "./docker/types.js";

/** The service kinds of the action catalog, applied to a whole stack. */
export type ControlOp = ServiceActionKind;

/** Start, stop and restart of a stack's existing containers (a stack without containers needs a deploy). */
export interface StackControl {
  run(s: Stack, op: ControlOp): Promise<string>;
}

export interface StackControlDeps {
  node: string;
  config: Pick<StackConfig, "desired">;
  observer: Pick<StackObserver, "containers">;
  applier: Pick<StackApplier, "stopContainers" | "startContainers">;
}

/** Pure: container ids in the order they start: by the revision's deploy order, containers of unknown services last. */
export function startSequence(containers: readonly ContainerInspect[], order: readonly string[]): string[] {
  const rank = (c: ContainerInspect) => {
    const i = order.indexOf(serviceOf(c));
    return i < 0 ? order.length : i;
  };
  return [...containers].sort((a, b) => rank(a) - rank(b)).map((c) => c.Id);
}

/** What an op does, in order. */
const CONTROL_STEPS: { readonly [op in ControlOp]: readonly ("stop" | "start")[] } = { start: ["start"], stop: ["stop"], restart: ["stop", "start"] };

export function createStackControl(deps: StackControlDeps): StackControl {
  return {
    async run(s, op) {
      const containers = await deps.observer.containers(s);
      if (containers.length === 0) throw new StackDeployError(s.name, "start", `stack ${s.name} has no containers on ${deps.node}; deploy it`);
      for (const step of CONTROL_STEPS[op]) {
        // Stopped by command: its exited containers are reported stopped, not exited, until something starts them.
        s.stoppedByCommand = step === "stop";
        if (step === "stop") await deps.applier.stopContainers(containers.map((c) => c.Id));
        else {
          // Only the start order is needed: no fresh ask of Compose (a restart is not held up by it).
          const r = await deps.config.desired(s, { maxAgeMs: Number.POSITIVE_INFINITY }).catch(() => undefined);
          await deps.applier.startContainers(startSequence(containers, r ? deployOrder(r.services) : []));
        }
      }
      return `${op} done (${containers.length} container${containers.length === 1 ? "" : "s"})`;
    },
  };
}
