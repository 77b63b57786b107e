import { describe, expect, it } from "vitest";
import { NATS_COMPONENTS } from "@steward/contracts/nats-permissions";
import { RESERVED_CREDENTIAL_NAMES } from "@steward/contracts/executor-api";
import { decideCredentialName } from "../src/credentials.js";

/** The executor's setting credentials (API_TOKEN, ALERTER_TOKEN), as createExecutor passes them. */
const SETTINGS = [
  { name: "admin", setting: "API_TOKEN" },
  { name: "alerter", setting: "ALERTER_TOKEN" },
];

describe("which names a new credential may take (pure)", () => {
  it.each([
    ["olga", true, ""],
    ["ops-olga", true, ""],
    ["planner-oncall", true, ""],
    ["admin", false, "the credential of the setting API_TOKEN"],
    ["alerter", false, "the credential of the setting ALERTER_TOKEN"],
    ["planner", false, "name 'planner' is reserved: it names a Steward component"],
    ["supervisor", false, "'supervisor' is reserved"],
    ["executor", false, "'executor' is reserved"],
    ["observer", false, "'observer' is reserved"],
    ["console", false, "'console' is reserved"],
    ["cli", false, "'cli' is reserved"],
    ["node-agent", false, "'node-agent' is reserved"],
    ["system", false, "'system' is reserved"],
    ["ntfy-button", false, "'ntfy-button' is reserved"],
  ])("%s: allowed %s", (name, ok, says) => {
    const d = decideCredentialName(name, SETTINGS);
    expect(d.ok).toBe(ok);
    if (!d.ok) {
      expect(d).toMatchObject({ code: "reserved", field: "name" });
      expect(d.message).toContain(says);
    }
  });

  it("without settings (the planner's repository in tests) admin and alerter are still reserved, as components' and the bootstrap's names", () => {
    for (const name of ["admin", "alerter"]) expect(decideCredentialName(name, [])).toMatchObject({ ok: false, code: "reserved", field: "name" });
  });

  it("every NATS component and every component credential of the planner is reserved", () => {
    for (const c of NATS_COMPONENTS) expect(RESERVED_CREDENTIAL_NAMES).toContain(c);
    // The planner's component credentials (services/planner/src/config.ts): the supervisor, the alerter, the console.
    for (const c of ["supervisor", "alerter", "console"]) expect(RESERVED_CREDENTIAL_NAMES).toContain(c);
  });
});
