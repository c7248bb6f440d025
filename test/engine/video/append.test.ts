/**
 * Appending frames to a finished video without encoding it again (engine/video/append.ts), with
 * real ffmpeg: the old frames decode exactly as before (their bytes were copied), the new ones
 * follow, and every case where the streams cannot be joined is refused so the caller encodes the
 * whole.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { resolveFfmpeg, resolveFfprobe } from '../../../engine/video/ffmpeg-path.ts';
import { meanAbsDiff } from '../../helpers/demo.ts';
import { appendFrames } from '../../../engine/video/append.ts';
import { decodeVideoFrames } from '../../../engine/video/decode.ts';
import { encodeVideo, type VideoFormat } from '../../../engine/video/encode.ts';
import { probeVideo } from '../../../engine/video/probe.ts';
import type { RawImage } from '../../../engine/image.ts';

const W = 64;
const H = 48;

/** A frame with a moving gradient and texture, different for each index. */
function frame(i: number, w = W, h = H): RawImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = Math.round(127 + 100 * Math.sin((x + 3 * i) * 0.07 * (c + 1) + y * 0.05) * Math.cos(i * 0.3 + c));
  return { data, width: w, height: h, channels: 3 };
}
const frames = (from: number, count: number, w = W, h = H) => Array.from({ length: count }, (_, k) => frame(from + k, w, h));

/** Each frame's presentation time in seconds, from ffprobe. */
async function presentationTimes(video: Uint8Array, format: string): Promise<number[]> {
  const dir = await mkdtemp(join(tmpdir(), 'pts-'));
  try {
    const file = join(dir, `v.${format}`);
    await writeFile(file, video);
    const { stdout } = await promisify(execFile)(resolveFfprobe().path, ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'frame=pts_time,best_effort_timestamp_time', '-of', 'csv=p=0', file]);
    // One line per frame (side data adds empty ones): its first time that is a number.
    return stdout
      .split('\n')
      .map((line) => line.split(',').map((v) => v.trim()).find((v) => v !== '' && v !== 'N/A'))
      .filter((v): v is string => v !== undefined)
      .map(Number);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}


