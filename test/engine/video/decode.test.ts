/**
 * decodeVideoFrames (engine/video/decode.ts) on every format the engine writes, animated WebP
 * included (through libvips: the ffmpeg builds in use cannot decode its animation): the frames
 * come back in order, at the file's size or scaled.
 */
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { probeVideo } from '../../../engine/video/probe.ts';
import { decodeVideoFrames } from '../../../engine/video/decode.ts';
import { encodeVideo, VIDEO_FORMATS } from '../../../engine/video/encode.ts';

const W = 64;
const H = 48;
/** Flat frames of distinct grey levels, so order and values are easy to read back through lossy codecs. */
const grey = (level: number) => ({ data: new Uint8Array(W * H * 3).fill(level), width: W, height: H, channels: 3 as const });
const LEVELS = [20, 80, 140, 200, 250];

describe('decodeVideoFrames', () => {
  for (const format of VIDEO_FORMATS) {
    it(`${format}: every frame, in order, at the file's size and scaled`, async () => {
      const video = await encodeVideo(LEVELS.map(grey), { format, fps: 8, width: W, height: H });
      const frames = await decodeVideoFrames(video.bytes, W, H);
      expect(frames).toHaveLength(LEVELS.length);
      frames.forEach((f, i) => {
        expect([f.width, f.height, f.data.length]).toEqual([W, H, W * H * 3]);
        const mean = f.data.reduce((s, v) => s + v, 0) / f.data.length;
        expect(Math.abs(mean - LEVELS[i]), `${format} frame ${i}`).toBeLessThan(6);
      });
      const half = await decodeVideoFrames(video.bytes, W / 2, H / 2);
      expect(half.map((f) => [f.width, f.height])).toEqual(LEVELS.map(() => [W / 2, H / 2]));
      expect(Math.abs(half[3].data[100] - LEVELS[3])).toBeLessThan(8);
    });
  }

  it('says so when the bytes are not a video it can read', async () => {
    await expect(decodeVideoFrames(new TextEncoder().encode('RIFF\0\0\0\0WEBPnot really'), W, H)).rejects.toThrow(/^could not decode the video/);
    await expect(decodeVideoFrames(new TextEncoder().encode('not a video'), W, H)).rejects.toThrow(/^could not decode the video/);
  });
});

describe('animated WebP timing', () => {
  it('a stored frame that lasts several frame times (the encoder merges repeats) decodes to that many frames', async () => {
    // Runs of identical frames: libwebp_anim stores each run as one longer frame.
    const levels = [20, 20, 20, 120, 200, 200];
    const video = await encodeVideo(levels.map(grey), { format: 'webp', fps: 8, width: W, height: H });
    expect((await sharp(video.bytes, { animated: true }).metadata()).pages).toBeLessThan(levels.length); // merged
    const probe = await probeVideo(video.bytes);
    expect([probe.frames, probe.fps]).toEqual([6, 8]);
    expect(probe.durationSeconds).toBeCloseTo(6 / 8, 2);
    const frames = await decodeVideoFrames(video.bytes, W, H);
    expect(frames).toHaveLength(levels.length);
    frames.forEach((f, i) => expect(Math.abs(f.data.reduce((s, v) => s + v, 0) / f.data.length - levels[i]), `frame ${i}`).toBeLessThan(6));
    // Read at another rate, the same clock: twice as many frames at 16 fps.
    expect(await decodeVideoFrames(video.bytes, W, H, undefined, 16)).toHaveLength(12);
  });
});

describe('reading at a given rate (a movie being extended at its fps)', () => {
  it('GIF, mp4 and webm read at `fps` keep their duration: a 60 fps GIF (stored at 50) gives 60 frames a second', async () => {
    const frames = Array.from({ length: 120 }, (_, i) => grey(10 + 2 * i));
    const gif = await encodeVideo(frames, { format: 'gif', fps: 60, width: W, height: H });
    expect(gif.fps).toBe(50); // ANIMATION_MAX_FPS.gif
    const back = await decodeVideoFrames(gif.bytes, W, H, undefined, 60);
    expect(back).toHaveLength(120);
    // Still in order: the last frame read back is (near) the last frame written.
    expect(Math.abs(back[119].data[0] - (10 + 2 * 119))).toBeLessThan(8);
    for (const format of ['mp4', 'webm'] as const) {
      const video = await encodeVideo(frames.slice(0, 48), { format, fps: 24, width: W, height: H });
      expect(await decodeVideoFrames(video.bytes, W, H, undefined, 30), format).toHaveLength(60);
      expect(await decodeVideoFrames(video.bytes, W, H, undefined, 24), format).toHaveLength(48);
    }
  });
});
