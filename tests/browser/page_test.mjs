// End-to-end test of the phone page in a real browser (Debian's Chromium, headless, driven by
// playwright-core): first-run setup, login, the status card, a rejected and an accepted
// bitrate change (checked in the API and in the config file on disk), an RTSP user, a path of
// each kind added through the page (camera list and auto, test pattern, publisher with its
// push address and a real ffmpeg publisher, an RTSP relay of cam whose password never reaches
// the page, the MP4 file CLIP), refused inputs shown next to their field with nothing saved,
// settings per kind, publish permission, the recordings (list, playback in <video> through a
// play link with ranges and a seek, refused play links, delete), no horizontal scroll,
// screenshots, and the rate-limit message after repeated wrong passwords. Run by
// tests/browser.rs against a fresh vigint recording cam:
//
//   node tests/browser/page_test.mjs BASE_URL CONFIG_FILE ARTIFACT_DIR RTSP_PORT CLIP_MP4
//
// Exits 0 when every check passed; otherwise prints the failed step and why, saves
// failure.png in ARTIFACT_DIR and exits 1 (2 for bad arguments).
import { check, collectProblems, log, problems, run, sleep, step, until } from "./harness.mjs";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const [base, configFile, artifacts, rtspPortArg, clip] = process.argv.slice(2);
if (!base || !configFile || !artifacts || !rtspPortArg || !clip) {
  console.error("usage: node page_test.mjs BASE_URL CONFIG_FILE ARTIFACT_DIR RTSP_PORT CLIP_MP4");
  process.exit(2);
}
const PASSWORD = "correct horse battery";
const VIEWER = { name: "viewer", password: "viewer-secret-1" };
// Given publish permission on the publisher path through the page.
const PUSHER = { name: "pusher", password: "pusher-secret-2" };
const rtspPort = Number(rtspPortArg);
const origin = new URL(base).origin;
const host = new URL(base).hostname;
const auth = "Basic " + Buffer.from("admin:" + PASSWORD).toString("base64");
async function apiConfig() {
  const r = await fetch(origin + "/api/v1/config", { headers: { Authorization: auth } });
  check(r.status === 200, `GET /api/v1/config with the admin login answered ${r.status}`);
  return r.json();
}
function fileConfig() {
  return JSON.parse(fs.readFileSync(configFile, "utf8"));
}

let context;
let page;
let publisher = null; // the ffmpeg pushing into the publisher path
const apiRequests = [];

