/**
 * CLIPImageProcessor's resize + centre crop computes only the part of Pillow's resize that survives
 * the crop (resizeLikePillow's region): the same uint8 values as resizing the whole picture and
 * cropping it (checked against that full path here, and against Pillow itself in
 * clip-reference.test.ts), at the cost of the crop, so a very thin picture (4000x1, whose resize
 * is 896000x224) is as cheap as any other.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { decodeImage, type RawImage } from '../../../engine/index.ts';
import {
  PIL_RESAMPLE_FILTERS,
  clipPixelValues,
  clipProcessedImage,
  clipResizeSize,
  readClipImageProcessor,
  resizeLikePillow,
  type ClipImageProcessor,
} from '../../../engine/variation/clip-image.ts';
import { testModelDir } from '../../../models/paths.ts';
import { noiseImage } from '../../helpers/images.ts';

/** The variation test model's processor: CLIP's (shortest side 224, bicubic, 224x224 crop). */
const clip = readClipImageProcessor(JSON.parse(readFileSync(`${testModelDir('variation')}/feature_extractor/preprocessor_config.json`, 'utf8')));

function picture(width: number, height: number, f: (x: number, y: number) => [number, number, number]): RawImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(f(x, y), (y * width + x) * 3);
  return { data, width, height, channels: 3 };
}

/** numpy's center_crop of a whole picture (zeros where it is smaller than the crop): the path before. */
function centreCrop(img: RawImage, width: number, height: number): RawImage {
  const top = Math.floor((img.height - height) / 2);
  const left = Math.floor((img.width - width) / 2);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [sx, sy] = [x + left, y + top];
      if (sx < 0 || sy < 0 || sx >= img.width || sy >= img.height) continue;
      for (let c = 0; c < 3; c++) out[(y * width + x) * 3 + c] = img.data[(sy * img.width + sx) * 3 + c];
    }
  }
  return { data: out, width, height, channels: 3 };
}

/** The processed picture the old way: Pillow's resize of the whole picture, then the crop. */
function fullResizeThenCrop(img: RawImage, p: ClipImageProcessor): RawImage {
  const [rw, rh] = clipResizeSize(img.width, img.height, p);
  const resized = resizeLikePillow(img, rw, rh, p.filter);
  expect([resized.width, resized.height]).toEqual([rw, rh]);
  return centreCrop(resized, p.crop!.width, p.crop!.height);
}

/** The first index where two pictures differ, or -1 (a readable failure instead of 150528 values). */
const firstDifference = (a: RawImage, b: RawImage) => {
  expect([a.width, a.height]).toEqual([b.width, b.height]);
  return a.data.findIndex((v, i) => v !== b.data[i]);
};

const column = (img: RawImage, x: number, c: number) => Array.from({ length: img.height }, (_, y) => img.data[(y * img.width + x) * 3 + c]);
const row = (img: RawImage, y: number, c: number) => Array.from({ length: img.width }, (_, x) => img.data[(y * img.width + x) * 3 + c]);

describe('resizeLikePillow with a region', () => {
  it('gives the region of the whole resize to the bit, every filter, up, down and one direction only', () => {
    const src = noiseImage(37, 23);
    const sizes: Array<[number, number]> = [[50, 11], [13, 40], [37, 60], [80, 23], [37, 23], [9, 5], [120, 90]];
    for (const filter of Object.values(PIL_RESAMPLE_FILTERS)) {
      for (const [w, h] of sizes) {
        const whole = resizeLikePillow(src, w, h, filter);
        const regions = [
          { left: 0, top: 0, width: w, height: h },
          { left: Math.floor(w / 3), top: Math.floor(h / 4), width: Math.ceil(w / 2), height: Math.ceil(h / 2) },
          { left: w - 1, top: h - 1, width: 1, height: 1 },
          { left: 0, top: h - 2, width: w, height: 2 },
        ];
        for (const r of regions) {
          const part = resizeLikePillow(src, w, h, filter, r);
          expect([part.width, part.height]).toEqual([r.width, r.height]);
          for (let y = 0; y < r.height; y++) {
            const got = Array.from(part.data.subarray(y * r.width * 3, (y + 1) * r.width * 3));
            const exp = Array.from(whole.data.subarray(((r.top + y) * w + r.left) * 3, ((r.top + y) * w + r.left + r.width) * 3));
            expect(got, `${filter} ${w}x${h} region ${JSON.stringify(r)} row ${y}`).toEqual(exp);
          }
        }
      }
    }
  });

  it('refuses a region outside the resize', () => {
    const src = noiseImage(8, 8);
    expect(() => resizeLikePillow(src, 10, 10, 'bicubic', { left: 5, top: 0, width: 6, height: 2 })).toThrow(/not inside the 10x10 resize/);
    expect(() => resizeLikePillow(src, 10, 10, 'bicubic', { left: 0, top: 0, width: 0, height: 2 })).toThrow(RangeError);
    expect(() => resizeLikePillow(src, 10, 10, 'bicubic', { left: -1, top: 0, width: 2, height: 2 })).toThrow(RangeError);
  });
});

