// The dashboard in Debian's chromium against the real stack (see stack.ts), one operator's
// session through every page. The steps run in order and build on each other: the device added
// in one carries the connection of the next. Screenshots of every page, at 1280×800 and at phone
// width, go to <artifacts>/screenshots.
//
// Run: make web-test (or scripts/web-test.sh), after make build.
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import type { Browser, BrowserContext, Page } from "playwright-core";

import type { ConnectionDetail, PasswordMigration } from "../src/lib/api";
import type { components } from "../src/lib/api-schema";

import { artifacts, eventually, launch, newContext, pageProblems, phone, shot } from "./browser";
import {
  importLegacy,
  postUsage,
  startPasswordMigration,
  startSimulator,
  startStack,
  TestDevice,
  type Proc,
  type Stack,
} from "./stack";

const repo = path.resolve(import.meta.dirname, "..", "..");
const bin = process.env.CELLGATE_BIN ?? path.join(repo, "bin", "cellgate");
const temporalBin = process.env.CELLGATE_TEMPORAL_BIN ?? path.join(repo, "bin", "temporal");

// Short clocks: a silent device is offline 6 s after its last heartbeat.
const offlineAfter = "6s";

let stack: Stack;
let browser: Browser;
let ctx: BrowserContext;
let page: Page;
const sims: Proc[] = [];
let heartbeats: NodeJS.Timeout | undefined;
let simLog: WriteStream;

// The password migration's API, which the tests stub out for what the real stack cannot show.
const migrationRoute = "**/api/v1/admin/password-migration";
// Legacy rows the migration test imports: at cost 12, 10 to 30 s of bcrypt on this 2-core box.
const legacyRows = 40;

/** temporalUI is the stack's Temporal Web UI URL without a trailing slash. */
function temporalUI(): string {
  return stack.temporalUI.replace(/\/+$/, "");
}

/** Stop, thrown by a check of until, ends it at once: what it waits for can no longer happen. */
class Stop extends Error {}

/** until is eventually, except that a Stop thrown by check fails it at once. */
async function until(check: () => Promise<void>, timeoutMs: number, everyMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (e instanceof Stop || Date.now() > deadline) throw e;
    }
    await sleep(everyMs);
  }
}

// What the steps hand on to each other.
const state = {
  deviceName: "web-phone-1",
  connectionName: "customer-a",
  username: "web-customer-a",
  connectionID: "",
  password: "",
};

/** text is a locator's trimmed text. */
async function text(page: Page, testId: string): Promise<string> {
  return ((await page.getByTestId(testId).first().textContent()) ?? "").trim();
}

/** apiStatus is the status of a GET the browser makes with the session (a probe that changes nothing). */
async function apiStatus(page: Page, url: string): Promise<number> {
  return page.evaluate((u) => fetch(u).then((r) => r.status), url);
}

/** chooseOption picks an option of a Radix select. */
async function chooseOption(page: Page, triggerTestId: string, option: string) {
  await page.getByTestId(triggerTestId).click();
  await page.getByRole("option", { name: option, exact: true }).click();
}

before(
  async () => {
    await mkdir(artifacts, { recursive: true });
    simLog = createWriteStream(path.join(artifacts, "agents.log"), { flags: "w" });
    stack = await startStack({
      bin,
      temporalBin,
      logFile: path.join(artifacts, "stack.log"),
      offlineAfter,
      cooldown: "6s",
      demoDevices: 3,
    });
    browser = await launch();
    ctx = await newContext(browser, stack.apiURL);
    page = await ctx.newPage();
  },
  { timeout: 300000 },
);

after(
  async () => {
    clearInterval(heartbeats);
    for (const s of sims) await s.stop("SIGTERM", 10000);
    await browser?.close();
    await stack?.stop();
    simLog?.end();
  },
  { timeout: 120000 },
);

