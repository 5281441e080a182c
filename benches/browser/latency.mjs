// Glass-to-glass latency of a browser player, from the capture time that Vigint's test pattern
// burns into every picture (src/source/pattern.rs: a grid of black and white cells at the top
// holding the frame number, the capture time in ms since the epoch and a CRC-8).
//
//   node benches/browser/latency.mjs URL SELECTOR SECONDS [--warmup S] [--serve FILE]
//        [--password PW] [--screenshot PNG]
//
// Opens URL in Debian's headless Chromium (playwright-core), waits for the element SELECTOR
// and measures for SECONDS after a warm-up (default 3 s):
// - a <video>: every frame presented, through requestVideoFrameCallback; the frame is drawn
//   to a canvas there and its code read from the pixels; it is shown at the callback's
//   expectedDisplayTime.
// - a <canvas> (a player that draws pictures itself, such as JSMpeg): its draws are hooked
//   (2D putImageData/drawImage, WebGL drawArrays/drawElements on that canvas), the picture
//   read right after the draw, and it is taken as shown at the next animation frame.
// Latency = when shown (wall clock) - capture time. Browser and server must share the clock
// (the same machine). Options: --serve FILE answers URL with FILE (a static player page on
// the server's own origin, as Vigint opens live sockets only from its own pages); --password
// logs in through the page's own login form (#login-pw) when it shows one; --screenshot
// saves the page at the end.
//
// Prints one JSON line: {"median_ms","p95_ms","mean_ms","min_ms","max_ms","count",
// "undecodable","backwards","skipped","first_picture_ms",...}. `backwards` counts codes not
// after the previous one (should be 0), `skipped` the frame numbers missing between
// consecutive shown pictures (a player dropping frames), `undecodable` pictures without a
// readable code. Exits 1 with the reason when nothing could be measured, 2 on bad arguments.
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS } from "../../tests/browser/chromium.mjs";
import { withFrameCode } from "../../tests/browser/framecode.mjs";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

function usage(why) {
  console.error(`latency.mjs: ${why}`);
  console.error(
    "usage: node latency.mjs URL SELECTOR SECONDS [--warmup S] [--serve FILE] [--password PW] [--screenshot PNG]",
  );
  process.exit(2);
}

const positional = [];
const opts = { warmup: 3 };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith("--")) {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      opts[a.slice(2)] = v;
    } else positional.push(a);
  }
}
const [url, selector, secondsArg] = positional;
if (!url || !selector || !secondsArg) usage("URL, SELECTOR and SECONDS are needed");
const seconds = Number(secondsArg);
const warmup = Number(opts.warmup);
if (!(seconds > 0) || !(warmup >= 0)) usage("SECONDS and --warmup must be numbers");
for (const k of Object.keys(opts)) {
  if (!["warmup", "serve", "password", "screenshot"].includes(k)) usage(`unknown option --${k}`);
}

// Runs in the page before its own scripts, after the code reader (tests/browser/framecode.mjs):
// the canvas hooks.
function probe() {
  const readCode = (source, w, h) => window.__frameCode.readCode(source, w, h);

  const state = (window.__latency = {
    samples: [], // [shownWallMs, frame, captureMs]
    undecodable: [], // shownWallMs of pictures without a readable code
    missedCallbacks: 0,
    draws: 0,
    target: null,
    error: null,
  });
  // The wall clock at `t` on the performance timeline (no drift from timeOrigin).
  const wallAt = (t) => Date.now() + (t - performance.now());
  function record(code, shown) {
    if (code) state.samples.push([shown, code.frame, code.captureMs]);
    else state.undecodable.push(shown);
  }

  // Canvas players: hook the draws onto the target canvas.
  let inHook = false;
  function afterDraw(canvas) {
    if (inHook || !state.target || canvas !== state.target) return;
    inHook = true;
    try {
      state.draws++;
      // Read now: a WebGL canvas keeps its picture only until this task ends.
      const code = readCode(canvas, canvas.width, canvas.height);
      requestAnimationFrame((t) => record(code, wallAt(t)));
    } catch (e) {
      state.error = String(e);
    } finally {
      inHook = false;
    }
  }
  function hook(proto, name) {
    if (!proto || !proto[name]) return;
    const original = proto[name];
    proto[name] = function (...args) {
      const r = original.apply(this, args);
      afterDraw(this.canvas);
      return r;
    };
  }
  for (const n of ["putImageData", "drawImage"]) hook(window.CanvasRenderingContext2D?.prototype, n);
  for (const gl of [window.WebGLRenderingContext, window.WebGL2RenderingContext]) {
    for (const n of ["drawArrays", "drawElements"]) hook(gl?.prototype, n);
  }

  window.__latencyStart = (sel) => {
    const el = document.querySelector(sel);
    if (!el) return `no element matches ${sel}`;
    state.target = el;
    if (el instanceof HTMLVideoElement) {
      if (!el.requestVideoFrameCallback) return "requestVideoFrameCallback is missing";
      let presented = null;
      const onFrame = (_now, md) => {
        try {
          if (presented !== null && md.presentedFrames > presented + 1) {
            state.missedCallbacks += md.presentedFrames - presented - 1;
          }
          presented = md.presentedFrames;
          record(readCode(el, md.width, md.height), wallAt(md.expectedDisplayTime));
        } catch (e) {
          state.error = String(e);
        }
        el.requestVideoFrameCallback(onFrame);
      };
      el.requestVideoFrameCallback(onFrame);
      return "video";
    }
    if (el instanceof HTMLCanvasElement) return "canvas";
    return `${sel} is a <${el.tagName.toLowerCase()}>, not a <video> or <canvas>`;
  };
}

