/**
 * The console in a real headless Chromium (Debian's `chromium` driven by playwright-core): sign-in, the fleet
 * overview from a snapshot in KV, approving with a real click, escaping of hostile names, live updates, tasks.
 */
import { auditOf, only, overwriteAction } from "@steward/actions/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium, type Browser } from "@steward/testkit/browser";
import { putDriftReport } from "@steward/world/testing";
import type { DriftReport } from "@steward/contracts/drift";
import { insertAction, insertDrill, putWorld, service, setupEnv, snapshot, startExecutor, stateOf, type Env } from "./helpers.js";
import { costReport, operatorToken, signIn, startFakePlanner, task } from "./console-helpers.js";

const XSS = `<img src=x onerror="window.__xss=1">`;

let env: Env;
let url = "";
let chrome: Awaited<ReturnType<typeof launchChromium>>;
let browser: Browser;
/** The console's own planner credential (the planner's CONSOLE_TOKEN), not the executor's API_TOKEN. */
const CONSOLE_PLANNER_TOKEN = "console-planner-token-0123456789";
let planner: Awaited<ReturnType<typeof startFakePlanner>>;

beforeAll(async () => {
  env = await setupEnv();
  planner = await startFakePlanner({ tasks: [task(), task({ id: "task-2", state: "failed", content: XSS, model_groups: ["rules"], cost_usd: 0, error: "planner gave up" })], cost: costReport() }, CONSOLE_PLANNER_TOKEN);
  // No worker: an approved action stays approved, so the test sees exactly what the click did.
  ({ url } = await startExecutor(env, { EXECUTOR_WORKER: "false", PLANNER_URL: planner.url, PLANNER_TOKEN: CONSOLE_PLANNER_TOKEN }));
  chrome = await launchChromium();
  browser = chrome.browser;

  const snap = snapshot({
    "node-1": [
      service("web", { pid: 4242 }),
      service("db", { state: "exited", health: "unhealthy", exit_code: 1, detail: "exited with code 1", checks: { tcp: { ok: false, consecutive_failures: 3, detail: "connection refused", at: new Date().toISOString() } } }),
      service(XSS, { detail: `<script>window.__xss=2</script>` }),
    ],
    "node-2": [service("cache", { state: "unknown", health: "unknown" })],
  });
  const n2 = snap.world.nodes["node-2"]!;
  n2.status = "stale";
  n2.last_heartbeat = new Date(Date.now() - 120_000).toISOString();
  await putWorld(env.kv, snap);
  const drift: DriftReport = {
    computed_at: new Date().toISOString(),
    snapshot_written_at: snap.written_at,
    world_seq: 1,
    supervisor_id: "supervisor-test",
    skipped: null,
    drifts: [
      { key: "down:node-1/db", kind: "down", node: "node-1", service: "db", severity: "action", message: "db is exited (code 1)", since: new Date().toISOString(), proposes: "restart" },
      { key: `unmanaged:node-1/${XSS}`, kind: "unmanaged", node: "node-1", service: XSS, severity: "report", message: `${XSS} runs but is not declared`, since: null, proposes: null },
    ],
  };
  await putDriftReport(env.kv, drift);
  // Drills whose names and reasons are hostile: the Drills page must show them as text.
  await insertDrill(env.sql, { service: "web", result: { verdict: "passed", reason: "healthy again after 2.1 s, within the objective 30.0 s", detected_ms: 250, proposed_ms: 600, approved_ms: 900, recovered_ms: 2_100, approved_by: "drill:1" } });
  await insertDrill(env.sql, { service: XSS, objectiveMs: 1_000, result: { verdict: "missed", reason: `<script>window.__xss=3</script> healthy again after 3.4 s, over the objective 1.0 s`, detected_ms: 200, proposed_ms: 700, approved_ms: 900, recovered_ms: 3_400, approved_by: XSS } });
});

afterAll(async () => {
  await chrome?.close();
  await planner?.close();
  await env?.close();
});

