import { describe, expect, it } from "vitest";
import { CONTAINER_INSPECT_LIMITS, InspectedContainer } from "@steward/contracts/container-inspect";
import { inspectView, secretEnvValues, stackLogs } from "../src/compose-investigate.js";
import type { ContainerInspect } from "../src/docker/types.js";

/** The pure parts behind `service_logs` and `container_inspect` for compose services (the live test is test/compose-investigation.test.ts). */
const container = (over: Partial<ContainerInspect> & { service?: string; env?: string[] } = {}): ContainerInspect => ({
  Id: over.Id ?? "id1",
  Name: over.Name ?? "/web-app-1",
  Created: "2026-12-01T10:00:00.000000000Z",
  Image: "sha256:abc",
  RestartCount: 2,
  State: { Status: "exited", Running: false, Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: 0, ExitCode: 1, Error: "", StartedAt: "2026-12-01T10:00:01Z", FinishedAt: "0001-01-01T00:00:00Z" },
  Config: { Image: "app:1", Env: over.env ?? ["DB_PASSWORD=hunter2-secret", "LOG_LEVEL=info"], Labels: { "com.docker.compose.service": over.service ?? "app" }, Cmd: null },
  ...over,
});

describe("container views for an investigation", () => {
  it("names env variables, never their values; zero times are null; long lists are cut and say so", () => {
    const many = Array.from({ length: CONTAINER_INSPECT_LIMITS.envNames + 5 }, (_, i) => `V${String(i).padStart(3, "0")}=value-${i}`);
    const v = inspectView(container({ env: ["DB_PASSWORD=hunter2-secret", ...many], Mounts: [{ Type: "bind", Source: "/srv/data", Destination: "/data", RW: false }] }), ["hunter2-secret"]);
    expect(InspectedContainer.parse(v)).toEqual(v);
    expect(JSON.stringify(v)).not.toMatch(/hunter2|value-\d/);
    expect(v.env_names).toHaveLength(CONTAINER_INSPECT_LIMITS.envNames);
    expect(v.cut).toEqual(["env_names: 6 more not shown"]);
    expect(v).toMatchObject({ name: "web-app-1", compose_service: "app", finished_at: null, exit_code: 1, restart_count: 2, mounts: [{ type: "bind", source: "/srv/data", destination: "/data", read_only: true }] });
  });

  it("health output is redacted with the known values and cut to its bound", () => {
    const Log = [{ Start: "s", End: "e", ExitCode: 1, Output: `connect with hunter2-secret failed\n${"x".repeat(2000)}` }];
    const v = inspectView(container({ State: { ...container().State, Health: { Status: "unhealthy", FailingStreak: 3, Log } } }), ["hunter2-secret"]);
    expect(v.health?.log[0]?.output.length).toBeLessThanOrEqual(CONTAINER_INSPECT_LIMITS.healthOutputChars + 1);
    const short = inspectView(container({ State: { ...container().State, Health: { Status: "unhealthy", FailingStreak: 3, Log: [{ Start: "s", End: "e", ExitCode: 1, Output: "connect with hunter2-secret failed" }] } } }), ["hunter2-secret"]);
    expect(short.health?.log[0]?.output).toBe("connect with [redacted] failed");
  });

  it("values to mask: container env values whose names look secret, not the others", () => {
    expect(secretEnvValues([container()])).toEqual(["hunter2-secret"]);
  });

  it("a stack's logs are merged by the engine's timestamps, tagged by compose service, and cut to max bytes at a line start", async () => {
    const logs: Record<string, string> = {
      a: "2026-12-01T10:00:00.000000001Z a one\n2026-12-01T10:00:00.000000003Z a three\n",
      b: "2026-12-01T10:00:00.000000002Z b two\n",
    };
    const asked: unknown[] = [];
    const read = async (c: ContainerInspect, o: unknown) => {
      asked.push(o);
      return { text: logs[c.Id] ?? "", truncated: false };
    };
    const two = [container({ Id: "a", service: "web" }), container({ Id: "b", service: "db" })];
    const r = await stackLogs(two, { maxBytes: 4096 }, read);
    expect(r.text).toBe("2026-12-01T10:00:00.000000001Z web | a one\n2026-12-01T10:00:00.000000002Z db | b two\n2026-12-01T10:00:00.000000003Z web | a three\n");
    expect(r.truncated).toBe(false);
    expect(asked[0]).toMatchObject({ tty: false, maxBytes: 4096, tailLines: 128 });
    const cut = await stackLogs(two, { maxBytes: 60 }, read);
    expect(cut).toMatchObject({ truncated: true, text: "2026-12-01T10:00:00.000000003Z web | a three\n" });
    // With `until`, no line tail: the engine's tail counts from the end of the whole log.
    await stackLogs([two[0]!], { maxBytes: 100, until: new Date("2026-12-01T10:00:00Z") }, read);
    expect(asked.at(-1)).not.toHaveProperty("tailLines");
    // One container: its lines as the engine sent them.
    expect((await stackLogs([two[1]!], { maxBytes: 4096 }, read)).text).toBe(logs["b"]);
  });
});
