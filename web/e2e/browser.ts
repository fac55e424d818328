// Debian's chromium driven by playwright-core: no browser download. Chromium runs headless
// here only with these flags; without the background-networking ones it keeps trying to reach
// outside hosts. Playwright gives every launch a fresh temporary --user-data-dir.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

export const chromiumFlags = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** launch starts headless chromium (CHROMIUM, default /usr/bin/chromium). */
export function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: chromiumFlags,
  });
}

/** The two sizes the dashboard must be usable at. */
export const desktop = { width: 1280, height: 800 };
export const phone = { width: 390, height: 844 };

/** Problems a page reported: uncaught errors and Content-Security-Policy violations. */
export const pageProblems: string[] = [];

/** newContext is a browser context on baseURL that may use the clipboard and records page problems. */
export async function newContext(browser: Browser, baseURL: string, viewport = desktop): Promise<BrowserContext> {
  const ctx = await browser.newContext({ baseURL, viewport, acceptDownloads: true });
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseURL });
  ctx.on("page", watch);
  return ctx;
}

/** watch records a page's uncaught errors and CSP violations into pageProblems. */
export function watch(page: Page) {
  page.on("pageerror", (e) => pageProblems.push(`${page.url()}: uncaught ${e.message}`));
  page.on("console", (m) => {
    if (/Content[- ]Security[- ]Policy|Refused to (execute|load|apply)/i.test(m.text())) {
      pageProblems.push(`${page.url()}: ${m.text()}`);
    }
  });
}

/** Screenshots of every page go here (a test artefact; gitignored). */
export const artifacts = path.resolve(process.env.CELLGATE_WEB_ARTIFACTS ?? "test-results");

/** shot saves a full-page screenshot as <artifacts>/screenshots/<name>.png. */
export async function shot(page: Page, name: string): Promise<void> {
  const dir = path.join(artifacts, "screenshots");
  await mkdir(dir, { recursive: true });
  // Let transitions and the live clock settle.
  await sleep(300);
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true });
}

/**
 * eventually retries check until it stops throwing, for at most timeoutMs, and rethrows its last
 * error then: for what the dashboard shows after polling the API.
 */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 20000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    await sleep(everyMs);
  }
}
