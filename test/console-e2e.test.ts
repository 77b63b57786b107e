/**
 * The acceptance test: a real node-agent, observer, supervisor and executor; the supervised process is
 * killed with -9; the pending restart appears on the open console page by itself; the operator clicks Approve;
 * the page then shows the service running and healthy again (a new pid), and the audit says channel web.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditOf, only } from "@steward/actions/testing";
import { freePort, waitFor } from "@steward/testkit";
import { launchChromium, signIn, type Browser } from "@steward/testkit/browser";
import { startStack, type Stack } from "./support/stack.js";

let stack: Stack;
let chrome: Awaited<ReturnType<typeof launchChromium>>;
let browser: Browser;

beforeAll(async () => {
  const port = await freePort();
  stack = await startStack({
    dbPrefix: "steward_console",
    sqlMax: 4,
    fleet: `version: 1\nnodes:\n  n1:\n    services:\n      web:\n        kind: process\n        command: [${JSON.stringify(process.execPath)}, "-e", "require('http').createServer((q,s)=>s.end('ok')).listen(${port}, '127.0.0.1')"]\n        health:\n          - type: http\n            url: http://127.0.0.1:${port}/\n            interval: 300ms\n            retries: 1\n            start_period: 60s\n`,
    observer: true,
    supervisor: true,
    executor: { POLL_MS: "200" },
    agents: { n1: {} },
  });
  chrome = await launchChromium();
  browser = chrome.browser;
});

afterAll(async () => {
  await chrome?.close();
  await stack?.stop();
});

describe("acceptance: approve from the console and see the service come back", () => {
  it("kill -9 → pending restart appears live → click Approve → the page shows web running and healthy again", async () => {
    const pid = await waitFor("web healthy", () => {
      const s = stack.agents["n1"]?.status().find((x) => x.service === "web");
      return s?.health === "healthy" ? s.pid : undefined;
    }, 20_000);

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      // An approver's own credential: its name, not anything typed, is the audit actor.
      const ann = await stack.executor!.credentials.create("ops-ann", "approver", "admin");
      if (!ann.ok) throw new Error(ann.message);
      const page = await signIn(ctx, stack.executorUrl, { token: ann.token });
      await page.waitForURL(/\/console$/);
      const row = page.locator('section[data-node="n1"] tr[data-service="web"]');
      await row.waitFor();
      await page.waitForSelector("#live.ok");
      expect(await row.getAttribute("data-health")).toBe("healthy");

      process.kill(pid!, "SIGKILL");

      // No reload from here on: the page updates itself from the event stream.
      await expect.poll(() => row.getAttribute("data-state"), { timeout: 15_000 }).not.toBe("running");
      const card = page.locator('article.pending[data-service="web"]');
      await card.waitFor({ timeout: 20_000 });
      expect(await card.locator("code.command").innerText()).toBe("restart web on n1");
      const id = await card.getAttribute("data-action-id");

      await card.locator("button.approve").click();
      await page.waitForSelector(".flash.ok");

      // Back on the overview after the redirect; the service comes back without another reload.
      await expect.poll(async () => `${await row.getAttribute("data-state")}/${await row.getAttribute("data-health")}`, { timeout: 30_000, interval: 200 }).toBe("running/healthy");
      expect(await row.innerText()).not.toContain(`pid ${pid}`);
      await expect.poll(() => page.locator(`tr.action[data-action-id="${id}"]`).getAttribute("data-state"), { timeout: 30_000 }).toBe("succeeded");
      expect(await page.locator('article.pending[data-service="web"]').count()).toBe(0);

      const audit = only(await auditOf(stack.sql, id!), "to_state", "actor", "channel");
      expect(audit.map((a) => a.to_state)).toEqual(["pending", "approved", "running", "succeeded"]);
      expect(audit[1]).toMatchObject({ actor: "ops-ann", channel: "web" });
    } finally {
      await ctx.close();
    }
  });
});
