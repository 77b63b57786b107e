import { CONTAINER_INSPECT_LIMITS, ContainerInspectRequest, type ContainerInspectReply } from "@steward/contracts/container-inspect";
import { containerInspectSubject } from "@steward/contracts/subjects";
import type { NatsConnection } from "@steward/platform/bus";
import { redactSecretsInText } from "@steward/platform/redact";
import type { Logger } from "@steward/platform/logger";
import type { ComposeDriver } from "./compose-driver.js";
import { readRequest, serveNodeRequests } from "./node-request.js";
import { inspectView } from "./compose-investigate.js";

export interface ContainerInspectDeps {
  node: string;
  compose: Pick<ComposeDriver, "investigate">;
  /** Whether a name is a declared service of another kind (answered `not_compose`, not `unknown_service`). */
  isDeclared(service: string): boolean;
  logger: Logger;
}

/** Answers one request: the containers of a declared stack, without env values. Never throws. */
export async function answerContainerInspect(data: Uint8Array, deps: Omit<ContainerInspectDeps, "logger">): Promise<ContainerInspectReply> {
  const req = readRequest(data, ContainerInspectRequest);
  if (!req.ok) return req;
  const { service } = req.data;
  try {
    const found = await deps.compose.investigate(service);
    if (!found) {
      if (deps.isDeclared(service)) return { ok: false, code: "not_compose", message: `'${service}' on node '${deps.node}' is not a compose service: it has no containers` };
      return { ok: false, code: "unknown_service", message: `no declared compose service '${service}' on node '${deps.node}'` };
    }
    const shown = found.containers.slice(0, CONTAINER_INSPECT_LIMITS.containers);
    return { ok: true, node: deps.node, service, project: found.project, containers: shown.map((c) => inspectView(c, found.secrets)), total: found.containers.length };
  } catch (err) {
    return { ok: false, code: "error", message: `cannot read the containers of '${service}': ${redactSecretsInText((err as Error).message).slice(0, 300)}` };
  }
}

/** Serves `steward.inspect.<node>` request/reply. Returns the subscription so the agent can stop it. */
export function serveContainerInspect(nc: NatsConnection, deps: ContainerInspectDeps): { unsubscribe(): void } {
  return serveNodeRequests(nc, { subject: containerInspectSubject(deps.node), name: "container_inspect", node: deps.node, logger: deps.logger, answer: (data) => answerContainerInspect(data, deps) });
}