describe('clipProcessedImage computes only the crop', () => {
  it('matches the whole resize then the crop to the bit on thin pictures (600x7, 7x600) and normal ones', () => {
    for (const [w, h] of [[600, 7], [7, 600], [451, 300], [300, 451], [224, 224], [225, 1000], [100, 50]] as const) {
      const img = noiseImage(w, h, w * 1000 + h);
      const got = clipProcessedImage(img, clip);
      expect([got.width, got.height]).toEqual([224, 224]);
      expect(firstDifference(got, fullResizeThenCrop(img, clip)), `${w}x${h}`).toBe(-1);
    }
    // Another filter and an exact resize smaller than the crop (zeros around it), as the full path.
    const img = noiseImage(90, 61, 7);
    for (const filter of Object.values(PIL_RESAMPLE_FILTERS)) {
      for (const resize of [{ width: 100, height: 300 }, { width: 300, height: 100 }, { width: 150, height: 150 }, { shortestEdge: 230 }]) {
        const p: ClipImageProcessor = { ...clip, filter, resize };
        expect(firstDifference(clipProcessedImage(img, p), fullResizeThenCrop(img, p)), `${filter} ${JSON.stringify(resize)}`).toBe(-1);
      }
    }
    const small = clipProcessedImage(img, { ...clip, resize: { width: 100, height: 300 } });
    expect(Array.from(small.data.subarray(0, 3))).toEqual([0, 0, 0]); // left of the 100-wide picture
  });

  it('processes a 4000x1 picture (a 896000x224 resize): the two input pixels at its centre, interpolated', () => {
    // Red climbs by one level per column (x mod 256), green falls, blue is flat.
    const img = picture(4000, 1, (x) => [x % 256, 255 - (x % 256), 40]);
    const got = clipProcessedImage(img, clip);
    expect([got.width, got.height]).toEqual([224, 224]);
    // The crop is columns 447888..448111 of 896000: input x from 1999.5 to 2000.5, between pixels
    // 1999 (red 207) and 2000 (red 208); one input row, so every output row is the same.
    const red = row(got, 0, 0);
    expect(Math.min(...red)).toBe(207);
    expect(Math.max(...red)).toBe(208);
    for (let x = 1; x < 224; x++) expect(red[x]).toBeGreaterThanOrEqual(red[x - 1]);
    expect(row(got, 0, 1)).toEqual(red.map((v) => 255 - v));
    expect(row(got, 0, 2)).toEqual(new Array(224).fill(40));
    for (const y of [1, 111, 223]) for (const c of [0, 1, 2]) expect(row(got, y, c)).toEqual(row(got, 0, c));
    // Overlapping regions of the same resize agree (each column depends on its own index only).
    const [rw, rh] = clipResizeSize(4000, 1, clip);
    expect([rw, rh]).toEqual([896000, 224]);
    const wider = resizeLikePillow(img, rw, rh, 'bicubic', { left: 447888 - 50, top: 0, width: 324, height: 224 });
    expect(centreCrop(wider, 224, 224).data).toEqual(got.data);
  });

  it('processes a 1x4000 picture (a 224x896000 resize) the same way turned', () => {
    const img = picture(1, 4000, (_, y) => [y % 256, 255 - (y % 256), 40]);
    const got = clipProcessedImage(img, clip);
    expect([got.width, got.height]).toEqual([224, 224]);
    const red = column(got, 0, 0);
    expect(Math.min(...red)).toBe(207);
    expect(Math.max(...red)).toBe(208);
    for (let y = 1; y < 224; y++) expect(red[y]).toBeGreaterThanOrEqual(red[y - 1]);
    expect(column(got, 0, 1)).toEqual(red.map((v) => 255 - v));
    for (const x of [1, 111, 223]) for (const c of [0, 1, 2]) expect(column(got, x, c)).toEqual(column(got, 0, c));
    // It is the 4000x1 picture's result transposed.
    const wide = clipProcessedImage(picture(4000, 1, (x) => [x % 256, 255 - (x % 256), 40]), clip);
    for (let y = 0; y < 224; y += 37) for (let x = 0; x < 224; x += 29) expect(got.data[(y * 224 + x) * 3]).toBe(wide.data[(x * 224 + y) * 3]);
  });

  it('takes a 40000x1 PNG (a few hundred bytes; its resize would be 6e9 bytes) from the file to pixel_values', async () => {
    const png = await sharp(Buffer.from(picture(40000, 1, (x) => [x % 256, 90, 200]).data), { raw: { width: 40000, height: 1, channels: 3 } }).png().toBuffer();
    expect(png.length).toBeLessThan(2000);
    for (const bytes of [png, await sharp(png).rotate(90).png().toBuffer()]) {
      const img = await decodeImage(bytes);
      const px = clipPixelValues(img, clip);
      expect(px.length).toBe(3 * 224 * 224);
      expect(px.every(Number.isFinite)).toBe(true);
      // Green and blue are flat: their normalised values are the flat level's everywhere.
      const plane = 224 * 224;
      expect(new Set(px.subarray(plane, 2 * plane)).size).toBe(1);
      expect(px[plane]).toBeCloseTo((90 / 255 - clip.normalize!.mean[1]) / clip.normalize!.std[1], 5);
      expect(px[2 * plane]).toBeCloseTo((200 / 255 - clip.normalize!.mean[2]) / clip.normalize!.std[2], 5);
    }
  });
});
