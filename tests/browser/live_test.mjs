// The phone page's live picture in a real browser (Debian's Chromium, headless, driven by
// playwright-core), against a vigint whose path `cam` is the test pattern with its burned-in
// frame code, the admin password already set. Checks:
//  - the cam card plays through Media Source Extensions (a blob: MediaSource on a muted,
//    inline <video>), its 16:9 box keeps its size while loading, no horizontal scroll at
//    360 px; currentTime advances;
//  - the frame numbers read back from each presented frame (requestVideoFrameCallback,
//    drawImage to a canvas, the code read as src/source/pattern.rs reads it) rise without
//    big gaps; the delay from capture to the screen is printed;
//  - tap: full screen, and back;
//  - the card scrolled out of view closes its WebSocket; back in view it plays again;
//  - throttled (CDP Network.emulateNetworkConditions, which throttles WebSocket frames in
//    this Chromium) until the picture is seconds old, then unthrottled: live again within
//    one key-frame interval plus MARGIN_S;
//  - with MediaSource and ManagedMediaSource removed: the card shows snapshots whose src
//    changes about every second, each decoding to a picture with a rising frame number;
//  - mpegts.js (npm, its dist file inlined into a test page on vigint's origin, nothing
//    from the internet) plays /ws/stream?id=cam with the live link's
//    token: the video advances and the frame numbers rise.
//
//   node tests/browser/live_test.mjs BASE_URL PASSWORD ARTIFACT_DIR WIDTH HEIGHT FPS KEYFRAME_S
//
// Exits 0 when every check passed; otherwise prints the failed step and why, saves
// live-failure.png in ARTIFACT_DIR and exits 1 (2 for bad arguments).
import { check, collectProblems, log, problems, run, setPollInterval, sleep, step, until } from "./harness.mjs";
import { withFrameCode } from "./framecode.mjs";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const [base, password, artifacts, wArg, hArg, fpsArg, keyArg] = process.argv.slice(2);
if (!base || !password || !artifacts || !wArg || !hArg || !fpsArg || !keyArg) {
  console.error("usage: node live_test.mjs BASE_URL PASSWORD ARTIFACT_DIR WIDTH HEIGHT FPS KEYFRAME_S");
  process.exit(2);
}
const WIDTH = Number(wArg), HEIGHT = Number(hArg), FPS = Number(fpsArg), KEYFRAME_S = Number(keyArg);
// After the throttle is lifted: live again within one key-frame interval plus this (the
// backlog in the socket buffers drains, the server skips its laggard to a key frame, the
// page jumps to the newest frame; a loaded 2-core machine adds its share).
const MARGIN_S = 2;
// "Live": the shown frame was captured less than this long ago.
const LIVE_S = 1.0;
const origin = new URL(base).origin;
const here = path.dirname(fileURLToPath(import.meta.url));
// The picture checks poll faster than the page tests.
setPollInterval(100);
const auth = "Basic " + Buffer.from("admin:" + password).toString("base64");

// Runs in every page, after the frame-code reader (framecode.mjs): a watcher that reads the
// code of every frame a <video> presents.
function pageHelpers() {
  const readCode = (source, w, h) => window.__frameCode.readCode(source, w, h);
  // Every presented frame of `video`: {frame, captureMs, at (wall ms), mediaTime}.
  function watch(video, w, h) {
    const seen = [];
    const cb = (now, meta) => {
      const code = readCode(video, w, h);
      seen.push(code ? { ...code, at: Date.now(), mediaTime: meta.mediaTime } : { frame: null, at: Date.now() });
      video.requestVideoFrameCallback(cb);
    };
    video.requestVideoFrameCallback(cb);
    return seen;
  }
  window.__live = { readCode, watch };
}

