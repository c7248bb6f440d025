// Re-encoding a finished video to fit an upload limit (bot/shrink.ts), with real ffmpeg: what
// comes out fits, keeps every frame at its time, is decoded no larger than the memory cap allows,
// and each way a shrink cannot be done is answered with why (never thrown).
import { beforeAll, describe, expect, it } from 'vitest';
import { SHRINK_MIN_SCALE, SHRINK_TIMEOUT_MS, shrinkVideo, timeoutWhy } from '../../bot/shrink.ts';
import { encodeVideo, probeVideo, VideoTooLargeError, type VideoFormat } from '../../engine/index.ts';
import { noiseImage } from '../helpers/images.ts';

async function video(format: VideoFormat, width: number, height: number, frames: number, fps = 12): Promise<Buffer> {
  const images = Array.from({ length: frames }, (_, i) => noiseImage(width, height, i + 1));
  return (await encodeVideo(images, { format, fps, width, height })).bytes;
}

/** The decoded RGB bytes a video of `frames` frames at this size holds. */
const rawBytes = (width: number, height: number, frames: number) => width * height * 3 * frames;

/** Asserts a shrink produced a video and returns its bytes. */
function shrunk(result: Awaited<ReturnType<typeof shrinkVideo>>): Buffer {
  if (!result.bytes) throw new Error(`expected a shrunk video, got: ${result.why}`);
  return result.bytes;
}

