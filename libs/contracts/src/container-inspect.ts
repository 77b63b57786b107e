import { z } from "zod";

/** Bounds of one answer: a stack's containers, and the lists inside each. */
export const CONTAINER_INSPECT_LIMITS = { containers: 20, healthLog: 5, healthOutputChars: 500, ports: 50, mounts: 50, envNames: 200, errorChars: 500 } as const;

/** Asks a node-agent about the containers of one declared compose service (a stack) on it. Read-only. */
export const ContainerInspectRequest = z.strictObject({
  service: z.string().min(1).max(63),
});
export type ContainerInspectRequest = z.output<typeof ContainerInspectRequest>;

const L = CONTAINER_INSPECT_LIMITS;

/**
 * One container as the engine describes it, reduced to what an investigation needs. Env: names only, never values.
 * Mounts: paths only. The health log's output is redacted and cut.
 */
export const InspectedContainer = z.strictObject({
  name: z.string(),
  /** The compose service inside the stack (`com.docker.compose.service`). */
  compose_service: z.string().nullable(),
  image: z.string(),
  image_id: z.string(),
  created: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  status: z.string(),
  running: z.boolean(),
  restarting: z.boolean(),
  restart_count: z.number().int().nonnegative(),
  exit_code: z.number().int().nullable(),
  oom_killed: z.boolean(),
  /** The engine's own error for the last start (e.g. a port already in use), cut. */
  error: z.string().max(L.errorChars).nullable(),
  health: z
    .strictObject({
      status: z.string(),
      failing_streak: z.number().int().nonnegative(),
      /** The newest results last: start time, exit code and the check's output (redacted, cut). */
      log: z.array(z.strictObject({ start: z.string(), exit_code: z.number().int(), output: z.string().max(L.healthOutputChars + 20) })).max(L.healthLog),
    })
    .nullable(),
  /** `127.0.0.1:8080->80/tcp`, or `80/tcp` when not published. */
  ports: z.array(z.string()).max(L.ports),
  mounts: z.array(z.strictObject({ type: z.string(), source: z.string(), destination: z.string(), read_only: z.boolean() })).max(L.mounts),
  env_names: z.array(z.string()).max(L.envNames),
  /** Lists cut at their bound say so here (`mounts`, `env_names`, …). */
  cut: z.array(z.string()),
});
export type InspectedContainer = z.infer<typeof InspectedContainer>;

export const ContainerInspectReply = z.discriminatedUnion("ok", [
  z.strictObject({
    ok: z.literal(true),
    node: z.string(),
    service: z.string(),
    project: z.string(),
    containers: z.array(InspectedContainer).max(L.containers),
    /** How many containers the project has in all (more than `containers` when cut). */
    total: z.number().int().nonnegative(),
  }),
  z.strictObject({ ok: z.literal(false), code: z.enum(["invalid", "unknown_service", "not_compose", "error"]), message: z.string() }),
]);
export type ContainerInspectReply = z.infer<typeof ContainerInspectReply>;
