/** Images as the engine hands them around: packed RGB bytes, row-major, no alpha. */
import type { Sharp, SharpOptions } from 'sharp';

/**
 * sharp is loaded on first use, not at import: rendering itself never needs it, so a bundled
 * benchmark can run on a GPU host that only has onnxruntime-node.
 */
export async function sharpOf(input?: Buffer | Uint8Array | string, options?: SharpOptions): Promise<Sharp> {
  const { default: sharp } = await import('sharp');
  return sharp(input, options);
}

const raw = (img: RawImage) => sharpOf(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } });

export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 3;
}

/**
 * A pixel value as a byte: clamped to [0, 255], rounded half up, NaN -> 0. (v + 0.5) | 0 is
 * Math.round for 0 < v < 255 at a fraction of its cost; it runs once per output byte.
 */
export function toByte(v: number): number {
  return v <= 0 ? 0 : v >= 255 ? 255 : (v + 0.5) | 0;
}

/** VAE output (N x 3 x H x W floats in [-1, 1]) -> packed 8-bit RGB images. */
export function imagesFromVaeOutput(data: Float32Array, n: number, height: number, width: number): RawImage[] {
  const plane = height * width;
  const out: RawImage[] = [];
  for (let b = 0; b < n; b++) {
    const rgb = new Uint8Array(plane * 3);
    const base = b * 3 * plane;
    // One pass over the output, channels interleaved: this runs for every frame of a render.
    const r = base;
    const g = base + plane;
    const bl = base + 2 * plane;
    for (let p = 0, o = 0; p < plane; p++, o += 3) {
      rgb[o] = toByte((data[r + p] + 1) * 127.5);
      rgb[o + 1] = toByte((data[g + p] + 1) * 127.5);
      rgb[o + 2] = toByte((data[bl + p] + 1) * 127.5);
    }
    out.push({ data: rgb, width, height, channels: 3 });
  }
  return out;
}

/** Packed RGB -> N x 3 x H x W floats in [-1, 1] (VAE encoder input). */
export function vaeInputFromImage(img: RawImage): Float32Array {
  const plane = img.width * img.height;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) out[c * plane + p] = img.data[p * 3 + c] / 127.5 - 1;
  }
  return out;
}

export async function encodePng(img: RawImage): Promise<Buffer> {
  return (await raw(img)).png().toBuffer();
}

export async function savePng(img: RawImage, path: string): Promise<void> {
  await (await raw(img)).png().toFile(path);
}

/** Small preview (e.g. for progress messages), longest side `size` pixels, as JPEG. */
export async function previewJpeg(img: RawImage, size = 128): Promise<Buffer> {
  return (await raw(img))
    .resize(size, size, { fit: 'inside' })
    .jpeg({ quality: 70 })
    .toBuffer();
}
