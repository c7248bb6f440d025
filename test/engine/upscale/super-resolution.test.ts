/**
 * Super-resolution on ONNX Runtime with real trained weights (esrgan-slim, converted on first use):
 * tiles blend without seams, memory stays bounded by the tile size, batching changes nothing, and an
 * upscaled video keeps its frame count and does not flicker more than its source.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { join } from 'node:path';
import {
  SuperResolutionUpscaler,
  upscaleTiled,
  planTiles,
  encodeVideo,
  decodeVideoFrames,
  probeVideo,
  upscaleVideo,
  type RawImage,
} from '../../../engine/index.ts';
import { ensureSuperResolutionModel } from '../../../models/esrgan/catalog.ts';

const CROP = join(import.meta.dirname, '../../fixtures/photos/chelsea-crop.png');
let up: SuperResolutionUpscaler;
let photo: RawImage;

async function loadRaw(file: string): Promise<RawImage> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height, channels: 3 };
}

function crop(img: RawImage, x0: number, y0: number, w: number, h: number): RawImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) data.set(img.data.subarray(((y0 + y) * img.width + x0) * 3, ((y0 + y) * img.width + x0 + w) * 3), y * w * 3);
  return { data, width: w, height: h, channels: 3 };
}

/** Mean absolute difference per column (0..255 units). */
function columnDiffs(a: RawImage, b: RawImage): number[] {
  const cols = new Array(a.width).fill(0);
  for (let y = 0; y < a.height; y++)
    for (let x = 0; x < a.width; x++)
      for (let c = 0; c < 3; c++) {
        const i = (y * a.width + x) * 3 + c;
        cols[x] += Math.abs(a.data[i] - b.data[i]) / (3 * a.height);
      }
  return cols;
}

function meanAbs(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

beforeAll(async () => {
  up = await SuperResolutionUpscaler.load(await ensureSuperResolutionModel('esrgan-slim', 2), { threads: 2 });
  photo = await loadRaw(CROP);
});
afterAll(async () => {
  await up?.release();
});

describe('tiled super-resolution', () => {
  it('matches the whole-image result, with no seam at the tile boundaries', async () => {
    const whole = await up.upscaleImage(photo, { tile: 256 });
    expect(whole.width).toBe(256);
    expect(whole.height).toBe(192);
    const grid = planTiles(photo.width, photo.height, up.manifest.receptiveRadius, { tile: 48 });
    expect(grid.xs.length * grid.ys.length).toBeGreaterThan(4);
    const tiled = await up.upscaleImage(photo, { tile: 48 });
    const cols = columnDiffs(tiled, whole);
    // Away from and at the seams alike the tiles reproduce the whole-image pixels to within a level.
    expect(meanAbs(tiled.data, whole.data)).toBeLessThan(0.25);
    expect(Math.max(...cols)).toBeLessThan(1);

    // The check is sensitive: tiles butted together without overlap or feathering leave visible seams.
    const naive = await upscaleTiled(photo, 2, 0, (x, n, h, w) => up.runTiles(x, n, h, w), { tile: 48, overlap: 1, margin: 0 });
    const naiveCols = columnDiffs(naive, whole);
    expect(Math.max(...naiveCols)).toBeGreaterThan(3 * Math.max(...cols));
  });

  it('never runs the network on more than one batch of tiles (memory bounded by the tile size)', async () => {
    const seen: number[][] = [];
    const out = await upscaleTiled(
      photo,
      2,
      up.manifest.receptiveRadius,
      async (x, n, h, w) => {
        seen.push([n, h, w]);
        return up.runTiles(x, n, h, w);
      },
      { tile: 40, batch: 3 },
    );
    expect(out.width).toBe(256);
    for (const [n, h, w] of seen) {
      expect(n).toBeLessThanOrEqual(3);
      expect(h).toBe(40);
      expect(w).toBe(40);
    }
    // Batched tiles give the same picture as one tile per call.
    const single = await up.upscaleImage(photo, { tile: 40, batch: 1 });
    let maxDiff = 0;
    for (let i = 0; i < out.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(out.data[i] - single.data[i]));
    expect(maxDiff).toBeLessThanOrEqual(1);
  });

  it('handles images smaller than a tile and odd sizes', async () => {
    const small = crop(photo, 10, 10, 13, 7);
    const out = await up.upscaleImage(small);
    expect([out.width, out.height]).toEqual([26, 14]);
  });
});

describe('video', () => {
  it('upscales every frame and does not flicker more than the source', async () => {
    // A still shot (6 frames) and then a slow pan (6 frames) over the photo, 64x48.
    const frames: RawImage[] = [];
    for (let k = 0; k < 12; k++) frames.push(crop(photo, 20 + Math.max(0, k - 5) * 2, 20, 64, 48));
    const src = await encodeVideo(frames, { format: 'mp4', fps: 12, width: 64, height: 48, crf: 16 });
    const result = await upscaleVideo(up, src.bytes, { crf: 16 });
    const probe = await probeVideo(result.bytes);
    expect([probe.width, probe.height, probe.frames]).toEqual([128, 96, 12]);
    expect(result.scale).toBe(2);

    // Frame-to-frame differences, measured at the source size.
    const srcFrames = await decodeVideoFrames(src.bytes, 64, 48);
    const upFrames = await decodeVideoFrames(result.bytes, 64, 48);
    expect(upFrames.length).toBe(12);
    const diffs = (fs: RawImage[]) => fs.slice(1).map((f, i) => meanAbs(f.data, fs[i].data));
    const dSrc = diffs(srcFrames);
    const dUp = diffs(upFrames);
    for (let i = 0; i < dSrc.length; i++) expect(dUp[i]).toBeLessThan(dSrc[i] * 1.25 + 0.5);
    // During the still shot the upscaled frames stay still.
    expect(Math.max(...dUp.slice(0, 5))).toBeLessThan(0.75);
    // ... and the upscaled video shows the same pictures as the source.
    expect(meanAbs(upFrames[8].data, srcFrames[8].data)).toBeLessThan(6);
  });
});