describe("web console in Chromium", () => {
  it("requires sign-in: no cookie lands on the login form, a wrong token shows an error and opens nothing", async () => {
    const ctx = await browser.newContext();
    try {
      const page = await signIn(ctx, url, { token: "wrong-token-0123456789" });
      await page.waitForSelector("[role=alert]");
      expect(await page.textContent("[role=alert]")).toContain("Wrong token.");
      expect(page.url()).toMatch(/\/console\/login$/);
      expect(await ctx.cookies()).toEqual([]);
      await page.goto(`${url}/console/tasks`);
      expect(page.url()).toMatch(/\/console\/login$/);
    } finally {
      await ctx.close();
    }
  });

  it("shows nodes, services, health, stale nodes and drift from the snapshot in KV, hostile names as plain text", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    try {
      const page = await signIn(ctx, url, { token: await operatorToken(env, "ops-ann") });
      const dialogs: string[] = [];
      page.on("dialog", (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      await page.waitForURL(/\/console$/);
      const web = page.locator('section[data-node="node-1"] tr[data-service="web"]');
      await expect.poll(() => web.getAttribute("data-state"), { timeout: 15_000 }).toBe("running");
      expect(await web.getAttribute("data-health")).toBe("healthy");
      const db = page.locator('tr[data-service="db"]');
      expect(await db.innerText()).toContain("connection refused");
      expect(await db.getAttribute("data-state")).toBe("exited");
      const stale = page.locator('section[data-node="node-2"]');
      expect(await stale.innerText()).toMatch(/stale[\s\S]*state of its services is unknown/);
      expect(await page.locator('tr.drift[data-key="down:node-1/db"]').innerText()).toContain("db is exited (code 1)");
      expect(await page.locator(".who").innerText()).toContain("ops-ann");

      // The hostile service name and detail are text on the page, never markup.
      const hostile = page.locator(`tr.service[data-service='${XSS}']`);
      expect(await hostile.locator("td.name").innerText()).toBe(XSS);
      expect(await hostile.innerText()).toContain("<script>window.__xss=2</script>");
      expect(await page.locator("main img, main script").count()).toBe(0);
      expect(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss)).toBeUndefined();
      expect(dialogs).toEqual([]);
      // Live status from the event stream.
      await page.waitForSelector("#live.ok");
    } finally {
      await ctx.close();
    }
  });

  it("approving a pending action with a real click moves it to approved, audited with channel web and the operator's name; new actions appear live", async () => {
    const id = await insertAction(env.sql, { node: "node-1", service: XSS });
    await overwriteAction(env.sql, id, { diagnosis: "process exited with code 1: <b>OOM</b>", params: { grace_s: 5 } });
    const ctx = await browser.newContext();
    try {
      const page = await signIn(ctx, url, { token: await operatorToken(env, "ops-ann") });
      await page.waitForURL(/\/console$/);
      const card = page.locator(`article.pending[data-action-id="${id}"]`);
      expect(await card.locator("code.command").innerText()).toBe(`restart ${XSS} on node-1`);
      expect(await card.locator("pre.diagnosis").innerText()).toBe("process exited with code 1: <b>OOM</b>");
      expect(await card.locator("pre.params").innerText()).toContain('"grace_s": 5');
      await page.waitForSelector("#live.ok");
      // STEWARD_SCREENSHOT=path keeps a picture of the page for a person to look at; tests leave nothing behind.
      const shot = process.env["STEWARD_SCREENSHOT"];
      if (shot) {
        await page.setViewportSize({ width: 1280, height: 1000 });
        await page.screenshot({ path: shot, fullPage: true });
      }

      // Proposed while the page is open: it appears without a reload.
      const later = await insertAction(env.sql, { node: "node-1", service: "db" });
      await page.locator(`article.pending[data-action-id="${later}"]`).waitFor({ timeout: 30_000 });

      await card.locator("button.approve").click();
      await page.waitForSelector(".flash.ok");
      expect(await page.locator(".flash.ok").innerText()).toContain(`Approved restart of node-1/${XSS}`);
      expect(await stateOf(env.sql, id)).toBe("approved");
      const audit = only(await auditOf(env.sql, id), "to_state", "actor", "channel");
      expect(audit).toEqual([{ to_state: "approved", actor: "ops-ann", channel: "web" }]);
      expect(await stateOf(env.sql, later)).toBe("pending");

      // The action's page shows its audit log.
      await page.goto(`${url}/console/actions/${id}`);
      const row = page.locator('tr.audit-row[data-to="approved"]');
      expect(await row.locator(".channel").innerText()).toBe("web");
      expect(await row.locator(".actor").innerText()).toBe("ops-ann");
      expect(await page.locator("button.approve").count(), "no buttons once decided").toBe(0);

      // Rejecting from the page needs a reason and records it.
      await page.goto(`${url}/console/actions/${later}`);
      await page.fill("input[name=reason]", "db is being migrated");
      await page.click("button.reject");
      await page.waitForSelector(".flash.ok");
      expect(await stateOf(env.sql, later)).toBe("rejected");
    } finally {
      await ctx.close();
    }
  });

  it("shows the planner's tasks with model groups and cost, and spend against the caps as a chart", async () => {
    const ctx = await browser.newContext();
    try {
      const page = await signIn(ctx, url);
      await page.waitForURL(/\/console$/);
      await page.click("header a[href='/console/tasks']");
      await page.waitForURL(/\/console\/tasks$/);
      const t1 = page.locator('tr.task[data-task-id="task-1"]');
      expect(await t1.locator(".groups").innerText()).toBe("local, claude");
      expect(await t1.locator(".cost").innerText()).toBe("$0.0123");
      expect(await page.locator('tr.task[data-task-id="task-2"]').innerText()).toContain(XSS);
      expect(await page.locator("svg.chart").count()).toBe(2);
      expect(await page.locator('svg.chart g.bar[data-agent="all agents"]').getAttribute("class")).toBe("bar warn");
      expect(await page.locator("svg.chart line.cap").count()).toBeGreaterThanOrEqual(4);
      expect(await page.locator("main img").count()).toBe(0);
      expect(planner.requests.every((r) => r === "GET /tasks" || r === "GET /cost")).toBe(true);
    } finally {
      await ctx.close();
    }
  });

  it("the Drills page is reached from the header and shows each drill's verdict, objective and reason as text", async () => {
    const ctx = await browser.newContext();
    try {
      const page = await signIn(ctx, url);
      const dialogs: string[] = [];
      page.on("dialog", (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      await page.waitForURL(/\/console$/);
      await page.click("header a[href='/console/drills']");
      await page.waitForURL(/\/console\/drills$/);
      expect(await page.locator("header a.here").innerText()).toBe("Drills");
      const met = page.locator('tr.drill[data-objective="met"]');
      expect(await met.locator("td.target").innerText()).toBe("node-1/web");
      expect(await met.locator("li[data-step='healthy']").innerText()).toBe("healthy 2.1 s");
      const missed = page.locator('tr.drill[data-objective="missed"]');
      expect(await missed.locator("td.target").innerText()).toBe(`node-1/${XSS}`);
      expect(await missed.locator(".reason").innerText()).toBe("<script>window.__xss=3</script> healthy again after 3.4 s, over the objective 1.0 s");
      expect(await missed.locator("li[data-step='approved']").innerText()).toBe(`approved 0.9 s by ${XSS}`);
      expect(await page.locator("main img, main script").count()).toBe(0);
      expect(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss)).toBeUndefined();
      expect(dialogs).toEqual([]);
      // The link from a drill to its action's page, where the audit log is.
      await met.locator("td.target a").click();
      await page.waitForURL(/\/console\/actions\/[0-9a-f-]+$/);
      expect(await page.locator("code.command").innerText()).toBe("drill web on node-1");
    } finally {
      await ctx.close();
    }
  });

  it("on a phone (375 px wide) no page scrolls sideways: the header wraps, wide tables scroll inside their card", async () => {
    const ctx = await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });
    try {
      const page = await signIn(ctx, url, { token: await operatorToken(env, "ops-ann-with-a-long-name") });
      await page.waitForURL(/\/console$/);
      for (const path of ["/console", "/console/actions", "/console/alerts", "/console/drills", "/console/tasks"]) {
        await page.goto(url + path);
        await page.waitForSelector("header.top");
        // A string: this package's types have no DOM; it runs in the page.
        const m = (await page.evaluate(`(() => {
          const h = document.querySelector("header.top");
          const right = Math.max(...[...h.children].map((c) => c.getBoundingClientRect().right));
          return { doc: document.documentElement.scrollWidth, viewport: window.innerWidth, header: h.scrollWidth, headerBox: h.clientWidth, right };
        })()`)) as { doc: number; viewport: number; header: number; headerBox: number; right: number };
        expect(m.viewport, path).toBe(375);
        expect(m.header, `${path}: header content ${m.header} px in ${m.headerBox} px`).toBeLessThanOrEqual(m.headerBox);
        expect(m.right, `${path}: a header item ends at ${m.right} px`).toBeLessThanOrEqual(375);
        expect(m.doc, `${path}: the page is ${m.doc} px wide`).toBeLessThanOrEqual(375);
        if (path === "/console/drills") {
          // One block per drill on a phone: nothing to scroll sideways even inside its card.
          const t = (await page.evaluate(`(() => { const t = document.querySelector("table.drills"); const card = t.closest("section.card"); return { table: card.scrollWidth, card: card.clientWidth, rows: t.querySelectorAll("tr.drill").length }; })()`)) as { table: number; card: number; rows: number };
          expect(t.rows).toBe(2);
          expect(t.table, `the drills card holds ${t.table} px in ${t.card} px`).toBeLessThanOrEqual(t.card);
        }
        const shot = process.env["STEWARD_SCREENSHOT_DIR"];
        if (shot) await page.screenshot({ path: `${shot}/phone${path.replaceAll("/", "-")}.png`, fullPage: true });
      }
    } finally {
      await ctx.close();
    }
  });
});