describe("dashboard", { timeout: 600000 }, () => {
  it("is served by cellgate api at / on the API's origin", async () => {
    const res = await fetch(`${stack.apiURL}/`);
    const body = await res.text();
    assert.ok(
      res.status === 200 && res.headers.get("content-type")?.startsWith("text/html"),
      `GET / = ${res.status} ${res.headers.get("content-type")} ${body.slice(0, 120)}; want the dashboard's HTML ` +
        "(is it built into bin/cellgate with make web, and does routes() call s.mountDashboard()?)",
    );
    assert.ok(!body.includes("Dashboard not built"), "GET / is the \"run make web\" page: make build after make web");
    const api = await fetch(`${stack.apiURL}/api/v1/nope`);
    assert.equal(api.status, 404, `GET /api/v1/nope = ${api.status}, want 404`);
    assert.equal(((await api.json()) as components["schemas"]["ErrorResponse"]).error.code, "not_found");
  });

  it("login: a wrong password is refused; the keyboard alone logs in and returns to the page asked for", async () => {
    await page.goto("/devices/");
    await page.waitForURL(/\/login\/\?next=%2Fdevices%2F/);
    await shot(page, "login");
    await page.getByTestId("login-email").fill(stack.email);
    await page.getByTestId("login-password").fill("not the password");
    await page.getByTestId("login-submit").click();
    await page.getByTestId("login-error").waitFor();
    assert.match(await text(page, "login-error"), /Wrong email or password/);
    await shot(page, "login-error");

    await page.getByTestId("login-password").fill("");
    await page.getByTestId("login-email").focus();
    await page.keyboard.press("Tab");
    await page.keyboard.type(stack.password);
    await page.keyboard.press("Enter");
    await page.waitForURL(/\/devices\/$/);
    assert.equal(await text(page, "operator-email"), stack.email);
  });

  it("devices: the demo fleet is listed with live heartbeats", async () => {
    const rows = page.getByTestId("device-row");
    await eventually(async () => assert.ok((await rows.count()) >= 3, `device rows = ${await rows.count()}, want at least 3`), 30000);
    const demo = rows.filter({ hasText: "demo-0002" });
    await eventually(async () => assert.equal(await demo.getAttribute("data-status"), "online"), 30000);
    const first = (await demo.getByTestId("last-heartbeat").textContent()) ?? "";
    assert.match(first, /^\d+ s ago$/);
    await shot(page, "devices");
  });

  it("add device: the enrollment token is shown once; heartbeats bring the device online with its telemetry", async () => {
    await page.getByTestId("add-device").click();
    await page.getByTestId("device-create").click();
    await page.getByTestId("device-name-error").waitFor();
    await page.getByTestId("device-name").fill(state.deviceName);
    await shot(page, "add-device");
    await page.getByTestId("device-create").click();
    const token = await text(page, "enrollment-token");
    assert.match(token, /^cge_\S+$/);
    const command = await text(page, "agent-command");
    assert.equal(command, `cellgate agent --api ${stack.apiURL} --enroll ${token}`);
    await page.getByTestId("copy-agent-command").click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), command);
    await shot(page, "add-device-token");
    await page.getByTestId("enrollment-done").click();
    await page.getByTestId("add-device-dialog").waitFor({ state: "detached" });
    assert.equal(await page.getByText(token).count(), 0, "the enrollment token is still on the page after the dialog closed");

    const device = await TestDevice.enroll(stack.apiURL, token);
    const telemetry = { battery: 77, charging: false, signal_dbm: -85, carrier: "E2E Mobile", network_type: "5G", app_version: "web-test" };
    await device.heartbeat(telemetry);
    heartbeats = setInterval(() => void device.heartbeat(telemetry).catch(() => {}), 1000);

    const row = page.getByTestId("device-row").filter({ hasText: state.deviceName });
    await eventually(async () => {
      assert.equal(await row.getAttribute("data-status"), "online");
      const t = (await row.textContent()) ?? "";
      for (const want of ["77 %", "E2E Mobile", "5G", "No tunnel key"]) assert.ok(t.includes(want), `device row ${t} lacks ${want}`);
    }, 30000);

    await row.getByTestId("device-link").click();
    await page.waitForURL(/\/devices\/detail\/\?id=/);
    assert.equal(await text(page, "device-title"), state.deviceName);
    await page.getByTestId("uptime").waitFor();
    await eventually(async () => assert.match(await text(page, "uptime-share"), /% online/), 30000);
    assert.match(await text(page, "telemetry"), /E2E Mobile/);
    const monitor = (await page.getByTestId("monitor-link").getAttribute("href")) ?? "";
    assert.ok(monitor.startsWith(`${temporalUI()}/namespaces/`), `DeviceMonitor link ${monitor}, want one into ${temporalUI()}`);
    await shot(page, "device");
  });

  it("connections: create one; the password dialog shows the password once and a reload no longer shows it", async () => {
    // Navigation stays in the page (the export's RSC payloads are served as Next expects them).
    await page.evaluate(() => ((window as unknown as { stayed: boolean }).stayed = true));
    await page.getByTestId("nav-connections").click();
    await page.waitForURL(/\/connections\/$/);
    assert.equal(await page.evaluate(() => (window as unknown as { stayed?: boolean }).stayed), true, "following a link reloaded the page");
    await page.getByTestId("connections-empty").waitFor();
    await shot(page, "connections-empty");
    await page.getByTestId("new-connection").click();
    await page.waitForURL(/\/connections\/new\/$/);

    // The form's own checks, before any request.
    await page.getByTestId("connection-submit").click();
    await page.getByTestId("name-error").waitFor();
    await page.getByTestId("device_id-error").waitFor();

    await page.getByTestId("connection-name").fill(state.connectionName);
    await chooseOption(page, "connection-device", state.deviceName);
    await page.getByTestId("limit-value").fill("1");
    await page.getByTestId("connection-username").fill(state.username);
    await shot(page, "connection-new");
    await page.getByTestId("connection-submit").click();

    await page.getByTestId("password-dialog").waitFor();
    state.password = await text(page, "password-value");
    assert.match(state.password, /^[A-Za-z0-9]{24}$/);
    assert.equal(await text(page, "password-username"), state.username);
    await page.getByTestId("password-copy").click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), state.password);
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("download-ovpn").click()]);
    assert.equal(download.suggestedFilename(), `${state.username}.ovpn`);
    const profile = await readFile((await download.path())!, "utf8");
    assert.ok(
      profile.includes(`<auth-user-pass>\n${state.username}\n${state.password}\n</auth-user-pass>`),
      `the downloaded profile has no inline credentials:\n${profile.slice(0, 400)}`,
    );
    await shot(page, "password-dialog");

    await page.reload();
    await page.getByTestId("connection-form").waitFor();
    assert.equal((await page.content()).includes(state.password), false, "the password is on the page after a reload");
    assert.equal(await page.getByTestId("password-dialog").count(), 0);

    // An error only the API knows, shown under its field.
    await page.getByTestId("connection-name").fill("customer-duplicate");
    await chooseOption(page, "connection-device", state.deviceName);
    await page.getByTestId("connection-username").fill(state.username);
    await page.getByTestId("connection-submit").click();
    await page.getByTestId("username-error").waitFor();
    assert.match(await text(page, "username-error"), /already taken/);
    await shot(page, "connection-field-error");

    await page.getByTestId("nav-connections").click();
    const row = page.getByTestId("connection-row").filter({ hasText: state.connectionName });
    await row.waitFor();
    state.connectionID = (await row.getAttribute("data-connection-id")) ?? "";
    await row.getByTestId("connection-link").click();
    await page.waitForURL(/\/connections\/detail\/\?id=/);
    await page.getByTestId("connection-title").waitFor();
    assert.equal((await page.content()).includes(state.password), false, "the connection's page shows the password");
    await page.getByTestId("regenerate").waitFor();
    await shot(page, "connection");

    await page.getByTestId("regenerate").click();
    await page.getByTestId("regenerate-confirm").click();
    await page.getByTestId("password-dialog").waitFor();
    const regenerated = await text(page, "password-value");
    assert.match(regenerated, /^[A-Za-z0-9]{24}$/);
    assert.notEqual(regenerated, state.password);
    await shot(page, "password-regenerated");
    await page.getByTestId("password-done").click();
    await page.getByTestId("password-dialog").waitFor({ state: "detached" });
    assert.equal((await page.content()).includes(regenerated), false, "the regenerated password stays on the page after closing");
    state.password = regenerated;

    // The profile the page offers later prompts for the credentials: it has no password.
    const [later] = await Promise.all([page.waitForEvent("download"), page.getByTestId("profile-download").click()]);
    const prompting = await readFile((await later.path())!, "utf8");
    assert.match(prompting, /^auth-user-pass$/m);
    assert.equal(prompting.includes(regenerated), false, "the profile offered later holds the password");
  });

  it("usage: the bar follows usage posted through the internal usage API", async () => {
    const conn = await page.evaluate(
      (id) => fetch(`/api/v1/connections/${id}`).then((r) => r.json()),
      state.connectionID,
    );
    const epoch = (conn as { connection: ConnectionDetail }).connection.usage_epoch;
    const session = randomUUID();
    await page.getByTestId("nav-connections").click();
    const row = page.getByTestId("connection-row").filter({ hasText: state.connectionName });
    const usage = row.getByTestId("usage");

    const steps = [
      { rx: 600e6, tx: 150e6, text: "750 MB / 1 GB", level: "ok", shot: "connections" },
      { rx: 700e6, tx: 150e6, text: "850 MB / 1 GB", level: "warn", shot: "connections-warn" },
      { rx: 850e6, tx: 150e6, text: "1 GB / 1 GB", level: "over", shot: "connections-cut-off" },
    ];
    for (const s of steps) {
      await postUsage(stack, [{ connection_id: state.connectionID, session_id: session, epoch, rx_bytes: s.rx, tx_bytes: s.tx }]);
      await eventually(async () => {
        assert.equal(((await usage.getByTestId("usage-text").textContent()) ?? "").trim(), s.text);
        assert.equal(await usage.getAttribute("data-level"), s.level);
      }, 40000);
      if (s.level === "over") await usage.getByTestId("cut-off-badge").waitFor();
      await shot(page, s.shot);
    }
  });

  it("reset usage: after the confirmation the page shows the new usage", async () => {
    await page.goto(`/connections/detail/?id=${state.connectionID}`);
    await page.getByTestId("reset-usage").click();
    await shot(page, "reset-usage-confirm");
    await page.getByTestId("reset-usage-confirm").click();
    await eventually(async () => assert.match(await text(page, "usage-text"), /^0 B \/ 1 GB$/), 30000);
    await page.getByText(/Usage of customer-a reset: now 0 B/).waitFor();
    await eventually(async () => assert.match(await text(page, "last-reset"), /\d/), 30000);
    await shot(page, "connection-reset");
  });

  it("reset usage of a device: its page resets every connection of it and lists them again", async () => {
    await page.getByRole("link", { name: state.deviceName, exact: true }).click();
    await page.waitForURL(/\/devices\/detail\/\?id=/);
    await page.getByTestId("connection-row").filter({ hasText: state.connectionName }).waitFor();
    await page.getByTestId("reset-device-usage").click();
    await page.getByTestId("reset-device-usage-confirm").click();
    await page.getByText("Usage of 1 connections reset.").waitFor();
    await page.getByTestId("connection-row").filter({ hasText: state.connectionName }).waitFor();
  });

  it("settings: Send test reports success, and the delivery log has the test", async () => {
    await page.getByTestId("nav-settings").click();
    await page.waitForURL(/\/settings\/$/);
    await eventually(async () => assert.match(await page.getByTestId("webhook-url").inputValue(), /\/cellgate-demo\/webhook$/));
    await page.getByTestId("webhook-secret-reveal").click();
    assert.match(await text(page, "webhook-secret"), /^whsec_/);
    await page.getByTestId("webhook-test").click();
    const result = page.getByTestId("webhook-test-result");
    await result.waitFor({ timeout: 20000 });
    assert.equal(await result.getAttribute("data-ok"), "true", `test result: ${await result.textContent()}`);
    assert.match((await result.textContent()) ?? "", /Delivered: HTTP 2\d\d in \d+ ms/);
    await chooseOption(page, "filter-type", "webhook.test");
    const delivered = page.locator('[data-testid="delivery-row"][data-type="webhook.test"][data-status="delivered"]');
    await eventually(async () => assert.ok((await delivered.count()) >= 1, "no delivered webhook.test in the delivery log"), 20000);
    await chooseOption(page, "filter-type", "All events");
    await shot(page, "settings");
  });

  it("a silenced simulated device turns offline and its alert appears in the delivery log", async () => {
    const sim = startSimulator(stack, 1, "web-silent-", simLog);
    sims.push(sim);
    const name = "web-silent-0001";
    await page.goto("/devices/");
    const row = page.getByTestId("device-row").filter({ hasText: name });
    await eventually(async () => assert.equal(await row.getAttribute("data-status"), "online"), 60000);
    const deviceID = (await row.getAttribute("data-device-id")) ?? "";

    await sim.stop("SIGTERM", 10000);
    await eventually(async () => assert.equal(await row.getAttribute("data-status"), "offline"), 60000);
    await shot(page, "devices-offline");

    await page.goto(`/settings/?device_id=${deviceID}`);
    const alert = page.locator(`[data-testid="delivery-row"][data-device-id="${deviceID}"][data-type="device.offline"]`);
    await eventually(async () => assert.equal(await alert.first().getAttribute("data-status"), "delivered"), 60000);
    await page.locator("#deliveries").scrollIntoViewIfNeeded();
    await shot(page, "delivery-log");

    await page.goto(`/devices/detail/?id=${deviceID}`);
    await page.locator('[data-testid="delivery-row"][data-type="device.offline"]').first().waitFor({ timeout: 20000 });
    await eventually(async () => assert.ok((await page.locator('[data-testid="uptime"] [data-status="offline"]').count()) >= 1), 30000);
    await shot(page, "device-offline");
  });

  it("password migration: a failed migration shows its error and the Failed badge", async () => {
    const failed: PasswordMigration = {
      status: "failed",
      scope: "operator",
      total: 40,
      done: 38,
      failed: 2,
      rows_per_second: 3.8,
      started_at: "2026-01-02T10:04:05Z",
      finished_at: "2026-01-02T10:04:16Z",
      error:
        "verification failed: 2 rows still hold plaintext or lack a valid bcrypt hash; yours: legacy-007 (empty plaintext), " +
        "legacy-013 (plaintext longer than 72 bytes); regenerate their passwords and start the migration again",
      workflow_url: `${temporalUI()}/namespaces/default/workflows/password-migration/0b7e0a1c-run/history`,
    };
    await page.route(migrationRoute, (r) => r.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(failed) }));
    try {
      await page.getByTestId("nav-password-migration").click();
      await page.waitForURL(/\/password-migration\/$/);
      await page.getByTestId("migration").waitFor();
      assert.equal(await text(page, "migration-status"), "Failed");
      assert.equal(await text(page, "migration-error"), failed.error);
      assert.equal(await text(page, "migration-progress-text"), "38 of 40 rows");
      assert.equal(await page.getByTestId("migration-workflow").getAttribute("href"), failed.workflow_url);
      assert.notEqual(await text(page, "migration-finished"), "—");
      await shot(page, "password-migration-failed");
    } finally {
      await page.unroute(migrationRoute);
    }
  });

  it("password migration: legacy rows imported and migrated show as Not started, a moving bar, then Completed with its workflow", async () => {
    await page.goto("/password-migration/");
    await page.getByTestId("migration").waitFor();
    assert.equal(await text(page, "migration-status"), "Not started");
    assert.equal(await text(page, "migration-progress-text"), "0 of 0 rows");
    await shot(page, "password-migration-not-started");

    // 40 connections from an older system, on a device of the demo fleet, their passwords in
    // plaintext. The page, polling, finds them waiting.
    const rows = Array.from({ length: legacyRows }, (_, i) => ({
      username: `legacy-${String(i + 1).padStart(3, "0")}`,
      password: randomBytes(12).toString("base64url"),
      device: "demo-0002",
      bandwidthLimit: 5e9,
    }));
    await importLegacy(stack, rows);
    await eventually(async () => assert.equal(await text(page, "migration-progress-text"), `0 of ${legacyRows} rows`), 20000);
    assert.equal(await text(page, "migration-status"), "Not started");

    // Batches of 4 rows (two bcrypt rounds on two cores, a second or more each): the progress
    // moves ten times, and the page polls every 2 s while it runs.
    const runID = await startPasswordMigration(stack, { BatchSize: 4 });
    const bar = page.getByTestId("migration-progress");
    const seen: string[] = [];
    await until(
      async () => {
        const status = await text(page, "migration-status");
        const progress = await text(page, "migration-progress-text");
        const now = Number(await bar.getAttribute("aria-valuenow"));
        seen.push(`${status} ${progress} ${now}`);
        if (status === "Completed" || status === "Failed") {
          throw new Stop(`the migration was ${status} before the page showed it running with rows done: saw ${seen.join(" | ")}`);
        }
        assert.equal(status, "Running");
        assert.ok(now > 0 && now < 100, `aria-valuenow = ${now} while running, want between 0 and 100`);
        const done = Number(/^(\d+) of (\d+) rows$/.exec(progress)?.[1]);
        assert.ok(done > 0 && done < legacyRows, `progress text = ${JSON.stringify(progress)}, want "N of ${legacyRows} rows", 0 < N < ${legacyRows}`);
      },
      60000,
      100,
    );
    assert.notEqual(await text(page, "migration-started"), "—");
    await shot(page, "password-migration-running");

    await eventually(async () => assert.equal(await text(page, "migration-status"), "Completed"), 120000);
    assert.equal(await text(page, "migration-progress-text"), `${legacyRows} of ${legacyRows} rows`);
    assert.equal(await text(page, "migration-percent"), "100 %");
    assert.equal(await bar.getAttribute("aria-valuenow"), "100");
    assert.notEqual(await text(page, "migration-finished"), "—");
    const href = await page.getByTestId("migration-workflow").getAttribute("href");
    assert.equal(href, `${temporalUI()}/namespaces/default/workflows/password-migration/${runID}/history`);
    await shot(page, "password-migration-completed");
  });

  it("an unknown page is the dashboard's 404", async () => {
    const res = await page.goto("/no-such-page/");
    assert.equal(res?.status(), 404);
    await page.getByTestId("not-found").waitFor();
    await shot(page, "not-found");
  });

  it("phone width: every page fits and the menu navigates", async () => {
    const small = await newContext(browser, stack.apiURL, phone);
    await small.addCookies(await ctx.cookies());
    const p = await small.newPage();
    try {
      const pages = [
        ["devices", "/devices/", "devices-table"],
        ["connections", "/connections/", "connections-table"],
        ["connection", `/connections/detail/?id=${state.connectionID}`, "connection-title"],
        ["connection-new", "/connections/new/", "connection-form"],
        ["settings", "/settings/", "webhook-form"],
        ["password-migration", "/password-migration/", "migration"],
      ] as const;
      for (const [name, url, testId] of pages) {
        await p.goto(url);
        if (testId) await p.getByTestId(testId).waitFor();
        else await p.waitForLoadState("networkidle");
        const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `${url} at ${phone.width} px is ${overflow} px wider than the screen`);
        await shot(p, `${name}-phone`);
      }
      await p.getByTestId("menu-button").click();
      await shot(p, "menu-phone");
      await p.getByRole("dialog").getByTestId("nav-devices").click();
      await p.waitForURL(/\/devices\/$/);
      await p.getByTestId("devices-table").waitFor();
    } finally {
      await small.close();
    }
  });

  it("an expired session sends the operator to the login page with a message, and back after logging in", async () => {
    await page.goto("/connections/");
    await page.getByTestId("connections-table").waitFor();
    await ctx.clearCookies();
    // The table's next refresh (every 5 s) meets the 401.
    await page.waitForURL(/\/login\/\?.*expired=1/, { timeout: 20000 });
    assert.match(await text(page, "login-notice"), /session has expired/);
    await shot(page, "login-expired");
    await page.getByTestId("login-email").fill(stack.email);
    await page.getByTestId("login-password").fill(stack.password);
    await page.getByTestId("login-submit").click();
    await page.waitForURL(/\/connections\/$/);
  });

  it("logout ends the session", async () => {
    await page.getByTestId("logout").click();
    await page.waitForURL(/\/login\/\?logged_out=1/);
    assert.match(await text(page, "login-notice"), /logged out/);
    assert.equal(await apiStatus(page, "/api/v1/me"), 401);
    await page.goto("/devices/");
    await page.waitForURL(/\/login\//);
  });

  it("no page threw an error or broke the Content-Security-Policy", () => {
    assert.deepEqual(pageProblems, []);
  });
});
