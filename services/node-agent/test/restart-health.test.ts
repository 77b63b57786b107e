import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProcessService } from "@steward/fleet/fleet-spec";
import { silentLogger } from "@steward/platform/logger";
import { freePort, waitFor } from "@steward/testkit";
import type { ProcessRecords } from "../src/process-records.js";
import { SupervisedService } from "../src/supervised-service.js";
import { HTTP_SERVER_JS } from "./helpers.js";

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "restart-health-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("a restarted process's health", () => {
  it("is `starting` from the moment the new process runs, never the previous process's `healthy` (even while its record is written)", async () => {
    const port = await freePort();
    const spec = ProcessService.parse({
      kind: "process",
      command: [process.execPath, "-e", HTTP_SERVER_JS],
      env: { PORT: String(port) },
      health: [{ type: "http", url: `http://127.0.0.1:${port}/health`, interval: "200ms", timeout: "500ms", retries: 2 }],
    });
    // The process record's write is the one await between "running" and the start's report: hold it open to look at
    // what a heartbeat taken during it says (a busy disk makes it long; a drill measured the old health there).
    let release: (() => void) | undefined;
    let held = false;
    const records: ProcessRecords = {
      save: () => (held ? new Promise<void>((r) => (release = r)) : Promise.resolve()),
      remove: () => Promise.resolve(),
      list: () => Promise.resolve([]),
    };
    const svc = new SupervisedService("web", spec, {
      node: "n1",
      logDir: dir,
      baseDir: dir,
      stopGraceMs: 2000,
      logger: silentLogger(),
      hooks: { onExit: () => undefined, onStarted: () => undefined, onCheck: () => undefined },
      records,
    });
    try {
      await svc.start();
      await waitFor("the first process healthy", () => svc.observation().health === "healthy", 30_000, 20);
      await svc.stop();
      expect(svc.observation()).toMatchObject({ state: "stopped", health: "none" });

      held = true;
      const starting = svc.start();
      await waitFor("the new process running, its record still being written", () => svc.observation().state === "running" && release !== undefined, 30_000, 5);
      expect(svc.observation()).toMatchObject({ state: "running", health: "starting", starts: 2 });
      release?.();
      await starting;
      await waitFor("the new process healthy on its own checks", () => svc.observation().health === "healthy", 30_000, 20);
    } finally {
      release?.();
      await svc.stop();
    }
  });
});
