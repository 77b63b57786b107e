import { z } from "zod";
import { FleetSpec } from "./fleet-spec.js";

/** Where the generated file is committed, relative to the repo root (docs link to it; editors load it). */
export const FLEET_JSON_SCHEMA_PATH = "docs/fleet.schema.json";

/**
 * The JSON Schema of `fleet.yaml`, generated from the zod schema so the two never disagree. Draft 7: the draft
 * yaml-language-server (VS Code's YAML extension) and most validators handle best. `io: "input"` describes what
 * an operator writes (defaulted fields are optional), not what parsing returns.
 *
 * What it cannot say, and only `steward validate` checks: that depends_on and via name services declared on the
 * same node, that start order and health gates form no cycle, that referenced files exist in the repo and compose
 * file lists hold only compose files, placement, and that secret-looking env values are references, not inline.
 */
export function fleetJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(FleetSpec, { target: "draft-7", io: "input", unrepresentable: "throw" }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return {
    $schema,
    $id: "urn:steward:fleet-spec:1",
    title: "Steward fleet spec (fleet.yaml)",
    description: "Nodes and the services each runs. Generated from the zod schema in libs/fleet/src/fleet-spec.ts by `npm run schema -w @steward/fleet`; `steward validate` checks more (see docs/fleet-spec.md).",
    ...rest,
  };
}

/** The file's exact text, so a test can compare it byte for byte with what is committed. */
export function fleetJsonSchemaText(): string {
  return JSON.stringify(fleetJsonSchema(), null, 2) + "\n";
}