describe('shrinkVideo', () => {
  it('re-encodes an mp4 under the limit with every frame, at the same rate and size', async () => {
    const original = await video('mp4', 64, 64, 24);
    const limit = Math.floor(original.length / 2);
    const bytes = shrunk(await shrinkVideo(original, 'mp4', limit));
    expect(bytes.length).toBeLessThanOrEqual(limit);
    const out = await probeVideo(bytes, { countPackets: true });
    expect(out).toMatchObject({ format: 'mp4', frames: 24, fps: 12 });
    // The first try at a lower bitrate fits: same size.
    expect([out.width, out.height]).toEqual([64, 64]);
    expect(out.durationSeconds).toBeCloseTo(2, 1);
  });

  it('keeps a GIF’s frames and duration (its delays are centiseconds, its nominal rate meaningless)', async () => {
    const original = await video('gif', 48, 48, 12, 12);
    const before = await probeVideo(original, { countPackets: true });
    const limit = Math.floor(original.length * 0.8);
    const bytes = shrunk(await shrinkVideo(original, 'gif', limit));
    expect(bytes.length).toBeLessThanOrEqual(limit);
    const after = await probeVideo(bytes, { countPackets: true });
    expect(after.format).toBe('gif');
    expect(after.frames).toBe(before.frames);
    expect(after.durationSeconds).toBeCloseTo(before.durationSeconds, 1);
  });

  describe('the memory cap on decoded frames', () => {
    // 128×128, 12 frames: 589,824 bytes of RGB.
    const W = 128;
    const H = 128;
    const N = 12;
    const RAW = rawBytes(W, H, N);
    let original: Buffer;
    const probe = async (bytes: Buffer) => probeVideo(bytes, { countPackets: true });

    beforeAll(async () => {
      original = await video('mp4', W, H, N);
    });

    it('decodes at full size when the frames take exactly the cap', async () => {
      const bytes = shrunk(await shrinkVideo(original, 'mp4', original.length * 2, { maxRawBytes: RAW }));
      const out = await probe(bytes);
      expect([out.width, out.height, out.frames]).toEqual([W, H, N]);
    });

    it('decodes smaller, each side by the square root, when they take a byte more than the cap', async () => {
      const half = shrunk(await shrinkVideo(original, 'mp4', original.length * 2, { maxRawBytes: RAW / 4 }));
      const out = await probe(half);
      expect([out.width, out.height, out.frames]).toEqual([W / 2, H / 2, N]);

      const justUnder = await probe(shrunk(await shrinkVideo(original, 'mp4', original.length * 2, { maxRawBytes: RAW - 1 })));
      expect(justUnder.width).toBeLessThan(W);
      expect(rawBytes(justUnder.width, justUnder.height, N)).toBeLessThanOrEqual(RAW - 1);
    });

    it('never holds more than the cap, even where the even size would round up', async () => {
      // 101.5 pixels a side would fit; the nearest even number, 102, would not.
      const cap = Math.floor(rawBytes(101.5, 101.5, N));
      const out = await probe(shrunk(await shrinkVideo(original, 'mp4', original.length * 2, { maxRawBytes: cap })));
      expect(out.width % 2).toBe(0);
      expect(out.height % 2).toBe(0);
      expect(rawBytes(out.width, out.height, N)).toBeLessThanOrEqual(cap);
      expect([out.width, out.height]).toEqual([100, 100]);
    });

    it(`shrinks down to ${SHRINK_MIN_SCALE} a side, and refuses, with the numbers, a video that would need less`, async () => {
      const atMin = await probe(shrunk(await shrinkVideo(original, 'mp4', original.length * 2, { maxRawBytes: RAW * SHRINK_MIN_SCALE ** 2 })));
      expect([atMin.width, atMin.height]).toEqual([W * SHRINK_MIN_SCALE, H * SHRINK_MIN_SCALE]);

      const refused = await shrinkVideo(original, 'mp4', original.length * 2, { maxRawBytes: RAW * SHRINK_MIN_SCALE ** 2 - 1 });
      expect(refused).toEqual({ why: `it is too long and too large (${N} frames of ${W}×${H}) to be re-encoded smaller here` });
    });

    it('refuses an animated WebP over the cap (it decodes at its own size), takes one exactly at it', async () => {
      const webp = await video('webp', 32, 32, 6);
      const info = await probe(webp);
      const raw = rawBytes(info.width, info.height, info.frames);
      const fits = shrunk(await shrinkVideo(webp, 'webp', webp.length * 2, { maxRawBytes: raw }));
      expect(await probe(fits)).toMatchObject({ format: 'webp', width: 32, height: 32, frames: info.frames });
      expect(await shrinkVideo(webp, 'webp', webp.length * 2, { maxRawBytes: raw - 1 })).toEqual({
        why: `it is too long and too large (${info.frames} frames of 32×32) to be re-encoded smaller here`,
      });
    });
  });

  it('says it does not fit, with the encoder’s error as the cause, when even the smallest try is too large', async () => {
    const original = await video('mp4', 64, 64, 24);
    const result = await shrinkVideo(original, 'mp4', 200);
    expect(result.bytes).toBeUndefined();
    expect(result).toMatchObject({ why: 'even re-encoded at a lower quality and a smaller size it does not fit' });
    expect((result as { cause: unknown }).cause).toBeInstanceOf(VideoTooLargeError);
  });

  it('says it could not re-encode bytes that are no video, and an empty file', async () => {
    for (const bytes of [Buffer.from('this is not a video at all'), Buffer.alloc(0)]) {
      const result = await shrinkVideo(bytes, 'mp4', 1000);
      expect(result).toMatchObject({ why: 'it could not be re-encoded smaller', cause: expect.any(Error) });
      expect(result.bytes).toBeUndefined();
    }
  });

  it('says it was stopped when its caller stops it', async () => {
    const original = await video('mp4', 32, 32, 4);
    const result = await shrinkVideo(original, 'mp4', 1000, { signal: AbortSignal.abort() });
    expect(result).toMatchObject({ why: 'the re-encoding was stopped' });
  });

  it('says it ran out of time, in the words timeoutWhy gives for its limit', async () => {
    const original = await video('mp4', 32, 32, 4);
    // No shrink (a probe, a decode, an encode) ends within a millisecond.
    const result = await shrinkVideo(original, 'mp4', 1000, { timeoutMs: 1 });
    expect(result).toMatchObject({ why: timeoutWhy(1) });
  });

  it('names its time limit as every bot message names a duration, singular and plural right at the boundaries', () => {
    expect(timeoutWhy(SHRINK_TIMEOUT_MS)).toBe('re-encoding it smaller took longer than 5m');
    expect(timeoutWhy(60_000)).toBe('re-encoding it smaller took longer than 1m');
    expect(timeoutWhy(90_000)).toBe('re-encoding it smaller took longer than 1m 30s');
    expect(timeoutWhy(120_000)).toBe('re-encoding it smaller took longer than 2m');
    expect(timeoutWhy(30_000)).toBe('re-encoding it smaller took longer than 30s');
  });
});
