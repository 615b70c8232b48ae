// Renders the app icons (src/web/static/icons/*.png) from src/web/static/favicon.svg, byte for byte
// the same on every run: `node scripts/make-icons.mjs`. The favicon is three circles, so this reads
// its <circle> elements and rasterizes them itself (16 samples per pixel), with no image tools.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const svg = readFileSync(join(root, 'src/web/static/favicon.svg'), 'utf8');
const viewBox = Number(/viewBox="0 0 (\d+) \d+"/.exec(svg)?.[1]);
const attribute = (element, name) => new RegExp(`\\s${name}="([^"]*)"`).exec(element)?.[1] ?? null;
const circles = [...svg.matchAll(/<circle\b[^>]*>/g)].map(([element]) => ({
  cx: Number(attribute(element, 'cx')),
  cy: Number(attribute(element, 'cy')),
  r: Number(attribute(element, 'r')),
  fill: attribute(element, 'fill'),
  stroke: attribute(element, 'stroke'),
  strokeWidth: Number(attribute(element, 'stroke-width') ?? 1),
}));
if (!(viewBox > 0) || circles.length === 0) throw new Error('favicon.svg is not the three circles this script draws');

const rgb = (hex) => [1, 3, 5].map((at) => Number.parseInt(hex.slice(at, at + 2), 16));
/** The header's colour: the maskable icon's full-bleed background (src/web/static/css/app.css .site-header). */
const BACKGROUND = '#17202e';

/** RGBA pixels of the favicon at `size`, its drawing scaled by `scale` around the centre, on `background` (or transparent). */
function render(size, scale, background) {
  const pixels = Buffer.alloc(size * size * 4);
  const samples = 4;
  const unit = viewBox / size / scale;
  const offset = (viewBox - viewBox / scale) / 2;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let [r, g, b, a] = [0, 0, 0, 0];
      for (let sy = 0; sy < samples; sy++) {
        for (let sx = 0; sx < samples; sx++) {
          const px = offset + (x + (sx + 0.5) / samples) * unit;
          const py = offset + (y + (sy + 0.5) / samples) * unit;
          let colour = background === null ? null : rgb(background);
          for (const circle of circles) {
            const distance = Math.hypot(px - circle.cx, py - circle.cy);
            if (circle.fill !== null && circle.fill !== 'none' && distance <= circle.r) colour = rgb(circle.fill);
            if (circle.stroke !== null && Math.abs(distance - circle.r) <= circle.strokeWidth / 2) colour = rgb(circle.stroke);
          }
          if (colour !== null) {
            r += colour[0];
            g += colour[1];
            b += colour[2];
            a += 255;
          }
        }
      }
      const count = samples * samples;
      const covered = a / 255;
      const at = (y * size + x) * 4;
      pixels[at] = covered === 0 ? 0 : Math.round(r / covered);
      pixels[at + 1] = covered === 0 ? 0 : Math.round(g / covered);
      pixels[at + 2] = covered === 0 ? 0 : Math.round(b / covered);
      pixels[at + 3] = Math.round(a / count);
    }
  }
  return pixels;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buffer) {
  let c = 0xffffffff;
  for (const byte of buffer) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}
function png(size, pixels) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 6, 0, 0, 0], 8);
  const rows = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) pixels.copy(rows, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const out = join(root, 'src/web/static/icons');
for (const [name, size, scale, background] of [
  ['icon-192.png', 192, 1, null],
  ['icon-512.png', 512, 1, null],
  // Maskable: the platform crops to its own shape, keeping only the centre 80 % for sure.
  ['icon-maskable-512.png', 512, 0.72, BACKGROUND],
  ['apple-touch-icon.png', 180, 0.86, BACKGROUND],
]) {
  writeFileSync(join(out, name), png(size, render(size, scale, background)));
}