// Frame numbers read in order: how many, the biggest step, and whether they only rise.
function judge(codes) {
  const frames = codes.filter((c) => c.frame !== null).map((c) => c.frame);
  let maxGap = 0, repeats = 0, backwards = 0;
  for (let i = 1; i < frames.length; i++) {
    const d = frames[i] - frames[i - 1];
    if (d === 0) repeats++;
    if (d < 0) backwards++;
    maxGap = Math.max(maxGap, d);
  }
  return { read: frames.length, unread: codes.length - frames.length, first: frames[0], last: frames[frames.length - 1], maxGap,
    repeats, backwards, rising: !repeats && !backwards };
}
function median(xs) {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

let context;
let page;

async function newPage(name) {
  const p = await context.newPage();
  collectProblems(p, `${name}: `);
  await p.addInitScript(withFrameCode(pageHelpers));
  return p;
}

async function main(browser) {
  context = browser;
  for (const p of context.pages()) await p.close();
  page = await newPage("page");
  const sockets = [];
  page.on("websocket", (ws) => {
    const s = { url: ws.url(), closed: false };
    sockets.push(s);
    ws.on("close", () => { s.closed = true; });
  });

  const card = page.locator('article.card[data-path="cam"]');
  const box = card.locator("button.live");
  const video = box.locator("video");

  await step("H.264 in MSE: this Chromium supports the codecs vigint sends", async () => {
    await page.goto(base);
    const r = await page.evaluate(() => ({
      mse: typeof MediaSource,
      base: MediaSource.isTypeSupported('video/mp4; codecs="avc1.42c01e"'),
      high: MediaSource.isTypeSupported('video/mp4; codecs="avc1.640028"'),
    }));
    check(r.mse === "function" && r.base && r.high, `MSE here: ${JSON.stringify(r)}`);
  });

  let boxBefore;
  await step("log in: the cam card's 16:9 box is there before the picture", async () => {
    await page.locator("#login-view").getByLabel("Password", { exact: true }).fill(password);
    await page.getByRole("button", { name: "Log in" }).click();
    await box.waitFor();
    boxBefore = await box.boundingBox();
    check(Math.abs(boxBefore.height / boxBefore.width - 9 / 16) < 0.02, `the box is ${boxBefore.width}x${boxBefore.height}, not 16:9`);
    const attrs = await video.evaluate((v) => ({ muted: v.muted, autoplay: v.autoplay, inline: v.playsInline, remote: v.disableRemotePlayback }));
    check(attrs.muted && attrs.autoplay && attrs.inline && attrs.remote, `video attributes ${JSON.stringify(attrs)}`);
  });

  await step("the picture plays through MSE and currentTime advances", async () => {
    await until("the video never started", () => video.evaluate((v) => v.readyState >= 2 && !v.paused && v.currentTime > 0), 20000);
    const src = await video.evaluate((v) => v.src);
    check(src.startsWith("blob:"), `the video's src is ${src}, not a MediaSource blob`);
    const a = await video.evaluate((v) => v.currentTime);
    await sleep(2000);
    const b = await video.evaluate((v) => v.currentTime);
    check(b - a > 1.4, `currentTime went from ${a} to ${b} in 2 s`);
    const boxAfter = await box.boundingBox();
    check(Math.abs(boxAfter.height - boxBefore.height) < 1 && Math.abs(boxAfter.width - boxBefore.width) < 1,
      `the box moved from ${JSON.stringify(boxBefore)} to ${JSON.stringify(boxAfter)} when the picture came`);
    const s = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth }));
    check(s.sw <= s.cw, `at 360 px the page is ${s.sw} px wide: horizontal scroll`);
    const liveLink = sockets.find((w) => /\/api\/v1\/paths\/cam\/live\?token=/.test(w.url));
    check(liveLink, `no live WebSocket with a token: ${JSON.stringify(sockets)}`);
    // The card's viewer count includes its own picture (the status refreshes by itself).
    const viewers = page.locator('article.card[data-path="cam"] dd[data-k="clients"]');
    await until("the card never counted its own live picture", async () => /\b1 live\b/.test(await viewers.textContent()), 10000);
  });

  await step("frame numbers read from the presented frames rise without big gaps", async () => {
    await video.evaluate((v, [w, h]) => { window.__seen = window.__live.watch(v, w, h); }, [WIDTH, HEIGHT]);
    await sleep(4000);
    const seen = await page.evaluate(() => window.__seen.slice());
    const j = judge(seen);
    const lag = median(seen.filter((c) => c.frame !== null).map((c) => c.at - c.captureMs));
    log(`  ${seen.length} frames presented in 4 s, ${j.read} codes read (frames ${j.first}..${j.last}), largest step ${j.maxGap}; median capture-to-screen ${lag} ms`);
    check(j.rising, `frame numbers out of order: ${JSON.stringify(seen.map((c) => c.frame))}`);
    check(j.read >= FPS * 4 * 0.6, `only ${j.read} frame codes read in 4 s at ${FPS} fps`);
    check(j.unread <= 2, `${j.unread} presented frames had no readable code`);
    check(j.maxGap <= 5, `a gap of ${j.maxGap} frames: ${JSON.stringify(seen.map((c) => c.frame))}`);
    check(lag < 1500, `the picture is ${lag} ms behind capture`);
  });

  await step("screenshots live-card.png and live-page.png", async () => {
    await card.screenshot({ path: path.join(artifacts, "live-card.png") });
    await page.screenshot({ path: path.join(artifacts, "live-page.png") });
  });

  await step("tap: full screen, tap again: back", async () => {
    await box.click();
    await until("not full screen after a tap", () => page.evaluate(() => document.fullscreenElement?.dataset.live === "cam"), 5000);
    await page.screenshot({ path: path.join(artifacts, "live-fullscreen.png") });
    await box.click();
    await until("still full screen after the second tap", () => page.evaluate(() => !document.fullscreenElement), 5000);
    check(!(await video.evaluate((v) => v.paused)), "the video paused after full screen");
  });

  await step("scrolled out of view the card closes its socket; back in view it plays again", async () => {
    const open = sockets.filter((w) => !w.closed);
    check(open.length === 1, `${open.length} live sockets open, want 1`);
    await page.locator("#add-path-view").scrollIntoViewIfNeeded();
    await until("the socket stayed open with the card out of view", () => open[0].closed, 5000);
    check(await video.evaluate((v) => !v.getAttribute("src")), "the video kept its MediaSource out of view");
    const before = sockets.length;
    await page.locator("#status-h").scrollIntoViewIfNeeded();
    await until("no new socket back in view", () => sockets.length > before, 5000);
    await until("not playing again back in view", () => video.evaluate((v) => v.readyState >= 2 && !v.paused), 15000);
  });

  await step(`throttled, the picture falls behind; unthrottled, live within ${KEYFRAME_S} s + ${MARGIN_S} s`, async () => {
    await video.evaluate((v, [w, h]) => { window.__seen = window.__live.watch(v, w, h); }, [WIDTH, HEIGHT]);
    await until("no frame code read", () => page.evaluate(() => window.__seen.some((c) => c.frame !== null)), 5000);
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    // The stream is about 100 kB/s; 5 kB/s lets it fall far behind.
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 200, downloadThroughput: 5000, uploadThroughput: 5000 });
    const age = () => page.evaluate(() => {
      const read = window.__seen.filter((c) => c.frame !== null);
      const c = read[read.length - 1];
      return Date.now() - c.captureMs;
    });
    await until("throttled, the picture never fell 3 s behind", async () => (await age()) > 3000, 20000);
    const behind = await age();
    const lifted = Date.now();
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    const limit = (KEYFRAME_S + MARGIN_S) * 1000;
    const back = await until(`not live again within ${limit} ms of lifting the throttle`, () => page.evaluate(([since, liveMs]) => {
      const c = window.__seen.find((x) => x.frame !== null && x.at >= since && x.at - x.captureMs < liveMs);
      return c ? c.at - since : 0;
    }, [lifted, LIVE_S * 1000]), limit + 500);
    check(back <= limit, `live again only ${back} ms after lifting the throttle (limit ${limit} ms)`);
    log(`  ${behind} ms behind when the throttle was lifted; live (< ${LIVE_S * 1000} ms behind) ${back} ms later`);
    await sleep(2000);
    const after = await page.evaluate((since) => window.__seen.filter((c) => c.at > since + 500), lifted + back);
    const j = judge(after);
    // A jump to the newest frame may show one frame twice; never an older one.
    log(`  after catching up: ${JSON.stringify(j)}`);
    check(!j.backwards && j.repeats <= 2 && j.maxGap <= 5 && j.read >= FPS, `after catching up: ${JSON.stringify(after.map((c) => c.frame))}`);
    await cdp.detach();
  });

  await step("without MediaSource and ManagedMediaSource: snapshots every second", async () => {
    const snap = await newPage("snapshots");
    await snap.addInitScript((login) => {
      for (const k of ["MediaSource", "ManagedMediaSource", "WebKitMediaSource"]) delete window[k];
      sessionStorage.setItem("vigint.login", login);
    }, auth.slice("Basic ".length));
    await snap.goto(base);
    const img = snap.locator('article.card[data-path="cam"] button.live img');
    await img.waitFor();
    check(await snap.locator('article.card[data-path="cam"] video').count() === 0, "a <video> without MediaSource");
    await until("no snapshot shown", () => img.evaluate((i) => i.complete && i.naturalWidth > 0), 15000);
    const shots = await img.evaluate((i, [w, h]) => new Promise((done) => {
      const got = [];
      const t = Date.now();
      const seen = () => {
        const code = window.__live.readCode(i, w, h);
        got.push({ src: i.currentSrc, at: Date.now() - t, w: i.naturalWidth, frame: code ? code.frame : null });
        if (Date.now() - t > 5000) { i.removeEventListener("load", seen); done(got); }
      };
      i.addEventListener("load", seen);
    }), [WIDTH, HEIGHT]);
    log(`  ${shots.length} snapshots in 5 s at ${shots.map((s) => s.at).join(", ")} ms, ${shots[0] && shots[0].w} px wide, frames ${shots.map((s) => s.frame).join(", ")}`);
    check(shots.length >= 3 && shots.length <= 7, `${shots.length} snapshots in 5 s, want about one a second`);
    check(new Set(shots.map((s) => s.src)).size === shots.length, "a snapshot URL was loaded twice");
    check(shots.every((s) => /\/api\/v1\/paths\/cam\/snapshot\.jpg\?token=/.test(s.src)), `snapshot URLs without a token: ${shots[0].src}`);
    // The server makes a path's snapshot at most once a second; the page asks a second
    // after the last one came, so each is a newer picture (one repeat allowed for a slow ask).
    const frames = shots.map((s) => s.frame);
    check(frames.every((f, i) => f !== null && (i === 0 || f >= frames[i - 1])) && new Set(frames).size >= shots.length - 1,
      `snapshot frame numbers: ${JSON.stringify(frames)}`);
    await snap.locator('article.card[data-path="cam"]').screenshot({ path: path.join(artifacts, "live-card-snapshots.png") });
    await snap.close();
  });

  await step("mpegts.js plays /ws/stream?id=cam with the live link's token (status text set aside by a loader; and its own loader with messages=none)", async () => {
    const r = await fetch(origin + "/api/v1/paths/cam/live-links", { headers: { Authorization: auth } });
    check(r.status === 200, `live-links answered ${r.status}`);
    const links = await r.json();
    check(/^\/ws\/stream\?id=cam&token=/.test(links.stream), `stream link ${links.stream}`);
    const dist = fs.readFileSync(path.join(here, "node_modules/mpegts.js/dist/mpegts.js"), "utf8");
    const ts = await newPage("mpegts");
    // The test page, written by this test into a document of vigint's origin (its JSON
    // /healthz): the socket's Origin is vigint's own, and Chromium's local-network check
    // lets a page from 127.0.0.1 open a socket there (a page.route'd one it blocks).
    await ts.goto(origin + "/healthz");
    await ts.setContent(`<!doctype html><meta charset="utf-8"><video id="v" muted autoplay playsinline width="${WIDTH}" height="${HEIGHT}"></video><script>${dist.replace(/<\/script/gi, "<\\/script")}</script>`);
    check(await ts.evaluate(() => typeof mpegts === "object" && mpegts.isSupported()), "mpegts.js did not load, or says it is not supported here");
    const wsUrl = "ws://" + new URL(origin).host + links.stream;
    await ts.evaluate((wsUrl) => {
      window.__texts = [];
      window.__errors = [];
      // The stream-viewer socket also sends JSON status text, which mpegts.js's own
      // WebSocket loader treats as an error: this loader passes the binary MPEG-TS on and
      // keeps the text.
      class StreamViewerLoader extends mpegts.BaseLoader {
        constructor() { super("stream-viewer-loader"); this._needStash = true; this._ws = null; this._received = 0; }
        static isSupported() { return true; }
        open(dataSource) {
          const ws = (this._ws = new WebSocket(dataSource.url));
          ws.binaryType = "arraybuffer";
          ws.onopen = () => { this._status = mpegts.LoaderStatus.kBuffering; };
          ws.onmessage = (e) => {
            if (typeof e.data === "string") { window.__texts.push(e.data); return; }
            const start = this._received;
            this._received += e.data.byteLength;
            if (this._onDataArrival) this._onDataArrival(e.data, start, this._received);
          };
          ws.onclose = () => { this._status = mpegts.LoaderStatus.kComplete; };
          ws.onerror = () => { this._status = mpegts.LoaderStatus.kError; };
          this._status = mpegts.LoaderStatus.kConnecting;
        }
        abort() { if (this._ws) this._ws.close(); this._ws = null; this._status = mpegts.LoaderStatus.kComplete; }
      }
      const v = document.getElementById("v");
      const player = mpegts.createPlayer({ type: "mpegts", isLive: true, url: wsUrl },
        { enableWorker: false, customLoader: StreamViewerLoader, liveBufferLatencyChasing: true });
      player.on(mpegts.Events.ERROR, (type, detail, info) => window.__errors.push([type, detail, info && info.msg]));
      player.attachMediaElement(v);
      player.load();
      v.play().catch(() => {});
      window.__player = player;
    }, wsUrl);
    const v = ts.locator("#v");
    await until("mpegts.js never played", () => v.evaluate((e) => e.readyState >= 2 && e.currentTime > 0), 20000);
    const a = await v.evaluate((e) => e.currentTime);
    await v.evaluate((e, [w, h]) => { window.__seen = window.__live.watch(e, w, h); }, [WIDTH, HEIGHT]);
    await sleep(3000);
    const b = await v.evaluate((e) => e.currentTime);
    const seen = await ts.evaluate(() => window.__seen.slice());
    const j = judge(seen);
    const texts = await ts.evaluate(() => window.__texts);
    log(`  currentTime ${a.toFixed(2)} -> ${b.toFixed(2)}; ${j.read} codes read (frames ${j.first}..${j.last}), largest step ${j.maxGap}; text messages ${texts.join(" ")}`);
    check(b - a > 2, `mpegts.js: currentTime went from ${a} to ${b} in 3 s`);
    check(j.rising && j.read >= FPS * 3 * 0.6 && j.maxGap <= 5, `mpegts.js frame numbers: ${JSON.stringify(seen.map((c) => c.frame))}`);
    check(texts.some((t) => JSON.parse(t).phase === "playing"), `no "playing" status: ${texts.join(" ")}`);
    const errors = await ts.evaluate(() => window.__errors);
    check(errors.length === 0, `mpegts.js errors: ${JSON.stringify(errors)}`);
    await ts.evaluate(() => window.__player.destroy());

    // mpegts.js as it comes (its own WebSocket loader, which stops at a text message) on
    // the same socket with messages=none: MPEG-TS only.
    await ts.evaluate((wsUrl) => {
      window.__errors = [];
      const v = document.getElementById("v");
      const player = mpegts.createPlayer({ type: "mpegts", isLive: true, url: wsUrl },
        { enableWorker: false, liveBufferLatencyChasing: true });
      player.on(mpegts.Events.ERROR, (type, detail, info) => window.__errors.push([type, detail, info && info.msg]));
      player.attachMediaElement(v);
      player.load();
      v.play().catch(() => {});
      window.__player = player;
    }, wsUrl + "&messages=none");
    await until("stock mpegts.js never played", () => v.evaluate((e) => e.readyState >= 2 && e.currentTime > 0), 20000);
    const c = await v.evaluate((e) => e.currentTime);
    await v.evaluate((e, [w, h]) => { window.__seen = window.__live.watch(e, w, h); }, [WIDTH, HEIGHT]);
    await sleep(3000);
    const d = await v.evaluate((e) => e.currentTime);
    const stock = judge(await ts.evaluate(() => window.__seen.slice()));
    log(`  stock loader, messages=none: currentTime ${c.toFixed(2)} -> ${d.toFixed(2)}; ${stock.read} codes read, largest step ${stock.maxGap}`);
    check(d - c > 2, `stock mpegts.js: currentTime went from ${c} to ${d} in 3 s`);
    check(stock.rising && stock.read >= FPS * 3 * 0.6 && stock.maxGap <= 5, `stock mpegts.js frame numbers: ${stock.read} read, step ${stock.maxGap}`);
    const stockErrors = await ts.evaluate(() => window.__errors);
    check(stockErrors.length === 0, `stock mpegts.js errors: ${JSON.stringify(stockErrors)}`);
    await ts.evaluate(() => window.__player.destroy());
    await ts.close();
  });

  await step("no uncaught errors or console errors in the pages", async () => {
    check(problems.length === 0, problems.join("\n"));
  });
}

await run(
  {
    profile: "vigint-chromium-",
    viewport: { width: 360, height: 740 },
    artifacts,
    page: () => page,
    failureShot: "live-failure.png",
    passed: "all live checks passed",
  },
  main,
);