function stats(values) {
  const v = [...values].sort((a, b) => a - b);
  const at = (q) => v[Math.min(v.length - 1, Math.floor(v.length * q))];
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  return {
    median_ms: Math.round(at(0.5)),
    p95_ms: Math.round(at(0.95)),
    mean_ms: Math.round(mean),
    min_ms: Math.round(v[0]),
    max_ms: Math.round(v[v.length - 1]),
  };
}

async function main() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "vigint-latency-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      ...CHROMIUM_ARGS,
      "--autoplay-policy=no-user-gesture-required",
      // A page answered by --serve has no address of its own, so Chromium takes it for a
      // public site and blocks its socket to the loopback server (local network access).
      ...(opts.serve ? ["--disable-features=LocalNetworkAccessChecks,LocalNetworkAccessChecksWebSockets"] : []),
    ],
    viewport: { width: 1280, height: 900 },
    timeout: 30000,
  });
  const problems = [];
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    if (opts.serve) {
      const body = fs.readFileSync(opts.serve);
      const exact = new URL(url);
      await page.route(
        (u) => u.origin === exact.origin && u.pathname === exact.pathname,
        (route) => route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body }),
      );
    }
    await page.addInitScript(withFrameCode(probe));
    const t0 = Date.now();
    await page.goto(url, { waitUntil: "load" });
    if (opts.password !== undefined) {
      const field = page.locator("#login-pw");
      await field.waitFor({ state: "visible", timeout: 15000 });
      await field.fill(opts.password);
      await field.press("Enter");
    }
    await page
      .locator(selector)
      .first()
      .waitFor({ state: "attached", timeout: 30000 })
      .catch(() => {
        throw new Error(`no element matches ${selector} on ${page.url()} within 30 s`);
      });
    const kind = await page.evaluate((s) => window.__latencyStart(s), selector);
    if (kind !== "video" && kind !== "canvas") throw new Error(kind);
    // The first picture, then the warm-up, then the window.
    const firstBy = Date.now() + 30000;
    while ((await page.evaluate(() => window.__latency.samples.length)) === 0) {
      if (Date.now() > firstBy) {
        const s = await page.evaluate(() => {
          const t = window.__latency.target;
          const b = t.buffered;
          const media = t instanceof HTMLVideoElement
            ? { readyState: t.readyState, paused: t.paused, currentTime: t.currentTime, error: t.error?.message,
                buffered: b && b.length ? [b.start(0), b.end(b.length - 1)] : [] }
            : {};
          return { ...window.__latency, target: undefined, media };
        });
        throw new Error(`no readable picture in 30 s (${JSON.stringify(s)}; ${problems.join("; ")})`);
      }
      await page.waitForTimeout(50);
    }
    const firstPicture = Date.now() - t0;
    await page.waitForTimeout(warmup * 1000);
    const from = Date.now();
    await page.waitForTimeout(seconds * 1000);
    const s = await page.evaluate(() => ({ ...window.__latency, target: undefined }));
    let quality = null;
    if (kind === "video") {
      quality = await page.evaluate((sel) => {
        const q = document.querySelector(sel).getVideoPlaybackQuality();
        return { dropped: q.droppedVideoFrames, total: q.totalVideoFrames };
      }, selector);
    }
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot });
    // Only the window's pictures.
    const inWindow = s.samples.filter((x) => x[0] >= from);
    if (inWindow.length < 2) throw new Error(`only ${inWindow.length} readable pictures in the window`);
    let backwards = 0, skipped = 0;
    for (let i = 1; i < inWindow.length; i++) {
      const step = inWindow[i][1] - inWindow[i - 1][1];
      if (step <= 0) backwards++;
      else skipped += step - 1;
    }
    const latencies = inWindow.map(([shown, , capture]) => shown - capture);
    const out = {
      kind,
      ...stats(latencies),
      count: inWindow.length,
      frames_span: inWindow[inWindow.length - 1][1] - inWindow[0][1] + 1,
      undecodable: s.undecodable.filter((t) => t >= from).length,
      backwards,
      skipped,
      missed_callbacks: s.missedCallbacks,
      first_picture_ms: firstPicture,
      seconds: (Date.now() - from) / 1000,
      problems,
    };
    if (quality) out.dropped_by_video = quality.dropped;
    if (s.error) out.error = s.error;
    console.log(JSON.stringify(out));
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`latency.mjs: ${e.message}`);
  process.exit(1);
});
