import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

export type { Browser, BrowserContext, Page };

/** The browser the console tests drive: Debian's chromium unless CHROMIUM_PATH says otherwise. */
export const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";

/** Debian's chromium, never a downloaded browser build. playwright gives it a fresh temporary profile and removes it. */
export async function launchChromium(): Promise<{ browser: Browser; close(): Promise<void> }> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => undefined);
    },
  };
}

/** Signs in to the executor's console through the login form like an operator would, and returns the page on the overview. */
/** Signs in to the console with an operator's token: the token's credential names the operator (its name is the audit actor). */
export async function signIn(ctx: BrowserContext, url: string, opts: { token: string }): Promise<Page> {
  const page = await ctx.newPage();
  await page.goto(`${url}/console`);
  await page.waitForURL(/\/console\/login$/);
  await page.fill("#token", opts.token);
  await page.click("button[type=submit]");
  return page;
}
