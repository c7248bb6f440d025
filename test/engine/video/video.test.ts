import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  concatKeyframes,
  concatPlans,
  encodeVideo,
  planFrames,
  probeVideo,
  probeWebp,
  renderFrame,
  renderFrames,
  resolveFfmpeg,
  resolveFfprobe,
  VideoTooLargeError,
  type FramePlan,
  type RawImage,
} from '../../../engine/video/index.ts';
import { WEBP_QUALITY } from '../../../engine/video/encode.ts';
import { noiseImage } from '../../helpers/images.ts';

const execFileAsync = promisify(execFile);

function solid(width: number, height: number, rgb: [number, number, number]): RawImage {
  const data = Buffer.alloc(width * height * 3);
  for (let i = 0; i < data.length; i += 3) data.set(rgb, i);
  return { data, width, height, channels: 3 };
}

/** Each frame's delay in centiseconds, read from a GIF's graphic control extensions (walking the blocks). */
function gifFrameDelays(b: Buffer): number[] {
  let p = 13;
  if (b[10] & 0x80) p += 3 * 2 ** ((b[10] & 7) + 1); // global colour table
  const skipSubBlocks = () => {
    while (b[p] !== 0) p += b[p] + 1;
    p++;
  };
  const delays: number[] = [];
  for (;;) {
    const block = b[p++];
    if (block === 0x3b) return delays;
    if (block === 0x21) {
      const label = b[p++];
      if (label === 0xf9) delays.push(b.readUInt16LE(p + 2));
      skipSubBlocks();
    } else if (block === 0x2c) {
      const packed = b[p + 8];
      p += 9;
      if (packed & 0x80) p += 3 * 2 ** ((packed & 7) + 1); // local colour table
      p++; // LZW minimum code size
      skipSubBlocks();
    } else {
      throw new Error(`unexpected GIF block 0x${block?.toString(16)} at ${p - 1}`);
    }
  }
}

/** Each ANMF frame's duration in ms, read from an animated WebP's chunks. */
function webpFrameDurations(b: Buffer): number[] {
  const out: number[] = [];
  for (let p = 12; p + 8 <= b.length; ) {
    const size = b.readUInt32LE(p + 4);
    if (b.toString('latin1', p, p + 4) === 'ANMF') out.push(b.readUIntLE(p + 8 + 12, 3));
    p += 8 + size + (size & 1);
  }
  return out;
}

/** Steps (frames) per gap: frames whose blend starts from keyframe j, for j < last. */
function framesPerGap(plan: FramePlan, keyframeCount: number): number[] {
  const counts = new Array<number>(keyframeCount - 1).fill(0);
  for (const f of plan) if (f.left < keyframeCount - 1) counts[f.left]++;
  return counts;
}

function expectWellFormed(plan: FramePlan, keyframeCount: number, totalFrames: number): void {
  expect(plan).toHaveLength(totalFrames);
  expect(plan[0]).toEqual({ left: 0, right: 0, t: 0 });
  expect(plan[plan.length - 1]).toEqual({ left: keyframeCount - 1, right: keyframeCount - 1, t: 0 });
  for (let i = 1; i < plan.length; i++) {
    expect(plan[i].left + plan[i].t).toBeGreaterThan(plan[i - 1].left + plan[i - 1].t);
  }
  for (const f of plan) {
    if (f.t === 0) expect(f.right).toBe(f.left);
    else {
      expect(f.right).toBe(f.left + 1);
      expect(f.t).toBeGreaterThan(0);
      expect(f.t).toBeLessThan(1);
    }
  }
}

function exactKeyframes(plan: FramePlan): number[] {
  return plan.filter((f) => f.t === 0).map((f) => f.left);
}

/** Top-level ISO-BMFF boxes as [type, offset]. */
function mp4Boxes(bytes: Buffer): Array<[string, number]> {
  const boxes: Array<[string, number]> = [];
  let at = 0;
  while (at + 8 <= bytes.length) {
    let size = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    if (size === 1) size = Number(bytes.readBigUInt64BE(at + 8));
    else if (size === 0) size = bytes.length - at;
    boxes.push([type, at]);
    if (size < 8) break;
    at += size;
  }
  return boxes;
}

