// engine/image.ts: VAE output to 8-bit RGB, the conversion every rendered frame goes through.
import { describe, expect, it } from 'vitest';
import { imagesFromVaeOutput, vaeInputFromImage } from '../../engine/image.ts';

/** The rule spelled out: (x + 1) * 127.5, clamped to [0, 255], rounded half up; NaN -> 0. */
function reference(data: Float32Array, n: number, h: number, w: number): Uint8Array[] {
  const plane = h * w;
  return Array.from({ length: n }, (_, b) => {
    const out = new Uint8Array(plane * 3);
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < plane; p++) {
        const v = (data[b * 3 * plane + c * plane + p] + 1) * 127.5;
        out[p * 3 + c] = Number.isNaN(v) ? 0 : Math.min(255, Math.max(0, Math.round(v)));
      }
    }
    return out;
  });
}

describe('imagesFromVaeOutput', () => {
  it('interleaves the planes, clamps, rounds half up and maps NaN to 0, exactly as the rule says', () => {
    const n = 2;
    const h = 7;
    const w = 9;
    const data = Float32Array.from({ length: n * 3 * h * w }, (_, i) => Math.sin(i * 0.37) * 1.3);
    // Edges: the range's ends, beyond them, exact halves, NaN and infinities.
    const special = [-1, 1, -1.5, 2, NaN, Infinity, -Infinity, 0.5 / 127.5 - 1, 2.5 / 127.5 - 1, 254.5 / 127.5 - 1];
    special.forEach((v, i) => (data[i * 11] = v));
    const images = imagesFromVaeOutput(data, n, h, w);
    expect(images.map((img) => [img.width, img.height, img.channels])).toEqual([[w, h, 3], [w, h, 3]]);
    const want = reference(data, n, h, w);
    images.forEach((img, b) => expect(Buffer.from(img.data).equals(Buffer.from(want[b]))).toBe(true));
  });

  it('round-trips through vaeInputFromImage', () => {
    const img = { data: Uint8Array.from({ length: 5 * 4 * 3 }, (_, i) => (i * 37) % 256), width: 5, height: 4, channels: 3 as const };
    const [back] = imagesFromVaeOutput(vaeInputFromImage(img), 1, 4, 5);
    expect(Buffer.from(back.data).equals(Buffer.from(img.data))).toBe(true);
  });
});
