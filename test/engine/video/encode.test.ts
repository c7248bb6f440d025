// VideoTooLargeError says its sizes with the engine's one formatter (fileSize), as the farm and
// the bot say theirs; exact bytes when the two sizes would read the same.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { VideoTooLargeError } from '../../../engine/index.ts';
import { decodeVideoFrames } from '../../../engine/video/decode.ts';
import { encodeVideo } from '../../../engine/video/encode.ts';
import { resolveFfmpeg, resolveFfprobe } from '../../../engine/video/ffmpeg-path.ts';
import type { RawImage } from '../../../engine/video/frames.ts';

const run = promisify(execFile);

const MiB = 1024 * 1024;
const attempt = (sizeBytes: number) => ({ width: 320, height: 240, sizeBytes });

describe('VideoTooLargeError', () => {
  it('names the limit and the smallest attempt as fileSize writes them', () => {
    const error = new VideoTooLargeError('mp4', 10 * MiB, 12.34 * MiB, [attempt(12.34 * MiB)]);
    expect(error.message).toBe('Could not fit the mp4 under 10 MiB: the smallest attempt was 12.3 MiB at 320x240; use fewer frames, a smaller size or another format.');
  });

  it('gives exact bytes when both would read the same', () => {
    const error = new VideoTooLargeError('gif', 10 * MiB, 10 * MiB + 4000, [attempt(10 * MiB + 4000)]);
    expect(error.message).toBe(`Could not fit the gif under ${10 * MiB} bytes: the smallest attempt was ${10 * MiB + 4000} bytes at 320x240; use fewer frames, a smaller size or another format.`);
  });
});