async function decodeRgb(file: string, width: number, height: number): Promise<Buffer[]> {
  const { stdout } = await execFileAsync(resolveFfmpeg().path, ['-v', 'error', '-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], {
    encoding: 'buffer',
    maxBuffer: 64 * 1024 * 1024,
  });
  const frameBytes = width * height * 3;
  expect(stdout.length % frameBytes).toBe(0);
  const frames: Buffer[] = [];
  for (let at = 0; at < stdout.length; at += frameBytes) frames.push(stdout.subarray(at, at + frameBytes));
  return frames;
}

function meanColour(data: Uint8Array): [number, number, number] {
  const sum = [0, 0, 0];
  for (let i = 0; i < data.length; i++) sum[i % 3] += data[i];
  const n = data.length / 3;
  return [sum[0] / n, sum[1] / n, sum[2] / n];
}

function expectColourNear(actual: [number, number, number], expected: readonly number[], tolerance: number): void {
  for (let c = 0; c < 3; c++) expect(Math.abs(actual[c] - expected[c])).toBeLessThanOrEqual(tolerance);
}

/** ffmpeg processes that are children of this test process (Linux /proc). */
function childFfmpegPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && comm.startsWith('ffmpeg')) pids.push(Number(entry));
    } catch {
      // the process exited while we looked
    }
  }
  return pids;
}

let workDir: string;
beforeAll(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'video-test-'));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('planFrames', () => {
  it('equal mode: exact ends, every keyframe shown, monotone, equal frames per gap within one', () => {
    for (const [k, n] of [[2, 2], [3, 24], [5, 41], [4, 12], [7, 50], [6, 6], [8, 9]]) {
      const plan = planFrames(k, n);
      expectWellFormed(plan, k, n);
      expect(exactKeyframes(plan)).toEqual(Array.from({ length: k }, (_, i) => i));
      const perGap = framesPerGap(plan, k);
      expect(perGap.reduce((a, b) => a + b, 0)).toBe(n - 1);
      expect(Math.max(...perGap) - Math.min(...perGap)).toBeLessThanOrEqual(1);
    }
  });

  it('places the crossfade weights evenly inside a gap', () => {
    const plan = planFrames(3, 9); // 8 steps, 4 per gap
    expect(plan.map((f) => f.left + f.t)).toEqual([0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2]);
  });

  it('gap-weighted mode: frames per gap proportional to the gap sizes', () => {
    const cases: Array<[number[], number]> = [
      [[1, 3, 0.5, 2.5], 71],
      [[1, 2.5, 4], 40],
      [[0.2, 0.05, 0.4, 0.1, 0.25], 101],
    ];
    for (const [gaps, n] of cases) {
      const k = gaps.length + 1;
      const plan = planFrames(k, n, { gaps, mode: 'gap-weighted' });
      expectWellFormed(plan, k, n);
      expect(exactKeyframes(plan)).toEqual(Array.from({ length: k }, (_, i) => i));
      const total = gaps.reduce((a, b) => a + b, 0);
      const perGap = framesPerGap(plan, k);
      perGap.forEach((steps, j) => expect(Math.abs(steps - ((n - 1) * gaps[j]) / total)).toBeLessThan(1));
    }
    // Equal mode is the default even when gaps are passed.
    expect(planFrames(3, 21, { gaps: [1, 9] })).toEqual(planFrames(3, 21));
  });

  it('gap-weighted mode still shows every keyframe when a gap is tiny or zero', () => {
    const plan = planFrames(4, 20, { gaps: [0, 10, 0.001], mode: 'gap-weighted' });
    expectWellFormed(plan, 4, 20);
    expect(exactKeyframes(plan)).toEqual([0, 1, 2, 3]);
  });

  it('handles a single keyframe (a still) and fewer frames than keyframes (subsampling)', () => {
    expect(planFrames(1, 5)).toEqual(Array.from({ length: 5 }, () => ({ left: 0, right: 0, t: 0 })));
    const sub = planFrames(10, 4);
    expectWellFormed(sub, 10, 4);
    expect(exactKeyframes(sub)).toHaveLength(4);
    expect(exactKeyframes(sub)).toEqual([0, 3, 6, 9]);
    const weighted = planFrames(6, 3, { gaps: [1, 1, 10, 1, 1], mode: 'gap-weighted' });
    expectWellFormed(weighted, 6, 3);
  });

  it('rejects inputs it cannot plan, with clear messages', () => {
    expect(() => planFrames(0, 10)).toThrow(/keyframeCount/);
    expect(() => planFrames(3, 1)).toThrow(/at least 2/);
    expect(() => planFrames(3, 10, { mode: 'gap-weighted' })).toThrow(/needs opts.gaps/);
    expect(() => planFrames(3, 10, { gaps: [1], mode: 'gap-weighted' })).toThrow(/2 gaps/);
    expect(() => planFrames(3, 10, { gaps: [1, -1], mode: 'gap-weighted' })).toThrow(/non-negative/);
  });
});

