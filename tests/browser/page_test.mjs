// End-to-end test of the phone page in a real browser (Debian's Chromium, headless, driven by
// playwright-core): first-run setup, login, the status card, a rejected and an accepted
// bitrate change (checked in the API and in the config file on disk), an RTSP user, no
// horizontal scroll, screenshots, and the rate-limit message after repeated wrong passwords. Run by tests/browser.rs against a fresh vigint:
//
//   node tests/browser/page_test.mjs BASE_URL CONFIG_FILE ARTIFACT_DIR RTSP_PORT
//
// Exits 0 when every check passed; otherwise prints the failed step and why, saves
// failure.png in ARTIFACT_DIR and exits 1 (2 for bad arguments).
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [base, configFile, artifacts, rtspPortArg] = process.argv.slice(2);
if (!base || !configFile || !artifacts || !rtspPortArg) {
  console.error("usage: node page_test.mjs BASE_URL CONFIG_FILE ARTIFACT_DIR RTSP_PORT");
  process.exit(2);
}
const CHROMIUM = "/usr/bin/chromium";
const PASSWORD = "correct horse battery";
const VIEWER = { name: "viewer", password: "viewer-secret-1" };
const rtspPort = Number(rtspPortArg);
const origin = new URL(base).origin;
const host = new URL(base).hostname;
fs.mkdirSync(artifacts, { recursive: true });

let current = "start";
const t0 = Date.now();
function log(text) {
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);
}
async function step(name, fn) {
  current = name;
  log(name);
  return fn();
}
function check(cond, what) {
  if (!cond) throw new Error(what);
}
function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
// Polls `fn` until it returns a truthy value; fails with `what` and the last value.
async function until(what, fn, ms = 15000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new Error(`${what} (waited ${ms} ms; last: ${JSON.stringify(last)})`);
    await sleep(200);
  }
}
const auth = "Basic " + Buffer.from("admin:" + PASSWORD).toString("base64");
async function apiConfig() {
  const r = await fetch(origin + "/api/v1/config", { headers: { Authorization: auth } });
  check(r.status === 200, `GET /api/v1/config with the admin login answered ${r.status}`);
  return r.json();
}
function fileConfig() {
  return JSON.parse(fs.readFileSync(configFile, "utf8"));
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "vigint-chromium-"));
let context;
let page;
const problems = []; // uncaught page errors and console errors
const apiRequests = [];

