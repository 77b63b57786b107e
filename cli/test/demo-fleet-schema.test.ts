import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
// ajv 6 is already installed (eslint depends on it); no dependency added for this check.
import Ajv from "ajv";
import { parseFleetSpec } from "@steward/fleet/fleet-spec";
import { demoFleetYaml } from "../src/up/stack.js";

describe("the demo fleet `steward up` writes", () => {
  const text = demoFleetYaml({ web: 41001, api: 41002, worker: 41003, reports: 41004 });
  it("is valid for docs/fleet.schema.json (what editors check) and for zod", () => {
    const schema = JSON.parse(readFileSync(new URL("../../docs/fleet.schema.json", import.meta.url), "utf8")) as object;
    const validate = new Ajv({ allErrors: true }).compile(schema);
    expect(validate(parse(text)), JSON.stringify(validate.errors)).toBe(true);
    expect(parseFleetSpec(text)).toMatchObject({ ok: true });
  });
});