async function main(browser) {
  context = browser;
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
  page = context.pages()[0] || (await context.newPage());
  collectProblems(page);
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
    await page.locator("#login-view").getByLabel("Password", { exact: true }).fill("not the password");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.locator("#login-note", { hasText: "Wrong password." }).waitFor();
    check(await page.getByRole("heading", { name: "Log in" }).isVisible(), "login form gone after a wrong password");
  });

  await step("login with the admin password: status card of cam is live", async () => {
    await page.locator("#login-view").getByLabel("Password", { exact: true }).fill(PASSWORD);
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

  await step("an RTSP user named admin is told it cannot log in on the page; removed before saving", async () => {
    const users = page.locator("#users-fs");
    await users.getByLabel("Name", { exact: true }).fill("admin");
    await users.getByLabel("Password", { exact: true }).fill("not-saved-1");
    await page.getByRole("button", { name: "Add user" }).click();
    const row = page.locator('#user-list li[data-user="admin"]');
    await until("no row for the user admin", () => row.count(), 5000);
    const note = await row.locator('[data-k="admin-name"]').textContent();
    check(/cannot log in here/.test(note), `the admin row says: ${note}`);
    await row.getByRole("button", { name: /Remove/ }).click();
    check(await row.count() === 0, "the admin row is still there after Remove");
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

  // ---------- a path of each kind, added through the page ----------
  const addForm = page.locator("#add-path-view");
  const cardOf = (name) => page.locator(`article.card[data-path="${name}"]`);
  const pathSettings = (name) => page.locator(`fieldset[data-path="${name}"]`);
  const textOf = async (loc) => ((await loc.textContent()) || "").replace(/\s+/g, " ").trim();
  const badgeOf = (name) => textOf(cardOf(name).locator('[data-k="badge"]'));
  const KIND_CHOICE = { camera: /^Camera/, pattern: /^Test pattern/, publisher: /^Publisher/, relay: /^RTSP camera/, file: /^MP4 file/ };
  const chooseKind = (kind) => addForm.getByRole("radio", { name: KIND_CHOICE[kind] }).check();
  // Chooses `kind`, types the name, runs `fill`, presses Add path: what was sent and answered.
  async function addPath(name, kind, fill) {
    await chooseKind(kind);
    await addForm.getByLabel("Name", { exact: true }).fill(name);
    if (fill) await fill();
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/api/v1/paths/" + name),
      addForm.getByRole("button", { name: "Add path" }).click(),
    ]);
    return { sent: JSON.parse(res.request().postData() || "null"), status: res.status(), body: await res.json().catch(() => null) };
  }
  async function waitLive(name, ms = 20000) {
    await until(`${name}: the card never showed Live`, async () => (await badgeOf(name)) === "Live", ms);
  }
  // Everything of the page a secret could show in: markup, text and every form value.
  const pageDump = () => page.evaluate(() => document.documentElement.outerHTML + "\n" + document.body.innerText + "\n" +
    [...document.querySelectorAll("input, select, textarea")].map((i) => i.value).join("\n"));
  const relayUrl = `rtsp://${VIEWER.name}:${VIEWER.password}@127.0.0.1:${rtspPort}/cam`;
  const relayShown = `rtsp://${VIEWER.name}:***@127.0.0.1:${rtspPort}/cam`;

  await step("add a camera path: the list shows what /api/v1/cameras has, auto first; auto is added", async () => {
    const r = await fetch(origin + "/api/v1/cameras", { headers: { Authorization: auth } });
    check(r.status === 200, `GET /api/v1/cameras answered ${r.status}`);
    const cams = (await r.json()).map((c) => c.path);
    await chooseKind("camera");
    const msg = addForm.locator("#new-cam-msg");
    await until("the camera list never loaded", async () => !/Looking/.test(await msg.textContent()), 10000);
    const select = addForm.getByLabel("Camera", { exact: true });
    const options = await select.evaluate((s) => [...s.options].map((o) => o.value));
    check(JSON.stringify(options) === JSON.stringify(["auto", ...cams]), `the page offers ${JSON.stringify(options)}, the API lists ${JSON.stringify(cams)}`);
    if (!cams.length) check(/^No camera found/.test(await msg.textContent()), `no clear message for no camera: ${await msg.textContent()}`);
    log(`cameras ${JSON.stringify(cams)}: "${await textOf(msg)}"`);
    check(!(await addForm.getByLabel("Camera address", { exact: true }).isVisible()) && !(await addForm.getByLabel("File on this device", { exact: true }).isVisible()),
      "another kind's fields are shown with Camera chosen");
    const add = await addPath("usb", "camera", async () => {
      await select.selectOption("auto");
      await addForm.getByLabel("Width").fill("320");
      await addForm.getByLabel("Height").fill("240");
      await addForm.getByLabel("Rate").fill("10");
    });
    check(add.status === 201, `POST /api/v1/paths/usb answered ${add.status}: ${JSON.stringify(add.body)}`);
    check(JSON.stringify(add.sent) === JSON.stringify({ source: "auto", width: 320, height: 240, fps: 10 }), `sent ${JSON.stringify(add.sent)}`);
    await cardOf("usb").waitFor();
    check((await textOf(cardOf("usb").locator('[data-k="kind"]'))) === "Camera auto", `usb's kind reads ${await textOf(cardOf("usb").locator('[data-k="kind"]'))}`);
    await waitLive("usb");
    if (!cams.length) {
      await until("the auto card does not say it shows the test pattern", async () =>
        /No camera found/.test(await cardOf("usb").locator('[data-k="kind-extra"]').textContent()), 5000);
    }
  });

  await step("add a test pattern path: its card reads Test pattern and goes live", async () => {
    const add = await addPath("bars", "pattern", async () => {
      await addForm.getByLabel("Width").fill("320");
      await addForm.getByLabel("Height").fill("240");
      await addForm.getByLabel("Rate").fill("10");
    });
    check(add.status === 201, `POST /api/v1/paths/bars answered ${add.status}: ${JSON.stringify(add.body)}`);
    check(JSON.stringify(add.sent) === JSON.stringify({ source: "test-pattern", width: 320, height: 240, fps: 10 }), `sent ${JSON.stringify(add.sent)}`);
    await cardOf("bars").waitFor();
    check((await textOf(cardOf("bars").locator('[data-k="kind"]'))) === "Test pattern", "bars' kind is not Test pattern");
    await waitLive("bars");
  });

  await step("a relative file path and an rtsp URL without a host: the error is next to the field, nothing saved", async () => {
    for (const [name, kind, label, value] of [
      ["badfile", "file", "File on this device", "videos/clip.mp4"],
      ["badrelay", "relay", "Camera address", "rtsp:///cam"],
    ]) {
      const before = fs.readFileSync(configFile, "utf8");
      const input = addForm.getByLabel(label, { exact: true });
      const add = await addPath(name, kind, () => input.fill(value));
      const err = add.body && add.body.error;
      check(add.status === 400 && err && err.field === `paths.${name}.source`, `${value}: answered ${add.status} ${JSON.stringify(add.body)}`);
      await until(`${label}: not marked invalid`, async () => (await input.getAttribute("aria-invalid")) === "true", 5000);
      const errId = await input.evaluate((i) => i.nextElementSibling && i.nextElementSibling.classList.contains("field-error") ? i.nextElementSibling.id : null);
      check(errId, `no message right after ${label}`);
      check(((await input.getAttribute("aria-describedby")) || "").split(/\s+/).includes(errId), `${label} is not described by its error`);
      const shown = await textOf(page.locator("#" + errId));
      check(shown && err.message.includes(shown) && (await page.locator("#" + errId).isVisible()), `next to ${label}: ${JSON.stringify(shown)}; the API said ${JSON.stringify(err.message)}`);
      check(/not added/.test(await addForm.locator("#add-path-msg").textContent()), "no 'not added' result");
      check(!(await apiConfig()).paths[name], `the refused ${name} is in the config`);
      check(fs.readFileSync(configFile, "utf8") === before, "the config file changed after a refused path");
      check((await cardOf(name).count()) === 0, `a card for the refused ${name}`);
      log(`${value}: "${shown}"`);
      if (kind === "relay") await addForm.screenshot({ path: path.join(artifacts, "add-path-error.png") });
      await input.fill("");
    }
  });

  await step("add a publisher path: a calm 'waiting', the address to push to, an ffmpeg line, who may push", async () => {
    await chooseKind("publisher");
    await addForm.getByLabel("Name", { exact: true }).fill("door");
    const who = addForm.locator("#new-pub-who");
    check(/^No RTSP user may publish to door/.test(await textOf(who)), `the form says ${await textOf(who)}`);
    check((await who.locator('a[href="#users-fs"]').count()) === 1, "no link to the RTSP users");
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    await addForm.screenshot({ path: path.join(artifacts, "add-path.png") });
    const add = await addPath("door", "publisher");
    check(add.status === 201, `POST /api/v1/paths/door answered ${add.status}: ${JSON.stringify(add.body)}`);
    check(JSON.stringify(add.sent) === JSON.stringify({ source: "publisher" }), `sent ${JSON.stringify(add.sent)}`);
    const card = cardOf("door");
    await card.waitFor();
    check((await textOf(card.locator('[data-k="kind"]'))) === "Publisher", "door's kind is not Publisher");
    await until("door never showed Waiting", async () => (await badgeOf("door")) === "Waiting", 10000);
    const look = await card.evaluate((c) => {
      const probe = document.createElement("span");
      probe.style.color = "var(--danger)";
      c.append(probe);
      const danger = getComputedStyle(probe).color;
      probe.remove();
      const b = c.querySelector('[data-k="badge"]');
      return { cls: b.className, color: getComputedStyle(b).color, danger,
        problem: !c.querySelector('[data-k="problem"]').hidden, note: c.querySelector('[data-k="note"]').textContent };
    });
    check(look.cls.includes("wait") && look.color !== look.danger && !look.problem, `door looks like a fault: ${JSON.stringify(look)}`);
    check(/^Waiting for a publisher/.test(look.note), `door's note: ${look.note}`);
    const summary = await textOf(page.locator("#summary-state"));
    check(/Healthy/.test(summary) && /waiting/.test(summary), `the summary reads ${summary}`);
    const want = `rtsp://${host}:${rtspPort}/door`;
    check((await textOf(card.locator('[data-k="url"]'))) === want, `door's push address is ${await textOf(card.locator('[data-k="url"]'))}, want ${want}`);
    const ff = await textOf(card.locator('[data-k="ffmpeg"]'));
    check(ff === `ffmpeg -re -i video.mp4 -c copy -f rtsp rtsp://USER:PASSWORD@${host}:${rtspPort}/door`, `ffmpeg line: ${ff}`);
    check(/^No RTSP user may publish here/.test(await textOf(card.locator('[data-k="publishers"]'))), "the card does not say nobody may publish");
    await card.getByRole("button", { name: "Copy address to push to door" }).click();
    await until("the push address was not copied", async () => (await page.evaluate(() => navigator.clipboard.readText())) === want, 5000);
  });

  await step("add an RTSP relay of cam with a password: it streams; the password never reaches the page", async () => {
    const add = await addPath("relay", "relay", async () => {
      await addForm.getByLabel("Camera address", { exact: true }).fill(relayUrl);
      await addForm.getByLabel("Transport").selectOption("tcp");
    });
    check(add.status === 201, `POST /api/v1/paths/relay answered ${add.status}: ${JSON.stringify(add.body)}`);
    check(JSON.stringify(add.sent) === JSON.stringify({ source: relayUrl, rtsp_transport: "tcp" }), `sent ${JSON.stringify(add.sent)}`);
    check((await addForm.getByLabel("Camera address", { exact: true }).inputValue()) === "", "the URL stays in the form after it was saved");
    const card = cardOf("relay");
    await card.waitFor();
    check((await textOf(card.locator('[data-k="kind"]'))) === `RTSP relay ${relayShown}`, `relay's kind reads ${await textOf(card.locator('[data-k="kind"]'))}`);
    const extra = await textOf(card.locator('[data-k="kind-extra"]'));
    check(/Transport TCP/.test(extra) && /pulls all the time/.test(extra), `relay's transport line: ${extra}`);
    await waitLive("relay", 30000);
    check((await apiConfig()).paths.relay.source === relayShown, "the API does not mask the relay's password");
    check(fileConfig().paths.relay.source === relayUrl, "the config file lacks the relay's URL with its password");
    check(!(await pageDump()).includes(VIEWER.password), "the relay's password is in the page");
  });

  await step("add the MP4 file: its card reads File PATH and goes live", async () => {
    const add = await addPath("clip", "file", () => addForm.getByLabel("File on this device", { exact: true }).fill(clip));
    check(add.status === 201, `POST /api/v1/paths/clip answered ${add.status}: ${JSON.stringify(add.body)}`);
    check(JSON.stringify(add.sent) === JSON.stringify({ source: "file:" + clip }), `sent ${JSON.stringify(add.sent)}`);
    await cardOf("clip").waitFor();
    check((await textOf(cardOf("clip").locator('[data-k="kind"]'))) === "File " + clip, `clip's kind reads ${await textOf(cardOf("clip").locator('[data-k="kind"]'))}`);
    await waitLive("clip");
  });

  await step("settings offer each kind its own fields: no size, rate or bitrate for publisher, relay and file", async () => {
    const SIZE = ["Width", "Height", "Frame rate", "Bitrate"];
    const want = {
      usb: { has: [...SIZE, "Camera format", "Max viewers", "Record this path"], not: ["Transport", "A second publisher"] },
      bars: { has: [...SIZE, "Max viewers", "Record this path"], not: ["Camera format", "Transport"] },
      door: { has: ["Max viewers", "A second publisher takes over", "Record this path"], not: [...SIZE, "Camera format", "Transport"] },
      relay: { has: ["Transport", "Pull only while someone watches", "Max viewers", "Record this path"], not: [...SIZE, "Camera format", "A second publisher"] },
      clip: { has: ["Max viewers", "Record this path"], not: [...SIZE, "Camera format", "Transport", "A second publisher"] },
    };
    for (const [name, w] of Object.entries(want)) {
      const labels = await pathSettings(name).locator("label").evaluateAll((ls) => ls.map((l) => l.textContent.replace(/\s+/g, " ").trim()));
      for (const h of w.has) check(labels.some((l) => l.startsWith(h)), `${name}'s settings lack ${h}: ${JSON.stringify(labels)}`);
      for (const n of w.not) check(!labels.some((l) => l.startsWith(n)), `${name}'s settings offer ${n}: ${JSON.stringify(labels)}`);
    }
    check((await pathSettings("relay").getByLabel("Source").inputValue()) === relayShown, "the relay's settings do not show the masked URL");
  });

  await step("door: 'a second publisher takes over' saved from its settings, only that sent", async () => {
    await pathSettings("door").getByLabel("A second publisher takes over").check();
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/api/v1/config") && r.request().method() === "PATCH"),
      page.getByRole("button", { name: "Save" }).click(),
    ]);
    const sent = JSON.parse(res.request().postData() || "null");
    check(JSON.stringify(sent) === JSON.stringify({ paths: { door: { override_publisher: true } } }), `the PATCH sent ${JSON.stringify(sent)}`);
    check(res.status() === 200, `PATCH answered ${res.status()}: ${await res.text()}`);
    check((await apiConfig()).paths.door.override_publisher === true, "the API lacks override_publisher");
    check(fileConfig().paths.relay.source === relayUrl, "saving another path lost the relay's password");
  });

  await step("a new user may publish to door: saved with its permissions; the door card names it", async () => {
    const users = page.locator("#users-fs");
    await users.getByLabel("Name", { exact: true }).fill(PUSHER.name);
    await users.getByLabel("Password", { exact: true }).fill(PUSHER.password);
    await users.getByLabel("Permissions", { exact: true }).selectOption("pub:door");
    await page.getByRole("button", { name: "Add user" }).click();
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/api/v1/config") && r.request().method() === "PATCH"),
      page.getByRole("button", { name: "Save" }).click(),
    ]);
    const perms = [{ action: "read" }, { action: "publish", path: "door" }];
    const sent = JSON.parse(res.request().postData() || "null");
    check(JSON.stringify(sent) === JSON.stringify({ users: [{ name: VIEWER.name }, { ...PUSHER, permissions: perms }] }), `the PATCH sent ${JSON.stringify(sent)}`);
    check(res.status() === 200, `PATCH answered ${res.status()}: ${await res.text()}`);
    const listed = (await apiConfig()).users;
    check(JSON.stringify(listed) === JSON.stringify([{ name: VIEWER.name }, { name: PUSHER.name, permissions: perms }]), `the API lists ${JSON.stringify(listed)}`);
    check((await users.getByLabel(`Permissions of ${PUSHER.name}`).inputValue()) === "pub:door", "pusher's permission is not shown as publish to door");
    check((await users.getByLabel(`Permissions of ${VIEWER.name}`).inputValue()) === "watch", "viewer's permission changed");
    const card = cardOf("door");
    await until("the door card does not name pusher", async () => (await textOf(card.locator('[data-k="publishers"]'))) === "May publish here: pusher.", 5000);
    check((await textOf(card.locator('[data-k="ffmpeg"]'))).includes(`rtsp://${PUSHER.name}:PASSWORD@${host}:${rtspPort}/door`), "the ffmpeg line does not use pusher");
  });

  await step("a real publisher (ffmpeg as pusher) makes door live; when it leaves, door waits calmly again", async () => {
    let stderr = "";
    publisher = spawn("ffmpeg", ["-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", clip,
      "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", `rtsp://${PUSHER.name}:${PUSHER.password}@127.0.0.1:${rtspPort}/door`],
    { stdio: ["ignore", "ignore", "pipe"] });
    publisher.stderr.on("data", (d) => { stderr += d; });
    await until("door never went live with a publisher", async () => {
      if (publisher.exitCode !== null) throw new Error(`ffmpeg exited ${publisher.exitCode}: ${stderr}`);
      return (await badgeOf("door")) === "Live";
    }, 20000);
    check(await cardOf("door").locator('[data-k="note"]').isHidden(), "door still shows a waiting note while live");
    publisher.kill("SIGKILL");
    publisher = null;
    await until("door did not go back to Waiting after its publisher left", async () => (await badgeOf("door")) === "Waiting", 20000);
  });

  await step("screenshots of the cards, the settings and the top of the page (paths.png, settings.png, page-phone.png)", async () => {
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    await page.mouse.move(0, 0);
    await page.locator("#status-view").screenshot({ path: path.join(artifacts, "paths.png") });
    await page.locator("#settings-view").screenshot({ path: path.join(artifacts, "settings.png") });
    // The picture in README and docs/HTTP.md: the top of the page on a phone, down to door,
    // in a viewport that tall so that every card in it plays its live picture.
    const height = await page.evaluate(() => document.querySelector('article.card[data-path="door"]').getBoundingClientRect().bottom + scrollY + 8);
    await page.setViewportSize({ width: 390, height: Math.ceil(height) });
    await page.evaluate(() => scrollTo(0, 0));
    await until("the live cards at the top did not all show their picture", () => page.evaluate(() =>
      [...document.querySelectorAll("article.card")].filter((c) => c.getBoundingClientRect().bottom <= innerHeight && c.querySelector(".badge.live"))
        .every((c) => { const v = c.querySelector("button.live video"); return v && v.readyState >= 2 && !v.paused; })), 20000);
    await sleep(400); // the buttons' colour transition
    await page.screenshot({ path: path.join(artifacts, "page-phone.png"), clip: { x: 0, y: 0, width: 390, height } });
    await page.setViewportSize({ width: 390, height: 844 });
  });

  // ---------- recordings: list, play in <video> with ranges and a seek, play links, delete ----------
  const listRequests = () => apiRequests.filter((r) => r.method === "GET" && r.path === "/api/v1/recordings").length;
  async function apiRecordings() {
    const r = await fetch(origin + "/api/v1/recordings", { headers: { Authorization: auth } });
    check(r.status === 200, `GET /api/v1/recordings answered ${r.status}`);
    const cam = (await r.json()).find((p) => p.path === "cam");
    check(cam, "the recordings list has no path cam");
    return cam.segments;
  }
  const recordingsPanel = page.locator("#recordings-view");
  const camRecordings = recordingsPanel.locator('.rec-path[data-path="cam"]');
  const mediaResponses = []; // answers to the <video>'s requests
  page.on("response", (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith("/api/v1/recordings/") && u.searchParams.has("token")) {
      mediaResponses.push({ status: r.status(), range: r.request().headers()["range"] || null, contentRange: r.headers()["content-range"] || null });
    }
  });

  await step("this Chromium decodes H.264 in MP4, and the recorder's profile", async () => {
    const types = ['video/mp4; codecs="avc1.42E01E"', 'video/mp4; codecs="avc1.42C00D"'];
    const can = await page.evaluate((t) => t.map((x) => document.createElement("video").canPlayType(x)), types);
    log(`canPlayType: ${types.map((t, i) => `${t} -> ${JSON.stringify(can[i])}`).join(", ")}`);
    check(can.every((c) => c === "probably"), `this Chromium cannot play H.264 in MP4: ${JSON.stringify(can)}`);
  });

  await step("recording: at least two finished segments of cam (4 s each) exist", async () => {
    await until("fewer than 2 finished segments after 30 s", async () => (await apiRecordings()).filter((s) => !s.recording && s.duration_s >= 2).length >= 2, 30000);
  });

  await step("open Recordings: the list shows cam's segments newest first, marks, no poll refresh", async () => {
    check(listRequests() === 0, "the recordings were fetched before the section was opened");
    const toggle = page.getByRole("button", { name: "Show recordings" });
    check((await toggle.getAttribute("aria-expanded")) === "false", "the Recordings toggle is not collapsed at first");
    await toggle.click();
    check((await page.getByRole("button", { name: "Hide recordings" }).getAttribute("aria-expanded")) === "true", "aria-expanded not true when open");
    await camRecordings.locator("li[data-file]").first().waitFor();
    const api = await apiRecordings();
    const rows = await camRecordings.locator("li[data-file]").evaluateAll((lis) => lis.map((li) => ({
      file: li.dataset.file,
      time: li.querySelector(".seg-time").textContent,
      meta: li.querySelector(".seg-meta").textContent,
      rec: !!li.querySelector(".badge.rec"),
      unsynced: !!li.querySelector(".warn"),
    })));
    // The list may have grown by one since the page read it.
    check(rows.length >= 3 && rows.length <= 50, `${rows.length} rows for cam`);
    const newest = api.slice().reverse().map((s) => s.file);
    const offset = newest.indexOf(rows[0].file);
    check(offset >= 0 && offset <= 1, `the first row ${rows[0].file} is not the newest segment`);
    rows.forEach((r, i) => check(r.file === newest[offset + i], `row ${i} is ${r.file}, want ${newest[offset + i]} (newest first)`));
    check(rows[0].rec && rows.slice(1).every((r) => !r.rec), "the 'recording now' mark is not on the newest row only");
    for (const r of rows) {
      const seg = api.find((s) => s.file === r.file);
      check(r.unsynced === !seg.clock_trusted, `${r.file}: 'time not yet synchronised' shown ${r.unsynced}, clock_trusted ${seg.clock_trusted}`);
      check(/\d/.test(r.time) && / s · \d+(\.\d+)? (B|kB|MB)$/.test(r.meta), `${r.file}: row shows ${JSON.stringify(r.time)} / ${JSON.stringify(r.meta)}`);
    }
    log(`${rows.length} rows; clock_trusted ${api[0].clock_trusted}; first row: ${rows[0].time} ${rows[0].meta}`);
    const fetched = listRequests();
    const polls = apiRequests.filter((r) => r.path === "/api/v1/status").length;
    await until("no status polls while the section is open", async () => apiRequests.filter((r) => r.path === "/api/v1/status").length >= polls + 2, 10000);
    check(listRequests() === fetched, "the status poll refetched the recordings");
  });

  let played = null;
  await step("tap a finished segment: <video> plays it through its play link, time advances", async () => {
    // A segment finished when the page listed it (the page's copy says "recording now" of
    // the newest row even if it has finished since).
    const api = await apiRecordings();
    const finishedInPage = await camRecordings.locator("li[data-file]").evaluateAll((lis) =>
      lis.filter((li) => !li.querySelector(".badge.rec")).map((li) => li.dataset.file));
    played = api.filter((s) => !s.recording && s.duration_s >= 3 && finishedInPage.includes(s.file)).pop();
    check(played, `no finished segment of 3 s or more among ${JSON.stringify(finishedInPage)}`);
    const row = camRecordings.locator(`li[data-file="${played.file}"]`);
    await row.locator("button.seg").click();
    check((await row.locator("button.seg").getAttribute("aria-expanded")) === "true", "the played row is not marked expanded");
    const video = recordingsPanel.locator("video");
    await video.waitFor();
    const attrs = await video.evaluate((v) => ({ controls: v.controls, playsinline: v.hasAttribute("playsinline"), preload: v.getAttribute("preload"), src: v.getAttribute("src") }));
    check(attrs.controls && attrs.playsinline && attrs.preload === "metadata", `video attributes ${JSON.stringify(attrs)}`);
    check(attrs.src.includes("?token="), `the video's src has no token: ${attrs.src}`);
    // Muted so that headless autoplay rules never get in the way of the measurement.
    const st = await video.evaluate((v) => new Promise((resolve, reject) => {
      v.muted = true;
      const fail = setTimeout(() => reject(new Error(`not playing after 15 s: readyState ${v.readyState}, error ${v.error && v.error.code} ${v.error && v.error.message}`)), 15000);
      const done = () => { clearTimeout(fail); resolve({ readyState: v.readyState, duration: v.duration }); };
      if (!v.paused && v.readyState >= 2 && v.currentTime > 0) done();
      else { v.addEventListener("playing", done, { once: true }); v.play().catch(() => {}); }
    }));
    check(st.readyState >= 2, `readyState ${st.readyState} after 'playing'`);
    check(Number.isFinite(st.duration) && st.duration > 0, `duration ${st.duration}`);
    check(Math.abs(st.duration - played.duration_s) < 0.5, `the video lasts ${st.duration} s, the API says ${played.duration_s} s`);
    const t1 = await video.evaluate((v) => v.currentTime);
    await until("currentTime does not advance", async () => (await video.evaluate((v) => v.currentTime)) > t1 + 0.5, 10000);
    log(`playing ${played.file}: duration ${st.duration.toFixed(3)} s (API ${played.duration_s.toFixed(3)} s)`);
  });

  await step("seek to the middle: 'seeked' fires there; the server answered ranges with 206", async () => {
    const video = recordingsPanel.locator("video");
    const mid = played.duration_s / 2;
    const at = await video.evaluate((v, t) => new Promise((resolve, reject) => {
      const fail = setTimeout(() => reject(new Error(`no 'seeked' after 10 s (currentTime ${v.currentTime})`)), 10000);
      v.addEventListener("seeked", () => { clearTimeout(fail); resolve(v.currentTime); }, { once: true });
      v.currentTime = t;
    }), mid);
    check(Math.abs(at - mid) < 1.1, `seeked to ${at} s, asked for ${mid} s`);
    check(mediaResponses.length > 0, "the <video> made no requests with a play link");
    const ranged = mediaResponses.filter((r) => r.status === 206);
    check(ranged.length > 0, `no 206 answer among ${JSON.stringify(mediaResponses)}`);
    for (const r of ranged) check(r.range && /^bytes \d+-\d+\/\d+$/.test(r.contentRange || ""), `206 without a Range/Content-Range pair: ${JSON.stringify(r)}`);
    check(mediaResponses.every((r) => r.status === 200 || r.status === 206), `media answers ${JSON.stringify(mediaResponses)}`);
    log(`media requests: ${mediaResponses.map((r) => `${r.range || "no range"} -> ${r.status}`).join(", ")}`);
    await recordingsPanel.screenshot({ path: path.join(artifacts, "recordings.png") });
  });

  await step("play links: a tampered or moved token is 401 JSON, and never locks the admin out", async () => {
    const url = await recordingsPanel.locator("video").getAttribute("src");
    // A range from the middle, without a login: the bytes on disk.
    const onDisk = fs.readFileSync(path.join(fileConfig().data_dir, "recordings", "cam", played.file));
    const a = Math.floor(onDisk.length / 2), b = a + 999;
    const good = await fetch(origin + url, { headers: { Range: `bytes=${a}-${b}` } });
    check(good.status === 206, `the play link without a login answered ${good.status}`);
    check(good.headers.get("content-range") === `bytes ${a}-${b}/${onDisk.length}`, `Content-Range ${good.headers.get("content-range")}`);
    check(Buffer.from(await good.arrayBuffer()).equals(onDisk.subarray(a, b + 1)), "the ranged bytes differ from the file");
    const last = url.slice(-1);
    const tampered = url.slice(0, -1) + (last === "A" ? "B" : "A");
    const other = (await apiRecordings()).find((s) => s.file !== played.file);
    const moved = url.replace(played.file, other.file);
    for (const [what, u] of [["tampered", tampered], ["another file", moved], ["expiry changed", url.replace(/token=(\d+)/, (m, n) => "token=" + (Number(n) + 3600))]]) {
      for (let i = 0; i < 4; i++) {
        const r = await fetch(origin + u);
        const body = await r.json().catch(() => null);
        check(r.status === 401, `${what}: answered ${r.status}`);
        check(body && body.error && body.error.code === "unauthorized" && body.error.message && "field" in body.error, `${what}: error body ${JSON.stringify(body)}`);
        check(!r.headers.get("www-authenticate"), `${what}: a WWW-Authenticate header would open a login dialog`);
      }
    }
    const del = await fetch(origin + url, { method: "DELETE" });
    check(del.status === 401, `DELETE with a play link answered ${del.status}`);
    // 12 bad links from this address, and the admin login still answers at once.
    check((await fetch(origin + "/api/v1/config", { headers: { Authorization: auth } })).status === 200, "the admin was locked out after bad play links");
  });

  await step("delete a finished segment: confirmed, gone from the list, the API and the disk", async () => {
    const api = await apiRecordings();
    const victim = api.find((s) => !s.recording && s.file !== played.file);
    check(victim, "no second finished segment to delete");
    const row = camRecordings.locator(`li[data-file="${victim.file}"]`);
    const dialogs = [];
    page.once("dialog", (d) => { dialogs.push(d.message()); d.accept(); });
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === "DELETE" && new URL(r.url()).pathname.startsWith("/api/v1/recordings/")),
      row.getByRole("button", { name: /^Delete/ }).click(),
    ]);
    check(dialogs.length === 1 && dialogs[0].includes("cannot be undone"), `confirm dialog: ${JSON.stringify(dialogs)}`);
    check(res.status() === 200, `DELETE answered ${res.status()}`);
    await until("the deleted row is still listed", async () => (await row.count()) === 0, 5000);
    check(!(await apiRecordings()).some((s) => s.file === victim.file), "the API still lists the deleted segment");
    const onDisk = path.join(fileConfig().data_dir, "recordings", "cam", victim.file);
    check(!fs.existsSync(onDisk), `${onDisk} still exists`);
    check(await recordingsPanel.locator("video").count() === 1, "deleting another segment stopped the player");
  });

  await step("delete the segment being written: refused (409) with a message, the row stays", async () => {
    // The segment may finish (4 s) between the list and the click: then it is deleted, which
    // is right too; try again on the new one being written.
    let refused = null;
    for (let i = 0; i < 5 && !refused; i++) {
      await Promise.all([
        page.waitForResponse((r) => r.request().method() === "GET" && new URL(r.url()).pathname === "/api/v1/recordings"),
        page.getByRole("button", { name: "Refresh recordings" }).click(),
      ]);
      await camRecordings.locator("li[data-file]").first().waitFor();
      const row = camRecordings.locator("li[data-file]").first();
      check((await row.locator(".badge.rec").count()) === 1, "the first row is not 'recording now'");
      page.once("dialog", (d) => d.accept());
      const [res] = await Promise.all([
        page.waitForResponse((r) => r.request().method() === "DELETE"),
        row.getByRole("button", { name: /^Delete/ }).click(),
      ]);
      if (res.status() === 409) refused = row;
      else check(res.status() === 200, `DELETE of the newest segment answered ${res.status()}`);
    }
    check(refused, "5 deletes of the segment being written were never refused");
    await until("no message on the refused row", async () => /still being written/.test(await refused.locator(".row-msg").textContent()), 5000);
    check(await refused.isVisible(), "the refused row was removed");
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
      await page.locator("#login-view").getByLabel("Password", { exact: true }).fill("wrong " + i);
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

  await step("the relay's password is nowhere in the page", async () => {
    check(!(await pageDump()).includes(VIEWER.password), "the relay's password is in the page");
  });

  await step("no uncaught errors in the page", async () => {
    check(problems.length === 0, problems.join("\n"));
  });
}

await run(
  {
    profile: "vigint-chromium-",
    viewport: { width: 390, height: 844 },
    artifacts,
    page: () => page,
    failureShot: "failure.png",
    passed: "all page checks passed",
    cleanup: () => publisher && publisher.kill("SIGKILL"),
  },
  main,
);
