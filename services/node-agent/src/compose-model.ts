import type { EnvValue } from "@steward/fleet/fleet-spec";

/**
 * The compose vocabulary the node-agent's compose parts share: a stack's normalized services, the revision a deploy
 * would run, and the labels on the containers. Pure; the parts: compose-normalize (one service's keys), compose-merge
 * (files in order), compose-revision (hashes), compose-container (create bodies), compose-status (observations).
 */

export class ComposeError extends Error {
  constructor(
    /** The compose file (as declared) the problem is in, when it is in one. */
    readonly file: string | undefined,
    readonly problem: string,
  ) {
    super(file ? `${file}: ${problem}` : problem);
    this.name = "ComposeError";
  }
}

export interface ComposeHealthcheck {
  test: string[];
  interval_ms?: number;
  timeout_ms?: number;
  retries?: number;
  start_period_ms?: number;
}

/** One compose service after normalization: list/map spellings unified, so equal meaning hashes equal. */
export interface ComposeServiceDef {
  image: string;
  command?: string[];
  entrypoint?: string[];
  environment: Record<string, string>;
  labels: Record<string, string>;
  depends_on: string[];
  /** `null`: the image's own healthcheck is disabled. */
  healthcheck?: ComposeHealthcheck | null;
  restart?: "no" | "always" | "unless-stopped" | "on-failure";
  ports: string[];
  volumes: string[];
  working_dir?: string;
  user?: string;
  /** Keys Steward does not apply (networks, build, …): they still count toward the config hash. */
  other: Record<string, unknown>;
}

export type ComposeServices = Record<string, ComposeServiceDef>;

/**
 * What a deploy of a stack would run, free of secret values: compose content, the spec's env with secret refs as
 * their names, the env file as keyed digests (HMAC with the fleet key, never values). Stored as the node's
 * revision record and hashed into the config hash.
 */
export interface StackRevision {
  /**
   * The revision's identity: `sha256:<hex>` over everything below (the content hash), or, where the real Compose
   * applies stacks, `compose:<hex>` over the content hash and Compose's own resolved config hashes.
   */
  hash: string;
  /** Set when `hash` includes Compose's hashes: the content hash alone (the `steward.config-hash` label). */
  content_hash?: string;
  /** Compose's own config hash of each service's resolved configuration (`config --hash "*"`), when Compose applies. */
  compose_hashes?: Record<string, string>;
  project: string;
  services: ComposeServices;
  env: Record<string, EnvValue>;
  /** Absolute path of the stack's env file, if any; its values are read again at each deploy. */
  env_file: string | null;
  /** Keyed digests of the env file's values, by key: a changed value changes the hash without revealing it. */
  env_file_digests: Record<string, string>;
}

/** Compose's container name for the first replica of a service. */
export const containerName = (project: string, service: string): string => `${project}-${service}-1`;

export const LABEL_PROJECT = "com.docker.compose.project";
export const LABEL_SERVICE = "com.docker.compose.service";
export const LABEL_CONFIG_HASH = "steward.config-hash";
export const LABEL_STACK = "steward.stack";
/** Compose's hash of a service's resolved configuration, set by both Compose versions on every container. */
export const LABEL_COMPOSE_HASH = "com.docker.compose.config-hash";