describe('concatPlans / concatKeyframes', () => {
  it('shows the keyframe shared by two segments once', () => {
    const segA = planFrames(3, 9);
    const segB = planFrames(4, 10);
    const joined = concatPlans([
      { keyframeCount: 3, plan: segA },
      { keyframeCount: 4, plan: segB },
    ]);
    expectWellFormed(joined, 6, 18);
    expect(exactKeyframes(joined)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(joined.filter((f) => f.t === 0 && f.left === 2)).toHaveLength(1);

    const red = solid(4, 4, [255, 0, 0]);
    const a = [solid(4, 4, [0, 0, 0]), solid(4, 4, [9, 9, 9]), red];
    const b = [red, solid(4, 4, [0, 255, 0]), solid(4, 4, [0, 0, 255]), solid(4, 4, [1, 2, 3])];
    const keyframes = concatKeyframes([a, b]);
    expect(keyframes).toHaveLength(6);
    expect(keyframes[2]).toBe(red);
    const frames = [...renderFrames(keyframes, joined)];
    expect(frames).toHaveLength(18);
    expect([...frames[17].data.subarray(0, 3)]).toEqual([1, 2, 3]);
  });

  it('refuses a segment that does not end on its last keyframe', () => {
    expect(() => concatPlans([{ keyframeCount: 4, plan: planFrames(3, 5) }, { keyframeCount: 2, plan: planFrames(2, 3) }])).toThrow(
      /Segment 0 does not end exactly/,
    );
  });
});

describe('renderFrame', () => {
  const black = solid(2, 2, [0, 0, 0]);
  const white = solid(2, 2, [255, 255, 255]);
  const c1 = solid(2, 2, [10, 200, 60]);
  const c2 = solid(2, 2, [200, 10, 61]);

  it('crossfades in RGB with uint8 rounding', () => {
    const mid = renderFrame([black, white], { left: 0, right: 1, t: 0.5 });
    expect([...mid.data]).toEqual(new Array(12).fill(128)); // 127.5 rounds up
    const quarter = renderFrame([c1, c2], { left: 0, right: 1, t: 0.25 });
    // 10*.75+200*.25 = 57.5, 200*.75+10*.25 = 152.5, 60*.75+61*.25 = 60.25
    expect([...quarter.data.subarray(0, 3)]).toEqual([58, 153, 60]);
    expect(quarter).toMatchObject({ width: 2, height: 2, channels: 3 });
  });

  it('copies keyframes exactly at t = 0 and writes into a caller buffer', () => {
    const out = Buffer.alloc(12, 7);
    const frame = renderFrame([c1, c2], { left: 1, right: 1, t: 0 }, out);
    expect(frame.data.buffer).toBe(out.buffer);
    expect([...out]).toEqual([...c2.data]);
  });

  it('rejects mismatched keyframes', () => {
    expect(() => renderFrame([black, solid(3, 2, [0, 0, 0])], { left: 0, right: 1, t: 0.5 })).toThrow(/differ in size/);
    expect(() => renderFrame([black], { left: 0, right: 1, t: 0.5 })).toThrow(/Keyframe 1 does not exist/);
  });
});

describe('resolveFfmpeg / resolveFfprobe', () => {
  const saved = { FFMPEG_PATH: process.env.FFMPEG_PATH, FFPROBE_PATH: process.env.FFPROBE_PATH };
  afterEach(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  it('finds bundled binaries, and honours the env vars', () => {
    delete process.env.FFMPEG_PATH;
    delete process.env.FFPROBE_PATH;
    const ffmpeg = resolveFfmpeg();
    expect(['ffmpeg-static', '@ffmpeg-installer/ffmpeg', 'PATH']).toContain(ffmpeg.source);
    expect(existsSync(ffmpeg.path)).toBe(true);
    const ffprobe = resolveFfprobe();
    expect(['ffprobe-static', '@ffprobe-installer/ffprobe', 'PATH']).toContain(ffprobe.source);
    expect(existsSync(ffprobe.path)).toBe(true);

    process.env.FFMPEG_PATH = ffmpeg.path;
    expect(resolveFfmpeg()).toEqual({ path: ffmpeg.path, source: 'FFMPEG_PATH' });
  });

  it('rejects an FFMPEG_PATH that is not executable', async () => {
    const notExecutable = path.join(workDir, 'plain-file');
    await writeFile(notExecutable, 'not a program', { mode: 0o644 });
    process.env.FFMPEG_PATH = notExecutable;
    expect(() => resolveFfmpeg()).toThrow(/FFMPEG_PATH .* is not executable/);
  });

  it('treats an env var pointing at a missing file as an error, not a fallback', async () => {
    const missing = path.join(workDir, 'no-such-ffmpeg');
    process.env.FFMPEG_PATH = missing;
    expect(() => resolveFfmpeg()).toThrow(/FFMPEG_PATH is set to ".*no-such-ffmpeg" but no file exists there/);
    await expect(encodeVideo([solid(8, 8, [1, 2, 3])], { format: 'gif', fps: 1, width: 8, height: 8 })).rejects.toThrow(/FFMPEG_PATH/);
    process.env.FFPROBE_PATH = missing;
    expect(() => resolveFfprobe()).toThrow(/FFPROBE_PATH/);
  });
});

describe('encodeVideo', () => {
  const size = 64;
  const colours: Array<[number, number, number]> = [
    [220, 30, 30],
    [30, 200, 40],
    [20, 40, 230],
  ];
  const keyframes = colours.map((c) => solid(size, size, c));
  const fps = 12;
  const seconds = 2;
  const plan = planFrames(keyframes.length, fps * seconds);

  it('mp4: h264 yuv420p, all frames, right duration, moov before mdat, colours preserved', async () => {
    const result = await encodeVideo(() => renderFrames(keyframes, plan), { format: 'mp4', fps, width: size, height: size });
    expect(result).toMatchObject({ format: 'mp4', width: size, height: size, frames: fps * seconds, fps, durationSeconds: seconds });
    expect(result.path).toBeUndefined();
    expect(result.sizeBytes).toBe(result.bytes.length);
    expect(result.attempts).toHaveLength(1);

    const probe = await probeVideo(result.bytes);
    expect(probe).toMatchObject({ format: 'mp4', codec: 'h264', pixFmt: 'yuv420p', width: size, height: size, frames: fps * seconds });
    expect(probe.fps).toBeCloseTo(fps, 6);
    expect(Math.abs(probe.durationSeconds - seconds)).toBeLessThan(1 / fps);

    const boxes = mp4Boxes(result.bytes);
    const moov = boxes.find(([t]) => t === 'moov');
    const mdat = boxes.find(([t]) => t === 'mdat');
    expect(moov).toBeDefined();
    expect(mdat).toBeDefined();
    expect(moov![1]).toBeLessThan(mdat![1]);

    const file = path.join(workDir, 'colours.mp4');
    await writeFile(file, result.bytes);
    const decoded = await decodeRgb(file, size, size);
    expect(decoded).toHaveLength(fps * seconds);
    expectColourNear(meanColour(decoded[0]), colours[0], 8);
    expectColourNear(meanColour(decoded[decoded.length - 1]), colours[2], 8);
    // Frame 6 sits half way through the first crossfade.
    expect(plan[6]).toEqual({ left: 0, right: 1, t: 0.5 });
    expectColourNear(meanColour(decoded[6]), meanColour(renderFrame(keyframes, plan[6]).data), 8);
  });

  it('mp4: odd frame sizes are padded to even', async () => {
    const frames = [solid(63, 47, [100, 100, 100]), solid(63, 47, [150, 150, 150])];
    // The title is argv data, never shell or filter syntax.
    const title = `it's "a" title; $(echo nope) [x]`;
    const result = await encodeVideo(frames, { format: 'mp4', fps: 4, width: 63, height: 47, title });
    expect([result.width, result.height]).toEqual([64, 48]);
    expect(result.bytes.includes(Buffer.from(title))).toBe(true);
    const probe = await probeVideo(result.bytes);
    expect([probe.width, probe.height, probe.frames]).toEqual([64, 48, 2]);
  });

  it('webm: vp9 written to the given path', async () => {
    const out = path.join(workDir, 'clip.webm');
    const result = await encodeVideo(renderFrames(keyframes, plan), { format: 'webm', fps, width: size, height: size, out });
    expect(result.path).toBe(out);
    const onDisk = await readFile(out);
    expect(onDisk.equals(result.bytes)).toBe(true);
    expect(onDisk.readUInt32BE(0)).toBe(0x1a45dfa3); // EBML magic
    const probe = await probeVideo(out);
    expect(probe).toMatchObject({ format: 'webm', codec: 'vp9', pixFmt: 'yuv420p', width: size, height: size, frames: fps * seconds });
    expect(Math.abs(probe.durationSeconds - seconds)).toBeLessThan(1 / fps);
  });

  it('webp: animated, looping forever, one ANMF chunk per frame', async () => {
    const result = await encodeVideo(renderFrames(keyframes, plan), { format: 'webp', fps, width: size, height: size });
    const b = result.bytes;
    expect(b.toString('latin1', 0, 4)).toBe('RIFF');
    expect(b.toString('latin1', 8, 16)).toBe('WEBPVP8X');
    expect(b.readUInt32LE(4)).toBe(b.length - 8);
    const anim = b.indexOf('ANIM', 12, 'latin1');
    expect(anim).toBeGreaterThan(0);
    expect(b.readUInt16LE(anim + 8 + 4)).toBe(0); // loop count: 0 = forever
    const probe = probeWebp(b);
    expect(probe).toMatchObject({ format: 'webp', width: size, height: size, frames: fps * seconds });
    expect(Math.abs(probe.durationSeconds - seconds)).toBeLessThan(1 / fps);
    expect(await probeVideo(b)).toEqual(probe);
  });

  it('gif: GIF89a with a NETSCAPE infinite-loop extension', async () => {
    const result = await encodeVideo(renderFrames(keyframes, plan), { format: 'gif', fps, width: size, height: size });
    const b = result.bytes;
    expect(b.toString('latin1', 0, 6)).toBe('GIF89a');
    const app = b.indexOf('NETSCAPE2.0', 0, 'latin1');
    expect(app).toBeGreaterThan(0);
    expect(b[app - 3]).toBe(0x21); // extension introducer
    expect(b[app - 2]).toBe(0xff); // application extension
    expect(b[app + 11]).toBe(3);
    expect(b[app + 12]).toBe(1);
    expect(b.readUInt16LE(app + 13)).toBe(0); // loop forever
    const probe = await probeVideo(b);
    expect(probe).toMatchObject({ format: 'gif', codec: 'gif', width: size, height: size, frames: fps * seconds });
    // GIF delays are whole centiseconds, so 1/12 s frames cannot add up exactly.
    expect(Math.abs(probe.durationSeconds - seconds)).toBeLessThan(0.1);
  });

  it('gif above 50 fps, webp above 90: no frame of 10 ms or less (browsers show those for 100 ms), same duration', async () => {
    const frames = Array.from({ length: 60 }, (_, i) => solid(16, 16, [i * 4, 255 - i * 4, (i * 37) % 256]));
    const cases = [
      ['gif', 60, 50],
      ['gif', 120, 50],
      ['gif', 24, 24],
      ['webp', 100, 90],
      ['webp', 120, 90],
      ['webp', 60, 60],
    ] as const;
    for (const [format, fps, wantFps] of cases) {
      const label = `${format} at ${fps} fps`;
      const result = await encodeVideo(frames, { format, fps, width: 16, height: 16 });
      // Frame times in ms, as the file stores them (GIF: centiseconds).
      const times = format === 'gif' ? gifFrameDelays(result.bytes).map((d) => d * 10) : webpFrameDurations(result.bytes);
      expect(Math.min(...times), label).toBeGreaterThan(10);
      // The file plays for the duration asked for (60 frames at fps), to the frame.
      expect(Math.abs(times.reduce((a, b) => a + b, 0) / 1000 - 60 / fps), label).toBeLessThanOrEqual(1 / wantFps);
      expect(result.fps, label).toBe(wantFps);
      expect(Math.abs(result.durationSeconds - 60 / fps), label).toBeLessThanOrEqual(1 / wantFps);
      if (format === 'gif') expect(result.frames, label).toBe(times.length);
      else expect(result.frames, label).toBe(Math.round((60 / fps) * wantFps));
    }
    // A frame factory (replayed for size-limited attempts) is resampled the same way on every attempt:
    // a replay of other length is a RangeError, so every smaller size must have been tried.
    // (64x64: at 16x16 no smaller size is above MIN_SIDE, and only the first attempt would run.)
    const big = Array.from({ length: 60 }, (_, i) => solid(64, 64, [i * 4, 255 - i * 4, (i * 37) % 256]));
    const fitted = await encodeVideo(() => big, { format: 'gif', fps: 120, width: 64, height: 64, maxBytes: 100 }).catch((e: Error) => e);
    expect(fitted).toBeInstanceOf(VideoTooLargeError);
    expect((fitted as VideoTooLargeError).attempts.length).toBeGreaterThan(1);
  });

  it('maxBytes: re-encodes at a computed bitrate when the first mp4 is too big', async () => {
    const frames = Array.from({ length: 12 }, (_, i) => noiseImage(256, 256, i + 1));
    const maxBytes = 200_000;
    // A plain array: later attempts must replay the frames from the lossless intermediate.
    const result = await encodeVideo(frames, { format: 'mp4', fps: 12, width: 256, height: 256, maxBytes });
    expect(result.attempts[0].sizeBytes).toBeGreaterThan(maxBytes);
    expect(result.attempts[0].bitrate).toBeUndefined();
    expect(result.attempts.length).toBeGreaterThanOrEqual(2);
    const last = result.attempts[result.attempts.length - 1];
    expect(last.bitrate).toBeGreaterThan(0);
    expect(last.sizeBytes).toBe(result.sizeBytes);
    expect(result.sizeBytes).toBeLessThanOrEqual(maxBytes);
    expect(result.bytes.length).toBeLessThanOrEqual(maxBytes);
    expect([result.width, result.height]).toEqual([256, 256]);
    const probe = await probeVideo(result.bytes);
    expect(probe).toMatchObject({ codec: 'h264', width: 256, height: 256, frames: 12 });
    expect(Math.abs(probe.durationSeconds - 1)).toBeLessThan(1 / 12);
  });

  it('maxBytes: webp shrinks the picture at its one quality (lower qualities drift from the frames, see WEBP_QUALITY)', async () => {
    let factoryCalls = 0;
    const frames = () => {
      factoryCalls++;
      return (function* () {
        for (let i = 0; i < 12; i++) yield noiseImage(256, 256, 100 + i);
      })();
    };
    const maxBytes = 200_000;
    const result = await encodeVideo(frames, { format: 'webp', fps: 12, width: 256, height: 256, maxBytes });
    expect(factoryCalls).toBe(result.attempts.length);
    const fullSize = result.attempts.filter((a) => a.width === 256);
    expect(fullSize).toHaveLength(1);
    expect(fullSize[0].sizeBytes).toBeGreaterThan(maxBytes);
    expect(result.attempts.map((a) => a.quality)).toEqual(result.attempts.map(() => WEBP_QUALITY));
    expect(result.width).toBeLessThan(256);
    expect(result.height).toBe(result.width);
    expect(result.sizeBytes).toBeLessThanOrEqual(maxBytes);
    const probe = await probeVideo(result.bytes);
    expect([probe.width, probe.height, probe.frames]).toEqual([result.width, result.height, 12]);
  });

  it('maxBytes: an impossible limit fails clearly and leaves no file behind', async () => {
    const frames = Array.from({ length: 6 }, (_, i) => noiseImage(64, 64, 7 + i));
    const out = path.join(workDir, 'too-big.mp4');
    const error = await encodeVideo(frames, { format: 'mp4', fps: 6, width: 64, height: 64, maxBytes: 300, out }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VideoTooLargeError);
    const tooLarge = error as VideoTooLargeError;
    expect(tooLarge.message).toMatch(/^Could not fit the mp4 under 300 bytes: the smallest attempt was .* at \d+x\d+/);
    expect(tooLarge.smallestSizeBytes).toBeGreaterThan(300);
    expect(tooLarge.smallestSizeBytes).toBe(Math.min(...tooLarge.attempts.map((a) => a.sizeBytes)));
    expect(tooLarge.attempts.some((a) => a.width < 64)).toBe(true);
    expect(tooLarge.attempts.some((a) => a.bitrate !== undefined)).toBe(true);
    expect(existsSync(out)).toBe(false);
  });

  it('a failed encode leaves a file already at `out` as it was, and nothing half-written beside it (it deleted the file)', async () => {
    const dir = await mkdtemp(path.join(workDir, 'keep-'));
    const out = path.join(dir, 'keep.mp4');
    await writeFile(out, 'an earlier render');
    const frames = Array.from({ length: 6 }, (_, i) => noiseImage(64, 64, 7 + i));
    await expect(encodeVideo(frames, { format: 'mp4', fps: 6, width: 64, height: 64, maxBytes: 300, out })).rejects.toBeInstanceOf(VideoTooLargeError);
    expect(await readFile(out, 'utf8')).toBe('an earlier render');
    expect(readdirSync(dir)).toEqual(['keep.mp4']);
    // A successful one replaces it, whole.
    const result = await encodeVideo(frames, { format: 'mp4', fps: 6, width: 64, height: 64, out });
    expect((await readFile(out)).equals(result.bytes)).toBe(true);
    expect(readdirSync(dir)).toEqual(['keep.mp4']);
  });

  it('an ffmpeg that exits 0 after failing to write (a full disk) is a failure, and no file is left (it was reported written)', async () => {
    // What the 2018 ffmpeg build does when the disk fills while it writes the mp4's index: the
    // error on stderr, a file without its index, exit status 0.
    const fake = path.join(workDir, 'ffmpeg-disk-full.sh');
    await writeFile(fake, '#!/bin/sh\ncat > /dev/null\nfor a; do last=$a; done\nprintf partial > "$last"\necho "[mp4 @ 0x55] Error writing trailer of $last: No space left on device" >&2\nexit 0\n', { mode: 0o755 });
    const dir = await mkdtemp(path.join(workDir, 'full-'));
    const out = path.join(dir, 'full.mp4');
    const saved = process.env.FFMPEG_PATH;
    process.env.FFMPEG_PATH = fake;
    try {
      const error = (await encodeVideo([solid(16, 16, [1, 2, 3])], { format: 'mp4', fps: 1, width: 16, height: 16, out }).catch((e: unknown) => e)) as Error;
      expect(error.message).toMatch(/^ffmpeg could not finish writing the mp4 \(.*No space left on device\); check that the disk has room and can be written to$/);
    } finally {
      if (saved === undefined) delete process.env.FFMPEG_PATH;
      else process.env.FFMPEG_PATH = saved;
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it('rejects frames that do not match the declared size', async () => {
    const frames = [solid(16, 16, [0, 0, 0]), solid(8, 8, [0, 0, 0])];
    await expect(encodeVideo(frames, { format: 'mp4', fps: 2, width: 16, height: 16 })).rejects.toThrow(/Frame 1 is 8x8x3/);
    expect(childFfmpegPids()).toEqual([]);
  });

  it('abort kills the running encoder and rejects with an AbortError', async () => {
    const controller = new AbortController();
    let runningDuringEncode: number[] = [];
    let producerClosed = false;
    async function* endless() {
      try {
        for (let i = 0; ; i++) {
          if (i === 10) {
            runningDuringEncode = childFfmpegPids();
            controller.abort();
          }
          yield noiseImage(64, 64, i);
        }
      } finally {
        producerClosed = true;
      }
    }
    const error = await encodeVideo(endless(), { format: 'mp4', fps: 12, width: 64, height: 64, signal: controller.signal }).catch((e: unknown) => e);
    expect((error as Error).name).toBe('AbortError');
    expect(runningDuringEncode).toHaveLength(1);
    expect(childFfmpegPids()).toEqual([]);
    expect(producerClosed).toBe(true);
  });

  it('abort does not wait for a stalled frame producer', { timeout: 20_000 }, async () => {
    const controller = new AbortController();
    async function* stalls() {
      yield noiseImage(32, 32, 1);
      controller.abort();
      await new Promise(() => {}); // never produces the next frame
    }
    await expect(encodeVideo(stalls(), { format: 'webm', fps: 12, width: 32, height: 32, signal: controller.signal })).rejects.toMatchObject({
      name: 'AbortError',
    });
    expect(childFfmpegPids()).toEqual([]);
  });

  it('an already-aborted signal rejects before starting ffmpeg', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(
      encodeVideo([solid(8, 8, [0, 0, 0])], { format: 'gif', fps: 1, width: 8, height: 8, signal: controller.signal }),
    ).rejects.toMatchObject({ name: 'AbortError' });
  });
});
