// How the browser tests (through harness.mjs) and the browser benches
// (benches/browser/latency.mjs) start Debian's Chromium: headless, no sandbox (root), no GPU, nothing fetched by the
// browser itself. Each passes a fresh --user-data-dir through launchPersistentContext.
export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