// What the encoder writes, decoded again as a player shows it, against the frames it was given.
describe('encoded frames against their source', () => {
  const rgb = (width: number, height: number, pixel: (x: number, y: number) => [number, number, number]): RawImage => {
    const data = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(pixel(x, y), (y * width + x) * 3);
    return { data, width, height, channels: 3 };
  };
  const mad = (a: RawImage, b: RawImage) => a.data.reduce((s, v, i) => s + Math.abs(v - b.data[i]), 0) / a.data.length;
  /** The file's colour tags, as ffprobe reads them. */
  const colourTags = async (bytes: Buffer) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'blendfarm-colour-'));
    try {
      const file = path.join(dir, 'v');
      await writeFile(file, bytes);
      const { stdout } = await run(resolveFfprobe().path, ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=color_space,color_primaries,color_transfer,color_range', '-of', 'json', file]);
      return (JSON.parse(stdout) as { streams: Record<string, string>[] }).streams[0];
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  /** The first frame as a player shows it: the YUV read with the file's matrix, BT.709 when untagged (browsers, for HD). */
  const playerFrame = async (bytes: Buffer, width: number, height: number, matrix: string) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'blendfarm-colour-'));
    try {
      const file = path.join(dir, 'v');
      await writeFile(file, bytes);
      const { stdout } = await run(resolveFfmpeg().path, ['-v', 'error', '-i', file, '-frames:v', '1', '-vf', `scale=${width}:${height}:in_color_matrix=${matrix}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], { encoding: 'buffer' });
      return { data: new Uint8Array(stdout), width, height, channels: 3 } as RawImage;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  it('webp: a slow crossfade stays close to its frames (libwebp kept pixels that changed little, and drifted)', async () => {
    const W = 96;
    const N = 72;
    const a = (x: number, y: number) => [40 + (120 * x) / W, 60 + (100 * y) / W, 200 - (80 * (x + y)) / (2 * W)];
    const b = (x: number, y: number) => [220 - (150 * y) / W, 90 + 80 * Math.sin(x / 9) ** 2, 50 + (140 * x) / W];
    const frames = Array.from({ length: N }, (_, i) =>
      rgb(W, W, (x, y) => {
        const [p, q] = [a(x, y), b(x, y)];
        return [0, 1, 2].map((c) => Math.round(p[c] + ((q[c] - p[c]) * i) / (N - 1))) as [number, number, number];
      }),
    );
    const video = await encodeVideo(frames, { format: 'webp', fps: 24, width: W, height: W });
    const decoded = await decodeVideoFrames(video.bytes, W, W, undefined, 24);
    expect(decoded).toHaveLength(N);
    const errors = frames.map((f, i) => mad(f, decoded[i]));
    // Measured: 4.7 on average, 7.1 at worst (quality 75 fed RGB: 15.5 and 29.4, growing along the fade).
    expect(errors.reduce((s, e) => s + e, 0) / N).toBeLessThan(7);
    expect(Math.max(...errors)).toBeLessThan(10);
  });

  it('webp: the frames reported are the frames the file holds (libwebp merges repeats into one longer frame)', async () => {
    const grey = (level: number) => rgb(32, 32, () => [level, level, level]);
    const levels = [20, 20, 20, 120, 200, 200];
    const video = await encodeVideo(levels.map(grey), { format: 'webp', fps: 8, width: 32, height: 32 });
    const pages = (await sharp(video.bytes, { animated: true }).metadata()).pages;
    expect(pages).toBeLessThan(levels.length);
    expect(video.frames).toBe(pages);
    expect(video.durationSeconds).toBeCloseTo(levels.length / 8, 5);
  });

  for (const format of ['mp4', 'webm'] as const) {
    it(`${format}: an odd size is made even by repeating the edge, not with a black line`, async () => {
      const [W, H] = [33, 31];
      const frame = rgb(W, H, (x) => [200, 120 + ((x * 3) % 60), 80]);
      const video = await encodeVideo([frame, frame], { format, fps: 4, width: W, height: H });
      expect([video.width, video.height]).toEqual([34, 32]);
      const [shown] = await decodeVideoFrames(video.bytes, 34, 32);
      const at = (x: number, y: number) => shown.data.slice((y * 34 + x) * 3, (y * 34 + x) * 3 + 3);
      const brightness = (p: Uint8Array) => p[0] + p[1] + p[2];
      for (const y of [0, 15, 30]) expect(Math.abs(brightness(at(33, y)) - brightness(at(32, y))), `row ${y}`).toBeLessThan(30);
      for (const x of [0, 16, 32]) expect(Math.abs(brightness(at(x, 31)) - brightness(at(x, 30))), `column ${x}`).toBeLessThan(30);
    });

    it(`${format}: BT.709, tagged so, and a player reading the tags shows the source's colours`, async () => {
      const patches: [number, number, number][] = [
        [40, 200, 60],
        [230, 120, 30],
        [40, 60, 200],
      ];
      const [W, H] = [48, 16];
      const frame = rgb(W, H, (x) => patches[Math.floor(x / 16)]);
      const video = await encodeVideo([frame, frame], { format, fps: 4, width: W, height: H });
      const tags = await colourTags(video.bytes);
      expect(tags).toMatchObject({ color_space: 'bt709', color_primaries: 'bt709', color_transfer: 'bt709', color_range: 'tv' });
      const matrix = tags.color_space === 'bt709' || tags.color_space === undefined || tags.color_space === 'unknown' ? 'bt709' : 'bt601';
      const shown = await playerFrame(video.bytes, W, H, matrix);
      patches.forEach((colour, p) => {
        const i = (8 * W + p * 16 + 8) * 3; // the middle of the patch
        for (let c = 0; c < 3; c++) expect(Math.abs(shown.data[i + c] - colour[c]), `patch ${p} channel ${c}`).toBeLessThan(8);
      });
      // The engine's own decode (an upscale or an extension reading the file) reads it the same.
      const [decoded] = await decodeVideoFrames(video.bytes, W, H);
      patches.forEach((colour, p) => {
        const i = (8 * W + p * 16 + 8) * 3;
        for (let c = 0; c < 3; c++) expect(Math.abs(decoded.data[i + c] - colour[c]), `decoded patch ${p} channel ${c}`).toBeLessThan(8);
      });
    });
  }
});
