/**
 * Headless Chromium for the E2E tier, driven through playwright-core with the
 * system's browser (Debian's `chromium` package): `npx playwright install`
 * cannot download one on these machines (see shared NOTES, Browser tests).
 */
import { accessSync, constants } from "node:fs";
import { chromium, type Browser, type BrowserContext } from "playwright-core";
import type { Test } from "tap";

/** Where the browser is looked for: CHROMIUM_PATH, else Debian's path. */
export function chromiumPath(): string {
  return process.env.CHROMIUM_PATH || "/usr/bin/chromium";
}

/** Why the browser suite cannot run, or undefined when it can. */
export function browserUnavailable(): string | undefined {
  const path = chromiumPath();
  try {
    accessSync(path, constants.X_OK);
    return undefined;
  } catch {
    return `Chromium was not found at ${path}: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH to a Chromium executable (see README, Testing)`;
  }
}

/**
 * True when the browser suite can run. Otherwise, under CI=true, fails `t`
 * (a missing browser must not pass silently in CI, the README); elsewhere
 * says plainly why and marks `t` (a whole file's suite) as skipped.
 */
export function requireBrowser(t: Test): boolean {
  const why = browserUnavailable();
  if (!why) return true;
  if (process.env.CI === "true") {
    t.fail(why);
  } else {
    t.comment(`SKIPPING the browser suite: ${why}`);
    t.plan(0, `Chromium not found at ${chromiumPath()} (set CHROMIUM_PATH)`);
  }
  return false;
}

/**
 * Launches headless Chromium, closed at teardown. Playwright gives every
 * launch a fresh temporary profile (user-data-dir), removed on close; each
 * test should still take its own context (newContext) for its own cookies.
 */
export async function launchBrowser(t: Test): Promise<Browser> {
  const why = browserUnavailable();
  if (why) throw new Error(why);
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-sync",
      "--disable-quic",
    ],
  });
  t.teardown(() => browser.close());
  return browser;
}

/** A fresh browser context (its own cookies, so its own IdP session), closed at teardown. */
export async function newContext(t: Test, browser: Browser): Promise<BrowserContext> {
  const context = await browser.newContext();
  // Page waits fail within 20 s, with the URL in the message, rather than at tap's file timeout.
  context.setDefaultTimeout(20_000);
  context.setDefaultNavigationTimeout(20_000);
  t.teardown(() => context.close());
  return context;
}
