// What the browser tests (page_test.mjs, live_test.mjs, viewer_test.mjs) share: the named
// steps and their log, checks, polling, the page errors collected, Chromium started in a
// fresh profile (with chromium.mjs's flags) and the ending (a failure screenshot, the browser
// and profile cleaned up, the exit code). One test per process: the state is the module's.
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS } from "./chromium.mjs";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

let current = "start";
const t0 = Date.now();
let pollMs = 200;
// Uncaught page errors and console errors, from every page given to collectProblems.
export const problems = [];

export function log(text) {
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);
}
export async function step(name, fn) {
  current = name;
  log(name);
  return fn();
}
export function check(cond, what) {
  if (!cond) throw new Error(what);
}
export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
// How often `until` asks again (200 ms unless a test sets it).
export function setPollInterval(ms) {
  pollMs = ms;
}
// Polls `fn` until it returns a truthy value; fails with `what` and the last value.
export async function until(what, fn, ms = 15000) {
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
    await sleep(pollMs);
  }
}

// Uncaught errors and console errors of `page` go to `problems`, after `prefix`. The browser
// logs every 4xx answer ("Failed to load resource"); the pages expect some.
export function collectProblems(page, prefix = "") {
  page.on("pageerror", (e) => problems.push(`${prefix}uncaught: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`${prefix}console: ${m.text()}`);
  });
}

// Runs the test: `main(context)` gets the browser context after the step "start Chromium" (a
// fresh profile whose directory name starts with `profile`, a `viewport`-sized window, 10 s
// default timeout). When a step fails, `page()` is saved as ARTIFACTS/`failureShot`.
// `cleanup` runs before the browser closes. Exits 0 after "PASS: `passed`", or 1 with the
// failed step and the page errors.
export async function run({ profile, viewport, artifacts, page, failureShot, passed, cleanup }, main) {
  fs.mkdirSync(artifacts, { recursive: true });
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), profile));
  let context = null;
  let failed = null;
  try {
    context = await step("start Chromium", () =>
      chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        viewport,
        timeout: 30000,
      }),
    );
    context.setDefaultTimeout(10000);
    await main(context);
  } catch (e) {
    failed = e;
  }
  const shown = failed && page && page();
  if (shown) {
    try {
      await shown.screenshot({ path: path.join(artifacts, failureShot), fullPage: true });
    } catch (e) {
      // The browser may be gone; the message below still says what failed.
    }
  }
  if (cleanup) cleanup();
  try {
    if (context) await context.close();
  } catch (e) {
    // Closing a crashed browser can fail; nothing else to clean up but the profile.
  }
  fs.rmSync(userDataDir, { recursive: true, force: true });
  if (failed) {
    console.error(`FAIL at step "${current}": ${failed.message}`);
    if (problems.length) console.error("page errors:\n  " + problems.join("\n  "));
    console.error(`artifacts (${failureShot}): ${artifacts}`);
    process.exit(1);
  }
  log(`PASS: ${passed}; screenshots in ${artifacts}`);
  process.exit(0);
}
