// The phone page for a viewer (an RTSP user with read on one path) in a real browser
// (Debian's Chromium, headless, driven by playwright-core): a wrong password is refused,
// then the viewer logs in with its name, sees the live status card of its path and no other,
// none of the settings, add-path, users or recordings controls, no source of the path, and
// the page asks for nothing it is refused (no 403); logging out and in as the admin brings
// the settings back. Run by tests/browser.rs against a fresh vigint whose admin password is
// set, with paths cam and door and the user VIEWER (read on cam):
//
//   node tests/browser/viewer_test.mjs BASE_URL ADMIN_PASSWORD VIEWER_NAME VIEWER_PASSWORD ARTIFACT_DIR
//
// Exits 0 when every check passed; otherwise prints the failed step and why, saves
// viewer-failure.png in ARTIFACT_DIR and exits 1 (2 for bad arguments).
import { check, collectProblems, problems, run, sleep, step, until } from "./harness.mjs";
import path from "node:path";

const [base, adminPassword, viewerName, viewerPassword, artifacts] = process.argv.slice(2);
if (!base || !adminPassword || !viewerName || !viewerPassword || !artifacts) {
  console.error("usage: node viewer_test.mjs BASE_URL ADMIN_PASSWORD VIEWER_NAME VIEWER_PASSWORD ARTIFACT_DIR");
  process.exit(2);
}

let context;
let page;
const answers = []; // {method, path, status} of every /api/ answer

async function logIn(user, password) {
  const form = page.locator("#login-view");
  await form.getByLabel("User", { exact: true }).fill(user);
  await form.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
}

async function main(browser) {
  context = browser;
  page = context.pages()[0] || (await context.newPage());
  collectProblems(page);
  page.on("response", (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith("/api/")) answers.push({ method: r.request().method(), path: u.pathname, status: r.status() });
  });

  await step("open the page: the login form asks for a user name", async () => {
    const res = await page.goto(base);
    check(res && res.status() === 200, `GET / answered ${res && res.status()}`);
    await page.getByRole("heading", { name: "Log in" }).waitFor();
    const user = page.locator("#login-view").getByLabel("User", { exact: true });
    check((await user.inputValue()) === "admin", "the user field does not start as admin");
  });

  await step("a viewer's wrong password is refused", async () => {
    await logIn(viewerName, "not " + viewerPassword);
    await page.locator("#login-note", { hasText: "Wrong password." }).waitFor();
    check(await page.locator("#login-view").isVisible(), "the login form went away");
  });

  await step("the viewer logs in: the live card of its path, and only that", async () => {
    answers.length = 0;
    await logIn(viewerName, viewerPassword);
    await page.getByRole("heading", { name: "Status" }).waitFor();
    const card = page.locator('article.card[data-path="cam"]');
    await card.waitFor();
    await until("the cam card never showed Live", async () => (await card.locator(".badge").textContent()) === "Live");
    await until("the cam card never showed a measured fps", async () => /^\d+(\.\d)? fps$/.test(await card.locator('[data-k="fps"]').textContent()));
    check((await page.locator("article.card").count()) === 1, "the viewer sees more than its one card");
    check((await page.locator('article.card[data-path="door"]').count()) === 0, "the viewer sees door");
    const url = await card.locator('[data-k="url"]').textContent();
    check(url.endsWith("/cam") && url.startsWith("rtsp://"), `the card's address is ${url}`);
  });

  await step("no settings, add-path, user or recordings controls for the viewer", async () => {
    for (const id of ["settings-view", "add-path-view", "recordings-view", "config-form", "user-list", "add-path-form", "rec-toggle"]) {
      check(!(await page.locator("#" + id).isVisible()), `#${id} is visible to the viewer`);
    }
    for (const name of ["Save", "Add user", "Add path", "Delete", "Show recordings"]) {
      const visible = await page.getByRole("button", { name }).filter({ visible: true }).count();
      check(visible === 0, `a "${name}" button is visible to the viewer`);
    }
    check(!(await page.locator("main").innerText()).includes("test-pattern"), "the viewer is shown the path's source");
    await page.screenshot({ path: path.join(artifacts, "viewer.png"), fullPage: true });
  });

  await step("the viewer's page asked for nothing it may not have", async () => {
    await sleep(2500); // another status poll
    const refused = answers.filter((a) => a.status === 403 || a.status === 401);
    check(refused.length === 0, `refused: ${JSON.stringify(refused)}`);
    check(answers.some((a) => a.path === "/api/v1/status" && a.status === 200), "no status poll was answered");
    check(!answers.some((a) => a.path === "/api/v1/config"), "the viewer's page asked for the config");
  });

  await step("a reload keeps the viewer logged in, as a viewer", async () => {
    await page.reload();
    await page.locator('article.card[data-path="cam"]').waitFor();
    check(!(await page.locator("#settings-view").isVisible()), "settings are visible after a reload");
  });

  await step("log out, log in as the admin: the settings are back", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("heading", { name: "Log in" }).waitFor();
    await logIn("admin", adminPassword);
    await page.locator("#settings-view").waitFor({ state: "visible" });
    await page.locator('article.card[data-path="door"]').waitFor();
    check(await page.locator("#add-path-view").isVisible(), "add-path is hidden from the admin");
  });

  await step("no uncaught errors in the page", async () => {
    check(problems.length === 0, problems.join("\n"));
  });
}

await run(
  {
    profile: "vigint-chromium-viewer-",
    viewport: { width: 390, height: 844 },
    artifacts,
    page: () => page,
    failureShot: "viewer-failure.png",
    passed: "all viewer page checks passed",
  },
  main,
);