async function main() {
  context = await step("start Chromium", () =>
    chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
      viewport: { width: 390, height: 844 },
      timeout: 30000,
    }),
  );
  context.setDefaultTimeout(10000);
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
  page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
  page.on("console", (m) => {
    // The browser logs every 4xx answer; the page expects some (a wrong password, a rejected value).
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`console: ${m.text()}`);
  });
  page.on("request", (r) => {
    if (new URL(r.url()).pathname.startsWith("/api/")) {
      apiRequests.push({ method: r.method(), path: new URL(r.url()).pathname, headers: r.headers() });
    }
  });

  await step("open the page: first-run setup is shown", async () => {
    const res = await page.goto(base);
    check(res && res.status() === 200, `GET / answered ${res && res.status()}`);
    check((res.headers()["content-type"] || "").startsWith("text/html"), `GET / is ${res.headers()["content-type"]}, not HTML`);
    await page.getByRole("heading", { name: "First-run setup" }).waitFor();
    await page.locator("#setup-view strong", { hasText: "no default password" }).waitFor();
  });

  await step("setup: two different passwords are refused in the page", async () => {
    const setup = page.locator("#setup-view");
    await setup.getByLabel("Admin password").fill(PASSWORD);
    await setup.getByLabel("Confirm password").fill(PASSWORD + "x");
    await page.getByRole("button", { name: "Set admin password" }).click();
    await page.locator("#setup-view .field-error", { hasText: "The two passwords differ." }).waitFor();
    check(!apiRequests.some((r) => r.path === "/api/v1/setup"), "the page sent a setup request with two different passwords");
  });

  await step("setup: set the admin password, then the login form is shown", async () => {
    await page.locator("#setup-view").getByLabel("Confirm password").fill(PASSWORD);
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/api/v1/setup")),
      page.getByRole("button", { name: "Set admin password" }).click(),
    ]);
    check(res.status() === 201, `POST /api/v1/setup answered ${res.status()}: ${await res.text()}`);
    await page.getByRole("heading", { name: "Log in" }).waitFor();
    await page.locator("#login-note", { hasText: "Admin password set" }).waitFor();
  });

  await step("login: a wrong password is refused", async () => {
    await page.locator("#login-view").getByLabel("Admin password").fill("not the password");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.locator("#login-note", { hasText: "Wrong password." }).waitFor();
    check(await page.getByRole("heading", { name: "Log in" }).isVisible(), "login form gone after a wrong password");
  });

  await step("login with the admin password: status card of cam is live", async () => {
    await page.locator("#login-view").getByLabel("Admin password").fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Status" }).waitFor();
    const card = page.locator('article.card[data-path="cam"]');
    await card.waitFor();
    await until("the cam card never showed Live", async () => (await card.locator(".badge").textContent()) === "Live");
    await until("the cam card never showed a measured fps", async () => /^\d+(\.\d)? fps$/.test(await card.locator('[data-k="fps"]').textContent()));
    check((await card.locator('[data-k="res"]').textContent()).replace(/\s/g, "") === "320×240", "resolution is not 320 × 240");
    const stored = await page.evaluate(() => sessionStorage.getItem("vigint.login"));
    check(stored === Buffer.from("admin:" + PASSWORD).toString("base64"), "the login is not kept in sessionStorage");
  });

  await step("every API request carries X-Requested-With, and the login once logged in", async () => {
    check(apiRequests.length > 0, "no API requests seen");
    for (const r of apiRequests) {
      check(r.headers["x-requested-with"] === "vigint-page", `${r.method} ${r.path} without X-Requested-With: vigint-page`);
    }
    const polls = apiRequests.filter((r) => r.path === "/api/v1/status");
    check(polls.length > 0, "the page never asked for /api/v1/status");
    for (const r of polls) check(r.headers["authorization"] === auth, "a status request without the admin login");
  });

  await step("the RTSP address names this host and the server's RTSP port; Copy copies it", async () => {
    const card = page.locator('article.card[data-path="cam"]');
    const want = `rtsp://${host}:${rtspPort}/cam`;
    const shown = (await card.locator("code").textContent()).trim();
    check(shown === want, `the card shows ${shown}, want ${want}`);
    await card.getByRole("button", { name: "Copy" }).click();
    await until("no \"Copied\" announcement", async () => (await page.locator("#announce").textContent()).startsWith("Copied"), 5000);
    const clip = await page.evaluate(() => navigator.clipboard.readText());
    check(clip === want, `the clipboard holds ${JSON.stringify(clip)}, want ${want}`);
  });

  const cam = page.locator('fieldset[data-path="cam"]');
  const bitrate = cam.getByLabel("Bitrate");
  const before = await apiConfig();
  const oldKbps = before.paths.cam.bitrate_kbps;
  const newKbps = oldKbps === 750 ? 800 : 750;

  await step(`an invalid bitrate (1) is shown next to the input and nothing is saved`, async () => {
    check((await bitrate.inputValue()) === String(oldKbps), `the form shows bitrate ${await bitrate.inputValue()}, the API ${oldKbps}`);
    const fileBefore = fs.readFileSync(configFile, "utf8");
    await bitrate.fill("1");
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/api/v1/config") && r.request().method() === "PATCH"),
      page.getByRole("button", { name: "Save" }).click(),
    ]);
    const body = await res.json().catch(() => null);
    check(res.status() === 400, `PATCH with bitrate 1 answered ${res.status()}`);
    check(body && body.error && body.error.field === "paths.cam.bitrate_kbps", `error names field ${JSON.stringify(body && body.error)}`);
    await until("bitrate input not marked invalid", async () => (await bitrate.getAttribute("aria-invalid")) === "true", 5000);
    const errId = await bitrate.evaluate((i) => i.nextElementSibling && i.nextElementSibling.id);
    check(errId, "no message right after the bitrate input");
    const described = ((await bitrate.getAttribute("aria-describedby")) || "").split(/\s+/);
    check(described.includes(errId), "the bitrate input is not described by its error message");
    const shown = (await page.locator("#" + errId).textContent()).trim();
    check(shown.length > 0 && body.error.message.includes(shown), `inline message ${JSON.stringify(shown)} is not the API's ${JSON.stringify(body.error.message)}`);
    check(await page.locator("#" + errId).isVisible(), "the inline message is not visible");
    await cam.screenshot({ path: path.join(artifacts, "invalid-bitrate.png") });
    check((await page.locator("#save-msg").textContent()).includes("Nothing was saved"), "no 'Nothing was saved' result");
    check(fs.readFileSync(configFile, "utf8") === fileBefore, "the config file changed after a refused PATCH");
    check((await apiConfig()).paths.cam.bitrate_kbps === oldKbps, "the API's bitrate changed after a refused PATCH");
  });

  await step(`change cam's bitrate ${oldKbps} -> ${newKbps}: saved, applied, in the file`, async () => {
    await bitrate.fill(String(newKbps));
    check((await bitrate.getAttribute("aria-invalid")) === null, "the error mark stays after editing the input");
    const [req, res] = await Promise.all([
      page.waitForRequest((r) => r.url().endsWith("/api/v1/config") && r.method() === "PATCH"),
      page.waitForResponse((r) => r.url().endsWith("/api/v1/config") && r.request().method() === "PATCH"),
      page.getByRole("button", { name: "Save" }).click(),
    ]);
    check(req.headers()["content-type"] === "application/merge-patch+json", `PATCH Content-Type ${req.headers()["content-type"]}`);
    const sent = JSON.parse(req.postData() || "null");
    const want = { paths: { cam: { bitrate_kbps: newKbps } } };
    check(JSON.stringify(sent) === JSON.stringify(want), `the PATCH sent ${JSON.stringify(sent)}, want only the change ${JSON.stringify(want)}`);
    const body = await res.json().catch(() => null);
    check(res.status() === 200, `PATCH answered ${res.status()}: ${JSON.stringify(body)}`);
    const msg = page.locator("#save-msg");
    await until("no 'Saved and applied' message", async () => (await msg.textContent()).includes("Saved and applied"), 5000);
    for (const a of body.applied || []) check((await msg.textContent()).includes(a), `the message lacks applied entry ${a}`);
    check((await bitrate.inputValue()) === String(newKbps), "the form does not show the saved bitrate");
    await until("the API never returned the new bitrate", async () => (await apiConfig()).paths.cam.bitrate_kbps === newKbps);
    await until("the config file never got the new bitrate", async () => fileConfig().paths.cam.bitrate_kbps === newKbps);
  });

  await step("after the change the status is polled again and cam stays live", async () => {
    const card = page.locator('article.card[data-path="cam"]');
    const polled = apiRequests.filter((r) => r.path === "/api/v1/status").length;
    await until("the page stopped polling /api/v1/status", async () => apiRequests.filter((r) => r.path === "/api/v1/status").length >= polled + 2, 10000);
    await until("cam is not live after the change", async () =>
      (await card.locator(".badge").textContent()) === "Live" && /fps$/.test(await card.locator('[data-k="fps"]').textContent()), 20000);
  });

  await step("add an RTSP user: the file has its password, the API does not", async () => {
    const users = page.locator("#users-fs");
    await users.getByLabel("Name", { exact: true }).fill(VIEWER.name);
    await users.getByLabel("Password", { exact: true }).fill(VIEWER.password);
    await page.getByRole("button", { name: "Add user" }).click();
    const [req, res] = await Promise.all([
      page.waitForRequest((r) => r.url().endsWith("/api/v1/config") && r.method() === "PATCH"),
      page.waitForResponse((r) => r.url().endsWith("/api/v1/config") && r.request().method() === "PATCH"),
      page.getByRole("button", { name: "Save" }).click(),
    ]);
    const sent = JSON.parse(req.postData() || "null");
    check(JSON.stringify(sent) === JSON.stringify({ users: [VIEWER] }), `the PATCH sent ${JSON.stringify(sent)}`);
    check(res.status() === 200, `PATCH with a user answered ${res.status()}: ${await res.text()}`);
    await until("no 'Saved and applied' after adding a user", async () => (await page.locator("#save-msg").textContent()).includes("Saved and applied"), 5000);
    const listed = (await apiConfig()).users || [];
    check(JSON.stringify(listed) === JSON.stringify([{ name: VIEWER.name }]), `the API lists users ${JSON.stringify(listed)}`);
    const onDisk = fileConfig().users || [];
    check(onDisk.length === 1 && onDisk[0].name === VIEWER.name && onDisk[0].password === VIEWER.password, "the config file lacks the new user and its password");
    check((await page.getByLabel(`New password for ${VIEWER.name}`).inputValue()) === "", "a password is shown after saving");
  });

  await step("accessibility basics: lang, one h1, a label for every input, a live region", async () => {
    const a = await page.evaluate(() => ({
      lang: document.documentElement.lang,
      h1: document.querySelectorAll("h1").length,
      unlabelled: [...document.querySelectorAll("input, select, textarea")]
        .filter((i) => i.type !== "hidden" && !i.hidden && i.labels.length === 0 && !i.getAttribute("aria-label"))
        .map((i) => i.id || i.outerHTML),
      live: document.querySelectorAll("[aria-live], [role=status], [role=alert]").length,
    }));
    check(a.lang, "no lang attribute");
    check(a.h1 === 1, `${a.h1} h1 headings`);
    check(a.unlabelled.length === 0, `inputs without a label: ${a.unlabelled.join(", ")}`);
    check(a.live > 0, "no aria-live region");
  });

  await step("no horizontal scroll at 390 and 360 px", async () => {
    for (const width of [360, 390]) {
      await page.setViewportSize({ width, height: 844 });
      const s = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth }));
      check(s.sw <= s.cw, `at ${width} px the page is ${s.sw} px wide (viewport ${s.cw}): horizontal scroll`);
    }
  });

  await step("screenshots page.png (390 px) and page-desktop.png (1280 px)", async () => {
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    await page.mouse.move(0, 0);
    await sleep(400); // the buttons' colour transition
    await page.screenshot({ path: path.join(artifacts, "page.png"), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    const s = await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth);
    check(s, "horizontal scroll at 1280 px");
    await page.screenshot({ path: path.join(artifacts, "page-desktop.png"), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
  });

  await step("log out; repeated wrong passwords get 'too many attempts, try again in N s'", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("heading", { name: "Log in" }).waitFor();
    check((await page.evaluate(() => sessionStorage.getItem("vigint.login"))) === null, "the login stays in sessionStorage after logging out");
    const note = page.locator("#login-note");
    let limited = null;
    for (let i = 0; i < 10 && !limited; i++) {
      await page.locator("#login-view").getByLabel("Admin password").fill("wrong " + i);
      const [res] = await Promise.all([
        page.waitForResponse((r) => new URL(r.url()).pathname.startsWith("/api/")),
        page.getByRole("button", { name: "Log in" }).click(),
      ]);
      if (res.status() === 429) limited = res;
      else check(res.status() === 401, `a wrong password answered ${res.status()}`);
      await until("no answer shown for a wrong password", async () => /Wrong password|Too many attempts/.test(await note.textContent()), 5000);
    }
    check(limited, "10 wrong passwords in a row were never rate-limited (429)");
    const after = limited.headers()["retry-after"];
    check(/^\d+$/.test(after || ""), `429 without a Retry-After in seconds: ${after}`);
    await until("the page does not say how long to wait", async () => (await note.textContent()).includes(`Too many attempts, try again in ${after} s`), 5000);
  });

  await step("no uncaught errors in the page", async () => {
    check(problems.length === 0, problems.join("\n"));
  });
}

let failed = null;
try {
  await main();
} catch (e) {
  failed = e;
}
if (failed && page) {
  try {
    await page.screenshot({ path: path.join(artifacts, "failure.png"), fullPage: true });
  } catch (e) {
    // The browser may be gone; the message below still says what failed.
  }
}
try {
  if (context) await context.close();
} catch (e) {
  // Closing a crashed browser can fail; nothing else to clean up but the profile.
}
fs.rmSync(userDataDir, { recursive: true, force: true });
if (failed) {
  console.error(`FAIL at step "${current}": ${failed.message}`);
  if (problems.length) console.error("page errors:\n  " + problems.join("\n  "));
  console.error(`artifacts (failure.png): ${artifacts}`);
  process.exit(1);
}
log(`PASS: all page checks passed; screenshots in ${artifacts}`);
