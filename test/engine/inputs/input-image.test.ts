import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { IMAGE_INPUT_LIMITS, InvalidRequestError, decodeImage, fileSize, inspectImage, pictureLimitIssue, prepareImage, prepareMask, presetMask } from '../../../engine/index.ts';

const solid = (w: number, h: number, f: (x: number, y: number) => [number, number, number]) => {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(f(x, y), (y * w + x) * 3);
  return sharp(data, { raw: { width: w, height: h, channels: 3 } });
};
const px = (img: { data: Uint8Array; width: number }, x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

describe('prepareImage', () => {
  it('honours EXIF orientation before resizing', async () => {
    // Stored 40x20, left half red, right half blue; orientation 6 = shown rotated 90° clockwise (20x40, red on top).
    const jpeg = await solid(40, 20, (x) => (x < 20 ? [255, 0, 0] : [0, 0, 255])).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const img = await prepareImage(jpeg, 20, 40);
    expect([img.width, img.height]).toEqual([20, 40]);
    const [r1, , b1] = px(img, 10, 5);
    const [r2, , b2] = px(img, 10, 34);
    expect(r1).toBeGreaterThan(200);
    expect(b1).toBeLessThan(60);
    expect(b2).toBeGreaterThan(200);
    expect(r2).toBeLessThan(60);
  });

  it('covers the render size: scales to fill and crops the centre, never stretching', async () => {
    // 300x100: a 100-wide green band in the middle between red and blue thirds.
    const png = await solid(300, 100, (x) => (x < 100 ? [255, 0, 0] : x < 200 ? [0, 255, 0] : [0, 0, 255])).png().toBuffer();
    const img = await prepareImage(png, 64, 64);
    expect([img.width, img.height]).toEqual([64, 64]);
    // The centre crop is exactly the green third.
    for (const [x, y] of [[2, 2], [32, 32], [61, 61]]) expect(px(img, x, y)[1]).toBeGreaterThan(200);
  });

  it('flattens transparency onto white and accepts webp', async () => {
    const webp = await sharp({ create: { width: 16, height: 16, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).webp({ lossless: true }).toBuffer();
    const img = await prepareImage(webp, 16, 16);
    expect(px(img, 8, 8)).toEqual([255, 255, 255]);
  });

  it('says a picture over the byte limit with the one byte formatter (fileSize), exact bytes where both would read the same', () => {
    const KiB = 1024;
    expect(pictureLimitIssue.bytes('from_image', 640 * KiB, 500 * KiB)).toBe('from_image is 640 KiB, more than the 500 KiB limit; use a smaller PNG, JPEG or WebP picture');
    expect(pictureLimitIssue.bytes('from_image', 30 * KiB * KiB, 10 * KiB * KiB)).toBe('from_image is 30 MiB, more than the 10 MiB limit; use a smaller PNG, JPEG or WebP picture');
    expect(pictureLimitIssue.bytes('mask', 10 * KiB * KiB + 1, 10 * KiB * KiB)).toBe(`mask is ${10 * KiB * KiB + 1} bytes, more than the ${10 * KiB * KiB} bytes limit; use a smaller PNG, JPEG or WebP picture`);
  });

  it('refuses other formats, empty, oversized and too many pixels with a message that says what to do', async () => {
    const gif = await solid(8, 8, () => [1, 2, 3]).gif().toBuffer();
    await expect(prepareImage(gif, 8, 8, 'the from_image picture')).rejects.toThrow(/the from_image picture is a GIF file; use a PNG, JPEG or WebP/);
    await expect(prepareImage(new Uint8Array(0), 8, 8)).rejects.toThrow(InvalidRequestError);
    await expect(prepareImage(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 8, 8)).rejects.toThrow(/not a picture that can be read/);
    const png = await solid(100, 100, () => [9, 9, 9]).png().toBuffer();
    await expect(prepareImage(png, 8, 8, 'the picture', { maxPixels: 5000 })).rejects.toThrow(/100x100 \(0\.0 megapixels\), more than the 0\.005-megapixel limit; use a smaller picture/);
    await expect(prepareImage(png, 8, 8, 'the picture', { maxBytes: 10 })).rejects.toThrow(new RegExp(`the picture is ${fileSize(png.length)}, more than the 10 bytes limit; use a smaller`));
    // Callers narrow the engine's limits, never widen them.
    expect(IMAGE_INPUT_LIMITS.maxBytes).toBeGreaterThan(1e6);
  });
});

describe('a damaged (cut-off) picture', () => {
  // Its header reads whole, so it passed inspectImage, and the render's decode failed later with
  // libvips' own words ("vipspng: libpng read error"), naming neither the picture nor its file.
  const gradient = () => solid(64, 48, (x, y) => [x * 4, y * 5, (x * y) % 256]);
  const cut = (b: Buffer) => new Uint8Array(b.subarray(0, Math.floor(b.length / 2)));

  it('is refused when checked (inspectImage), by its label, for PNG and JPEG', async () => {
    const png = await gradient().png().toBuffer();
    const jpeg = await gradient().jpeg({ quality: 95 }).toBuffer();
    expect(await inspectImage(png, 'the picture')).toEqual({ format: 'png', width: 64, height: 48 });
    await expect(inspectImage(cut(png), '--image-a cut.png')).rejects.toThrow(new InvalidRequestError('--image-a cut.png is a damaged or cut-off PNG file; use a whole PNG, JPEG or WebP picture'));
    await expect(inspectImage(cut(jpeg), 'the from_image picture')).rejects.toThrow(new InvalidRequestError('the from_image picture is a damaged or cut-off JPEG file; use a whole PNG, JPEG or WebP picture'));
  });

  it('is refused with the same message where it is decoded (prepareImage, prepareMask, decodeImage)', async () => {
    const png = cut(await gradient().png().toBuffer());
    const message = 'the picture for prompt 1 is a damaged or cut-off PNG file; use a whole PNG, JPEG or WebP picture';
    await expect(prepareImage(png, 16, 16, 'the picture for prompt 1')).rejects.toThrow(new InvalidRequestError(message));
    await expect(prepareMask(png, 16, 16, 'the picture for prompt 1')).rejects.toThrow(new InvalidRequestError(message));
    await expect(decodeImage(png, 'the picture for prompt 1')).rejects.toThrow(new InvalidRequestError(message));
  });
});

describe('decodeImage: the same decode rules, at the picture\'s own size', () => {
  it('honours EXIF orientation and flattens transparency onto white, as prepareImage', async () => {
    const jpeg = await solid(40, 20, (x) => (x < 20 ? [255, 0, 0] : [0, 0, 255])).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const img = await decodeImage(jpeg);
    expect([img.width, img.height]).toEqual([20, 40]);
    expect(px(img, 10, 5)[0]).toBeGreaterThan(200);
    expect(px(img, 10, 34)[2]).toBeGreaterThan(200);
    const webp = await sharp({ create: { width: 16, height: 12, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).webp({ lossless: true }).toBuffer();
    const white = await decodeImage(webp);
    expect([white.width, white.height, white.data.length]).toEqual([16, 12, 16 * 12 * 3]);
    expect(new Set(white.data)).toEqual(new Set([255]));
  });

  it('refuses what prepareImage refuses, in the same words', async () => {
    const gif = await solid(8, 8, () => [1, 2, 3]).gif().toBuffer();
    const png = await solid(100, 100, () => [9, 9, 9]).png().toBuffer();
    const cases: Array<[Uint8Array, { maxPixels?: number; maxBytes?: number } | undefined]> = [
      [gif, undefined],
      [new Uint8Array(0), undefined],
      [new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), undefined],
      [png, { maxPixels: 5000 }],
      [png, { maxBytes: 10 }],
    ];
    for (const [bytes, limits] of cases) {
      const a = await decodeImage(bytes, 'the start picture', limits).catch((e: Error) => e);
      const b = await prepareImage(bytes, 8, 8, 'the start picture', limits).catch((e: Error) => e);
      expect(a).toBeInstanceOf(InvalidRequestError);
      expect((a as Error).message).toBe((b as Error).message);
      expect((a as Error).message).toMatch(/^the start picture /);
    }
    const short = { data: new Uint8Array(10), width: 4, height: 4, channels: 3 as const };
    await expect(decodeImage(short)).rejects.toThrow(/has 10 bytes, too few for 4x4 RGB/);
    await expect(prepareImage(short, 2, 2)).rejects.toThrow(/has 10 bytes, too few for 4x4 RGB/);
  });

  it('prepareImage of a file is the cover resize of decodeImage\'s picture, but lets libvips shrink a JPEG while decoding it', async () => {
    let s = 1;
    const detail = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 26);
    const big = solid(1600, 1200, (x) => [(x * 128) / 1600 + detail(), detail() * 3, 255 - detail()]);
    // PNG has no shrink-on-load: the same chain gives the same pixels either way.
    const png = await big.clone().png().toBuffer();
    expect((await prepareImage(png, 64, 48)).data).toEqual((await prepareImage(await decodeImage(png), 64, 48)).data);
    // A JPEG shrunk while decoding (libvips' shrink-on-load) differs slightly from one
    // decoded at 1600x1200 and then resized: prepareImage must not decode it at full size first.
    const jpeg = await big.clone().jpeg({ quality: 90 }).toBuffer();
    const direct = await prepareImage(jpeg, 64, 48);
    const viaFull = await prepareImage(await decodeImage(jpeg), 64, 48);
    let d = 0;
    for (let i = 0; i < direct.data.length; i++) d += Math.abs(direct.data[i] - viaFull.data[i]);
    expect(d / direct.data.length).toBeGreaterThan(0.05);
    expect(d / direct.data.length).toBeLessThan(3); // the same picture, resized by a different route
  });
});

describe('masks', () => {
  it('reads white as change, black as keep, resized by the same cover rule', async () => {
    const png = await solid(32, 32, (x) => (x < 16 ? [0, 0, 0] : [255, 255, 255])).png().toBuffer();
    const m = await prepareMask(png, 16, 16);
    expect(m.data[5 * 16 + 2]).toBe(0);
    expect(m.data[5 * 16 + 13]).toBe(1);
  });

  it('refuses a mask that keeps or changes everything', async () => {
    const black = await solid(8, 8, () => [0, 0, 0]).png().toBuffer();
    await expect(prepareMask(black, 8, 8)).rejects.toThrow(/all black, so nothing would change/);
  });

  it('has presets: centre, left, right, border', () => {
    const c = presetMask('centre', 8, 8);
    expect(c.data[4 * 8 + 4]).toBe(1);
    expect(c.data[0]).toBe(0);
    const b = presetMask('border', 8, 8);
    expect(Array.from(b.data)).toEqual(Array.from(c.data, (v) => 1 - v));
    expect(presetMask('left', 8, 8).data[3]).toBe(1);
    expect(presetMask('left', 8, 8).data[4]).toBe(0);
    expect(presetMask('right', 8, 8).data[4]).toBe(1);
    expect(() => presetMask('middle' as never, 8, 8)).toThrow(/centre, left, right, border/);
  });
});
