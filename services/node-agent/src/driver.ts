import type { NodeCommandBody, NodeCommandReply } from "@steward/contracts/node-command";
import type { ServiceObservation } from "@steward/contracts/events";
import type { ServiceSpec } from "@steward/fleet/fleet-spec";
import type { Logger } from "@steward/platform/logger";
import { ServiceOp } from "./commands.js";

/** Service kinds as the fleet spec defines them: a new kind does not compile until a driver is registered for it. */
export type ServiceKind = ServiceSpec["kind"];

/** A verified command for one service (not for the deploy checkout). */
export type ServiceCommand = NodeCommandBody & { op: ServiceOp };

/** Runs one op on one service. Never throws: a failure is a reply. */
export type OpHandler = (cmd: ServiceCommand) => Promise<NodeCommandReply>;

/** The ops a kind supports, one optional handler per service op of the contract; one it leaves out is refused by the table. */
export type ServiceOps = { readonly [op in ServiceOp]?: OpHandler };

/** Everything the agent does to the services of one kind: observe them, and the ops the kind supports. */
export interface ServiceDriver {
  readonly kind: ServiceKind;
  /** Whether the driver has the service now (declared, or a process still running after it left the spec). */
  has(service: string): boolean;
  /** The last observation of every service it reports (heartbeats restate them). */
  observe(): ServiceObservation[];
  readonly ops: ServiceOps;
}

/** The refusal of an op a kind does not support: nothing was touched. */
export type UnsupportedOp = Extract<NodeCommandReply, { ok: false }> & { code: "failed" };

/** Pure: which ops a driver supports, in the contract's order. */
export function supportedOps(ops: ServiceOps): ServiceOp[] {
  return ServiceOp.options.filter((op) => ops[op] !== undefined);
}

export function unsupportedOp(driver: ServiceDriver, cmd: ServiceCommand): UnsupportedOp {
  return { ok: false, id: cmd.id, code: "failed", message: `op '${cmd.op}' does not apply to ${driver.kind} service '${cmd.service}' (a ${driver.kind} service takes ${supportedOps(driver.ops).join(", ")})` };
}

/** Runs a command through the driver's handler for its op; an op the kind does not support is refused. Never throws. */
export function runOp(driver: ServiceDriver, cmd: ServiceCommand): Promise<NodeCommandReply> {
  const handler: OpHandler = driver.ops[cmd.op] ?? ((c) => Promise.resolve(unsupportedOp(driver, c)));
  return handler(cmd);
}

/** One driver per kind of the fleet spec. */
export type DriversByKind = { readonly [K in ServiceKind]: ServiceDriver & { readonly kind: K } };

/** The node's drivers looked up by service kind. */
export interface DriverTable {
  /** The driver a command for `service` goes to: its declared kind's, else whichever still has it; none: unknown. */
  driverFor(service: string): ServiceDriver | undefined;
  /** Runs a verified service command through the driver of the service's kind. Never throws. */
  execute(cmd: ServiceCommand): Promise<NodeCommandReply>;
  /** Every service of every driver, by name. */
  observe(): ServiceObservation[];
}

export interface DriverTableDeps {
  node: string;
  drivers: DriversByKind;
  /** The kind the current spec declares `service` as on this node, if it declares it. */
  kindOf(service: string): ServiceKind | undefined;
  logger: Logger;
}

export function createDriverTable(deps: DriverTableDeps): DriverTable {
  const all: ServiceDriver[] = Object.values(deps.drivers);

  function driverFor(service: string): ServiceDriver | undefined {
    const kind = deps.kindOf(service);
    // An undeclared service can still have a driver: a process left the spec but runs until stopped.
    return kind === undefined ? all.find((d) => d.has(service)) : deps.drivers[kind];
  }

  return {
    driverFor,

    async execute(cmd) {
      const driver = driverFor(cmd.service);
      const reply: NodeCommandReply = driver ? await runOp(driver, cmd) : { ok: false, id: cmd.id, code: "unknown_service", message: `no service '${cmd.service}' on node '${deps.node}'` };
      if (!reply.ok && (!driver || driver.ops[cmd.op] === undefined)) deps.logger.warn({ code: reply.code, command_id: cmd.id, op: cmd.op, service: cmd.service, reason: reply.message }, "node command refused");
      return reply;
    },

    observe: () => all.flatMap((d) => d.observe()).sort((a, b) => a.service.localeCompare(b.service)),
  };
}
