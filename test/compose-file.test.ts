/** docker-compose.yml as written: what each service is given, checked without running anything (the live run is control-plane-compose.test.ts). */
import { describe, expect, it } from "vitest";
import { SINK_SETTINGS } from "@steward/alerter";
import { ALL_SERVICES, STEWARD_SERVICES, composeFile, type Mount } from "./support/compose-file.js";

describe("docker-compose.yml, as written", () => {
  it("hands the alerter every sink setting it reads, each only when set (a present-but-empty one would count as configured)", () => {
    const env = composeFile.services["alerter"]?.environment ?? {};
    for (const key of Object.values(SINK_SETTINGS).flat()) {
      expect(Object.keys(env), key).toContain(key);
      expect(env[key], key).toBeNull();
    }
  });

  it("gives the executor the fleet spec, and keeps the database password out of every URL", () => {
    expect(composeFile.services["executor"]?.environment?.["FLEET_SPEC"]).toBe("/repo/fleet.yaml");
    for (const [name, s] of Object.entries(composeFile.services)) {
      const url = s.environment?.["DATABASE_URL"];
      if (url !== undefined) expect(url, name).not.toContain("POSTGRES_PASSWORD");
    }
  });

  it("has a healthcheck on every service and starts Steward's only once NATS and PostgreSQL are healthy", () => {
    for (const name of ALL_SERVICES) expect(composeFile.services[name]?.healthcheck?.test?.length, name).toBeGreaterThan(0);
    for (const name of STEWARD_SERVICES) {
      const deps = composeFile.services[name]?.depends_on ?? {};
      for (const infra of ["nats-1", "nats-2", "nats-3", "postgres"]) expect(deps[infra]?.condition, `${name} → ${infra}`).toBe("service_healthy");
    }
  });

  it("gives each Steward service its own NATS seed only (read-only, a bind that must exist) and each NATS server the users file", () => {
    const seeds = (s: string) => (composeFile.services[s]?.volumes ?? []).filter((v): v is Exclude<Mount, string> => typeof v !== "string" && v.source.includes("/seeds/"));
    for (const name of STEWARD_SERVICES) {
      expect(composeFile.services[name]?.environment?.["NATS_NKEY_SEED_FILE"], name).toBe("/run/steward/nats.nk");
      expect(seeds(name), name).toEqual([{ type: "bind", source: `\${STEWARD_NATS_KEYS:-./nats-keys}/seeds/${name}.nk`, target: "/run/steward/nats.nk", read_only: true }]);
    }
    for (const name of ["nats-1", "nats-2", "nats-3"]) {
      const users = (composeFile.services[name]?.volumes ?? []).filter((v) => typeof v !== "string" && v.target === "/etc/nats/nats-users.conf");
      expect(users, name).toEqual([{ type: "bind", source: "${STEWARD_NATS_KEYS:-./nats-keys}/nats-users.conf", target: "/etc/nats/nats-users.conf", read_only: true }]);
      expect(seeds(name), name).toEqual([]);
    }
  });

  it("gives each Steward service the NATS CA (NATS_CA_FILE) and each NATS server its certificate, key and the CA", () => {
    const tls = (s: string) => (composeFile.services[s]?.volumes ?? []).filter((v): v is Exclude<Mount, string> => typeof v !== "string" && v.source.includes("/tls/"));
    for (const name of STEWARD_SERVICES) {
      expect(composeFile.services[name]?.environment?.["NATS_CA_FILE"], name).toBe("/run/steward/nats-ca.pem");
      expect(tls(name), name).toEqual([{ type: "bind", source: "${STEWARD_NATS_KEYS:-./nats-keys}/tls/ca.pem", target: "/run/steward/nats-ca.pem", read_only: true }]);
    }
    for (const name of ["nats-1", "nats-2", "nats-3"]) {
      expect(tls(name).map((v) => [v.source.split("/").pop(), v.target, v.type, v.read_only]), name).toEqual([
        ["server.pem", "/etc/nats/tls/server.pem", "bind", true],
        ["server.key", "/etc/nats/tls/server.key", "bind", true],
        ["ca.pem", "/etc/nats/tls/ca.pem", "bind", true],
      ]);
    }
  });

  it("gives the supervisor, the alerter and the console (executor) each its own planner token, the planner's admin token to none", () => {
    const env = (s: string) => composeFile.services[s]?.environment ?? {};
    const own = { supervisor: ["supervisor", "SUPERVISOR"], alerter: ["alerter", "ALERTER"], executor: ["console", "CONSOLE"] } as const;
    for (const [service, [, setting]] of Object.entries(own)) {
      const ref = `\${STEWARD_${setting}_PLANNER_TOKEN:?set STEWARD_${setting}_PLANNER_TOKEN in .env}`;
      expect(env(service)["PLANNER_TOKEN"], service).toBe(ref);
      expect(env("planner")[`${setting}_TOKEN`], service).toBe(ref);
    }
    for (const [name, s] of Object.entries(composeFile.services)) {
      for (const [key, value] of Object.entries(s.environment ?? {})) {
        if (value?.includes("STEWARD_PLANNER_TOKEN")) expect(`${name}.${key}`).toBe("planner.API_TOKEN");
      }
    }
  });

  it("publishes nothing on all interfaces unless STEWARD_BIND says so", () => {
    for (const [name, s] of Object.entries(composeFile.services)) for (const p of s.ports ?? []) expect(p, name).toMatch(/^\$\{STEWARD_BIND:-127\.0\.0\.1\}:/);
  });
});
