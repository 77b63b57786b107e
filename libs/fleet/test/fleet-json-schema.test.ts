import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
// ajv 6 is already installed (eslint depends on it); a standard validator proves editors will read the schema the same way.
import Ajv from "ajv";
import { FLEET_JSON_SCHEMA_PATH, fleetJsonSchemaText } from "@steward/fleet/fleet-json-schema";
import { parseFleetSpec } from "@steward/fleet/fleet-spec";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const committed = readFileSync(`${root}${FLEET_JSON_SCHEMA_PATH}`, "utf8");
const schema = JSON.parse(committed) as Record<string, unknown>;
const validate = new Ajv({ allErrors: true }).compile(schema);

/** Every ```yaml block in the docs that is a whole fleet spec (has a top-level `version: 1`). */
function docExamples(): { where: string; text: string }[] {
  const files = [...readdirSync(`${root}docs`).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`), "README.md"];
  return files.flatMap((f) =>
    [...readFileSync(`${root}${f}`, "utf8").matchAll(/^```ya?ml\n([\s\S]*?)^```/gm)]
      .filter((m) => /^version: 1$/m.test(m[1]!))
      .map((m, i) => ({ where: `${f} block ${i + 1}`, text: m[1]! })),
  );
}

describe("docs/fleet.schema.json", () => {
  it("is what the zod schema generates now (regenerate: npx tsc -b && npm run schema -w @steward/fleet)", () => {
    expect(committed).toBe(fleetJsonSchemaText());
  });

  it("is a draft-07 schema with the spec's top-level fields", () => {
    expect(schema.$schema).toBe("http://json-schema.org/draft-07/schema#");
    expect(schema.title).toMatch(/fleet/);
    expect(Object.keys(schema.properties as object).sort()).toEqual(["deploy", "fleet", "nodes", "repo", "secrets", "version"]);
    expect(schema.required).toEqual(["version", "nodes"]);
    expect(schema.additionalProperties).toBe(false);
  });

  const examples = docExamples();
  it("the docs have fleet examples to check", () => expect(examples.length).toBeGreaterThan(0));
  it.each(examples)("$where is valid for the JSON schema and for zod", ({ text }) => {
    expect(validate(parse(text)), JSON.stringify(validate.errors)).toBe(true);
    expect(parseFleetSpec(text)).toMatchObject({ ok: true });
  });

  // The schema must reject what zod rejects, or an editor would bless a broken file.
  it.each([
    ["an unknown field", "version: 1\nnodes:\n  a:\n    services:\n      s: { kind: process, command: [x], restrat: always }\n"],
    ["a bad duration", "version: 1\nnodes:\n  a:\n    services:\n      s: { kind: process, command: [x], health: [{ type: tcp, port: 80, interval: 5 seconds }] }\n"],
    ["a bad service name", "version: 1\nnodes:\n  a:\n    services:\n      Web: { kind: process, command: [x] }\n"],
    ["no nodes", "version: 1\nnodes: {}\n"],
    ["an unknown kind", "version: 1\nnodes:\n  a:\n    services:\n      s: { kind: docker, image: x }\n"],
    ["version 2", "version: 2\nnodes:\n  a: {}\n"],
  ])("rejects %s, as zod does", (_name, text) => {
    expect(parseFleetSpec(text).ok).toBe(false);
    expect(validate(parse(text))).toBe(false);
  });
});
