/**
 * A failed action is an incident, driven as an operator would: `steward up` with no push sink set (so its alerter
 * prints alerts on up's own terminal), a service killed, its restart approved, and the restart exits at once. The
 * action fails, the planner gets an incident task for it (seen through the CLI, `steward task ls`), the planner keeps
 * it as an incident (`steward incident ls/show`), and up's terminal shows the alert.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Action } from "@steward/contracts/action";
import type { Snapshot } from "@steward/contracts/world-state";
import type { Task } from "@steward/contracts/task";
import type { Incident, IncidentDetail } from "@steward/contracts/incident";
import { waitFor } from "@steward/testkit";
import { runSteward, startUp, type RunningUp } from "./steward-process.js";

let home = "";
let up: RunningUp | undefined;
let marker = "";

const steward = <T = unknown>(...args: string[]) => runSteward<T>(home, args);
const svc = () => steward<Snapshot>("status", "--json").json?.world.nodes["inc"]?.services["flaky"];
const actions = () => steward<{ actions: Action[] }>("actions", "--json").json?.actions ?? [];

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "steward-e2e-incident-"));
  marker = join(home, "broken");
  const fleet = join(home, "fleet.yaml");
  // Runs until the marker exists; from then on it exits at once (code 3), as a service with a broken config would.
  await writeFile(fleet, `version: 1\nnodes:\n  inc:\n    services:\n      flaky:\n        kind: process\n        command: ["/bin/sh", "-c", ${JSON.stringify(`test -e ${marker} && exit 3; exec sleep 3600`)}]\n        restart: never\n`);
  const unset = ["NTFY_URL", "NTFY_TOPIC", "NTFY_TOKEN", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "WEBHOOK_URL", "WEBHOOK_TOKEN"];
  up = await startUp(home, ["--fleet", fleet, "--dir", join(home, "stack"), "--heartbeat-ms", "500"], { ALERT_GROUP_WAIT_MS: "1000" }, unset);
}, 120_000);

afterAll(async () => {
  await up?.stop();
  await rm(home, { recursive: true, force: true });
}, 60_000);

describe("steward up: a failed action is an incident", () => {
  it("runs the alerter with no push sink and says alerts are printed here", () => {
    expect(up!.output()).toContain("alerter running; no push sink set, so alerts are printed here");
  });

  it("a restart that exits at once fails, becomes a planner task, and its alert is printed on up's terminal", async () => {
    const pid = await waitFor("flaky running", () => (svc()?.state === "running" ? svc()?.pid : undefined), 60_000, 300);
    await writeFile(marker, "");
    process.kill(pid!, "SIGKILL");
    const restart = await waitFor("a pending restart", () => actions().find((a) => a.service === "flaky" && a.kind === "restart" && a.state === "pending"), 60_000, 300);
    expect(steward("approve", restart.id).code).toBe(0);
    // Waits for the action to end, whatever the end, so a wrong end is reported as itself rather than as a timeout.
    const ended = await waitFor("the restart to end", () => {
      const a = actions().find((x) => x.id === restart.id);
      if (a && !["pending", "approved", "running"].includes(a.state)) return a;
      throw new Error(`still ${a?.state ?? "not listed"}; ${JSON.stringify(svc())}`);
    }, 60_000, 300);
    expect(`${ended.state}: ${ended.result}`).toMatch(/^failed: .*exit/);

    // The incident: one planner task about this action, from the supervisor.
    const task = await waitFor("an incident task", () => (steward<{ tasks: Task[] }>("task", "ls", "--conversation", "supervisor:inc/flaky", "--json").json?.tasks ?? []).find((t) => t.content.includes(`The restart of flaky on inc failed`)), 60_000, 500);
    expect(task.source).toBe("supervisor");

    // It is an incident of its own (the CLI finds the planner through up's stack file): its timeline holds the
    // approval and the failure from the audit log.
    const incident = await waitFor("the incident", () => (steward<{ incidents: Incident[] }>("incident", "ls", "--json").json?.incidents ?? []).find((i) => i.node === "inc" && i.service === "flaky"), 60_000, 500);
    expect(incident.signature).toBe("down:exit=3");
    const shown = steward<IncidentDetail>("incident", "show", String(incident.id), "--json").json;
    expect(shown.timeline.map((e) => e.what)).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^restart inc/flaky ${restart.id.slice(0, 8)} pending → approved by `)), expect.stringMatching(new RegExp(`^restart inc/flaky ${restart.id.slice(0, 8)} running → failed`))]));

    // The alert, printed by up's alerter on up's own terminal.
    const line = await waitFor("the alert on up's terminal", () => up!.output().split("\n").find((l) => l.includes("steward alert: FIRING [critical] Action failed: restart inc/flaky")), 60_000, 300);
    expect(line).toContain("exit");
  }, 240_000);
});
