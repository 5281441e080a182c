// The design the stream-viewer API comes from, as benches/live_figures.rs measures it next to
// Vigint's live view: node-rtsp-stream (npm) runs the system ffmpeg to turn an RTSP stream
// into MPEG-1 video in MPEG-TS, sent over a WebSocket to JSMpeg in the page.
//
//   node benches/browser/jsmpeg_peer.mjs RTSP_URL HTTP_PORT WS_PORT [KBPS]
//
// Serves the player page (jsmpeg_player.html, then PAGE?ws=WS_PORT) and JSMpeg's script on
// http://127.0.0.1:HTTP_PORT/, and node-rtsp-stream's socket on WS_PORT (node-rtsp-stream
// takes no address: it listens on every interface). ffmpeg encodes at KBPS (default 2000;
// ffmpeg's own default of 200 kbit/s blurs 720p past reading) without B-frames, as JSMpeg
// asks. Prints "ready" once ffmpeg's first bytes came. SIGTERM or SIGINT stop ffmpeg too;
// killed outright, ffmpeg ends at its next write to the closed pipe.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Stream from "node-rtsp-stream";

const [rtspUrl, httpPort, wsPort, kbps = "2000"] = process.argv.slice(2);
if (!rtspUrl || !httpPort || !wsPort) {
  console.error("usage: node jsmpeg_peer.mjs RTSP_URL HTTP_PORT WS_PORT [KBPS]");
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const files = {
  "/": ["text/html; charset=utf-8", path.join(here, "jsmpeg_player.html")],
  "/jsmpeg.js": [
    "text/javascript",
    path.join(here, "node_modules/@cycjimmy/jsmpeg-player/dist/jsmpeg-player.umd.min.js"),
  ],
};

const stream = new Stream({
  name: "bench",
  streamUrl: rtspUrl,
  wsPort: Number(wsPort),
  // Sizes given: node-rtsp-stream would otherwise read them from ffmpeg's log.
  width: 1280,
  height: 720,
  ffmpegOptions: { "-b:v": `${kbps}k`, "-bf": "0", "-loglevel": "error", "-nostats": "" },
});
stream.once("camdata", () => console.log("ready"));
stream.on("exitWithError", () => {
  console.error("jsmpeg_peer: ffmpeg failed");
  process.exit(1);
});

const server = http.createServer((req, res) => {
  const pathname = new URL(req.url, "http://x").pathname;
  const file = files[pathname];
  if (pathname === "/favicon.ico") {
    res.writeHead(204).end();
    return;
  }
  if (!file) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "Content-Type": file[0], "Cache-Control": "no-store" });
  fs.createReadStream(file[1]).pipe(res);
});
server.listen(Number(httpPort), "127.0.0.1");

function stop() {
  try {
    stream.stop();
  } catch {
    // already stopped
  }
  server.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
