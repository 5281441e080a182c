// The test pattern's burned-in frame code (src/source/pattern.rs: a grid of black and white
// cells at the top of every picture holding the frame number, the capture time in ms since
// the epoch and a CRC-8), read in the browser from pixels. Used by tests/browser/live_test.mjs
// and benches/browser/latency.mjs.
//
// `installFrameCode` runs inside the page, not in node: it is passed to the page as source
// text (addInitScript), so it closes over nothing. It sets `window.__frameCode.readCode(source,
// w, h)`: `source` (a <video>, <img> or <canvas>) drawn at w x h, the size the code was
// burned at, and its code read as read_code does (luma from RGB, the threshold from the sync
// cells); {frame, captureMs}, or null when there is no readable code.
export function installFrameCode() {
  const SYNC = [1, 0, 1, 1, 0, 0, 1, 0, 0, 1, 1, 1];
  const DATA_BITS = 88, CELLS = SYNC.length + DATA_BITS, MIN_CONTRAST = 60;
  // As CodeLayout::for_size.
  function layout(w, h) {
    const block = w < 640 ? 8 : 16 * Math.floor(w / 640);
    const cols = Math.min(Math.floor(w / block), 40);
    if (cols < 8) return null;
    const rows = Math.ceil(CELLS / cols);
    return rows * block <= h / 2 ? { block, cols, rows } : null;
  }
  function crc8(bytes) {
    let crc = 0xff;
    for (const b of bytes) {
      crc ^= b;
      for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x1d) & 0xff : (crc << 1) & 0xff;
    }
    return crc ^ 0xff;
  }
  let scratch = null, g = null;
  function readCode(source, w, h) {
    const l = layout(w, h);
    if (!l) return null;
    // Only the band of cells is kept: the source drawn at w x h, cut at the band's bottom.
    const band = l.rows * l.block;
    scratch ||= document.createElement("canvas");
    if (scratch.width !== w || scratch.height !== band) { scratch.width = w; scratch.height = band; }
    g ||= scratch.getContext("2d", { willReadFrequently: true });
    g.drawImage(source, 0, 0, w, h);
    const px = g.getImageData(0, 0, w, band).data;
    const b = l.block, inset = Math.floor(b / 4), span = Math.floor(b / 2);
    const mean = (i) => {
      const x0 = (i % l.cols) * b + inset, y0 = Math.floor(i / l.cols) * b + inset;
      let sum = 0;
      for (let y = y0; y < y0 + span; y++) {
        for (let x = x0; x < x0 + span; x++) {
          const o = (y * w + x) * 4;
          sum += 0.299 * px[o] + 0.587 * px[o + 1] + 0.114 * px[o + 2];
        }
      }
      return sum / (span * span);
    };
    let ones = [0, 0, Infinity], zeros = [0, 0, -Infinity];
    SYNC.forEach((bit, i) => {
      const m = mean(i);
      if (bit) ones = [ones[0] + m, ones[1] + 1, Math.min(ones[2], m)];
      else zeros = [zeros[0] + m, zeros[1] + 1, Math.max(zeros[2], m)];
    });
    if (ones[2] < zeros[2] + MIN_CONTRAST) return null;
    const threshold = (ones[0] / ones[1] + zeros[0] / zeros[1]) / 2;
    const bytes = new Array(11).fill(0);
    for (let i = 0; i < DATA_BITS; i++) if (mean(SYNC.length + i) > threshold) bytes[i >> 3] |= 0x80 >> (i & 7);
    if (crc8(bytes.slice(0, 10)) !== bytes[10]) return null;
    const frame = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
    let captureMs = 0;
    for (let i = 4; i < 10; i++) captureMs = captureMs * 256 + bytes[i];
    return { frame, captureMs };
  }
  window.__frameCode = { readCode };
}

// An init script (page.addInitScript's {content}) that installs the reader, then runs `fn`
// (another self-contained page function, which may use window.__frameCode): one script, so
// the reader is there first.
export function withFrameCode(fn) {
  return { content: `(${installFrameCode})();\n(${fn})();` };
}
