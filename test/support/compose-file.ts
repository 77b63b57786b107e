/** The control plane's docker-compose.yml as the tests read it: its path, its services, the parsed file. */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";

export const COMPOSE_FILE = join(resolve(dirname(fileURLToPath(import.meta.url)), "..", ".."), "docker-compose.yml");
export const STEWARD_SERVICES = ["observer", "supervisor", "executor", "planner", "alerter"] as const;
export const ALL_SERVICES = ["nats-1", "nats-2", "nats-3", "postgres", ...STEWARD_SERVICES];

export type Mount = string | { type: string; source: string; target: string; read_only?: boolean };
export type ComposeService = { environment?: Record<string, string | null>; healthcheck?: { test?: string[] }; depends_on?: Record<string, { condition: string }>; volumes?: Mount[]; ports?: string[] };
export const composeFile = parseYaml(readFileSync(COMPOSE_FILE, "utf8"), { merge: true }) as { services: Record<string, ComposeService> };