describe('appendFrames', () => {
  for (const format of ['mp4', 'webm'] as const) {
    it(`${format}: the old frames keep their exact pixels, the new ones follow, and the file says so`, async () => {
      const head = await encodeVideo(frames(0, 6), { format, fps: 8, width: W, height: H });
      const joined = await appendFrames(head.bytes, frames(6, 4), { format, fps: 8, width: W, height: H, title: 'a "movie"' });
      expect(joined).toBeDefined();
      expect([joined!.frames, joined!.width, joined!.height, joined!.format]).toEqual([10, W, H, format]);
      expect(joined!.durationSeconds).toBeCloseTo(10 / 8, 6);
      const probe = await probeVideo(joined!.bytes);
      expect([probe.frames, probe.fps, probe.codec]).toEqual([10, 8, format === 'mp4' ? 'h264' : 'vp9']);
      // One clock across the join: presentation times a frame apart, no gap or overlap.
      const times = (await presentationTimes(joined!.bytes, format)).sort((x, y) => x - y);
      expect(times).toHaveLength(10);
      for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1], `after frame ${i - 1}`).toBeCloseTo(1 / 8, 2);
      const [before, after] = await Promise.all([decodeVideoFrames(head.bytes, W, H), decodeVideoFrames(joined!.bytes, W, H)]);
      expect(after).toHaveLength(10);
      // Copied, not re-encoded: bit for bit the same decoded pixels.
      for (let i = 0; i < 6; i++) expect(Buffer.from(after[i].data).equals(Buffer.from(before[i].data)), `frame ${i}`).toBe(true);
      // The new frames are the ones given (up to compression), in order.
      for (let i = 6; i < 10; i++) {
        expect(meanAbsDiff(after[i].data, frame(i).data), `frame ${i}`).toBeLessThan(8);
        expect(meanAbsDiff(after[i].data, frame(i + 1).data), `frame ${i} is not its successor`).toBeGreaterThan(meanAbsDiff(after[i].data, frame(i).data));
      }
    });
  }

  it('counts frames by packets (what the join checks) exactly as by decoding, for mp4 and webm', async () => {
    for (const format of ['mp4', 'webm'] as const) {
      const video = await encodeVideo(frames(0, 13), { format, fps: 8, width: W, height: H });
      const [decoded, packets] = await Promise.all([probeVideo(video.bytes), probeVideo(video.bytes, { countPackets: true })]);
      expect([decoded.frames, packets.frames], format).toEqual([13, 13]);
    }
  });

  it('joins in a temporary folder whose path has a quote in it', async () => {
    const quoted = await mkdtemp(join(tmpdir(), "it's-"));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = quoted;
    try {
      const head = await encodeVideo(frames(0, 4), { format: 'mp4', fps: 8, width: W, height: H });
      const joined = await appendFrames(head.bytes, frames(4, 2), { format: 'mp4', fps: 8, width: W, height: H });
      expect(joined?.frames).toBe(6);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      await rm(quoted, { recursive: true, force: true });
    }
  });

  it('refuses to join a head written without colour tags (before the encoder wrote BT.709): the new frames would be read with the old matrix', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'untagged-'));
    try {
      // As encodeVideo wrote webm before: BT.601 by default, no colour tags (VP9 keeps none in extradata).
      await writeFile(join(dir, 'in.rgb'), Buffer.concat(frames(0, 4).map((f) => Buffer.from(f.data))));
      await promisify(execFile)(resolveFfmpeg().path, ['-v', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${W}x${H}`, '-framerate', '8', '-i', join(dir, 'in.rgb'), '-c:v', 'libvpx-vp9', '-pix_fmt', 'yuv420p', '-crf', '32', '-b:v', '0', '-deadline', 'realtime', '-cpu-used', '8', '-row-mt', '1', '-f', 'webm', join(dir, 'old.webm')]);
      const old = await readFile(join(dir, 'old.webm'));
      expect(await appendFrames(old, frames(4, 2), { format: 'webm', fps: 8, width: W, height: H })).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses what cannot be joined by stream copy, so the caller encodes the whole', async () => {
    const head = await encodeVideo(frames(0, 4), { format: 'mp4', fps: 8, width: W, height: H });
    // Another format, size or frame rate than the old video.
    expect(await appendFrames(head.bytes, frames(4, 2), { format: 'webm', fps: 8, width: W, height: H })).toBeUndefined();
    expect(await appendFrames(head.bytes, frames(4, 2, 32, 32), { format: 'mp4', fps: 8, width: 32, height: 32 })).toBeUndefined();
    expect(await appendFrames(head.bytes, frames(4, 2), { format: 'mp4', fps: 12, width: W, height: H })).toBeUndefined();
    // Formats with no such join.
    for (const format of ['gif', 'webp'] as VideoFormat[]) {
      const old = await encodeVideo(frames(0, 3), { format, fps: 8, width: W, height: H });
      expect(await appendFrames(old.bytes, frames(3, 2), { format, fps: 8, width: W, height: H }), format).toBeUndefined();
    }
    // A joined file over the size limit.
    expect(await appendFrames(head.bytes, frames(4, 2), { format: 'mp4', fps: 8, width: W, height: H, maxBytes: head.sizeBytes })).toBeUndefined();
    // Not a video at all.
    expect(await appendFrames(new TextEncoder().encode('not a video'), frames(4, 2), { format: 'mp4', fps: 8, width: W, height: H })).toBeUndefined();
  });

  it('refuses to join a head whose codec set-up differs (encoded at a target bitrate to fit a size limit)', async () => {
    const big = frames(0, 24);
    const free = await encodeVideo(big, { format: 'mp4', fps: 8, width: W, height: H });
    const limited = await encodeVideo(big, { format: 'mp4', fps: 8, width: W, height: H, maxBytes: Math.floor(free.sizeBytes * 0.9) });
    expect(limited.attempts.some((a) => a.bitrate !== undefined)).toBe(true);
    expect([limited.width, limited.height]).toEqual([W, H]);
    const joined = await appendFrames(limited.bytes, frames(24, 2), { format: 'mp4', fps: 8, width: W, height: H });
    // x264 in bitrate mode writes another configuration record (its PPS starts at another QP) than
    // in CRF mode: the decoder set-up of the old video would not fit the new frames, so no join.
    expect(joined).toBeUndefined();
  });
});
