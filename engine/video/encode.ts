// Encodes RGB frames into mp4 / webm / animated webp / gif by streaming rawvideo into ffmpeg.
//
// Only numbers chosen here go into ffmpeg arguments and filter strings; user text (an optional
// title) travels as its own argv element. ffmpeg is spawned without a shell.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { sizesApart } from '../sizes-apart.ts';
import { partialPath } from '../output-file.ts';
import { resolveFfmpeg } from './ffmpeg-path.ts';
import type { RawImage } from './frames.ts';

export type VideoFormat = 'mp4' | 'webm' | 'webp' | 'gif';
export const VIDEO_FORMATS: readonly VideoFormat[] = ['mp4', 'webm', 'webp', 'gif'];

export type FrameIterable = AsyncIterable<RawImage> | Iterable<RawImage>;
/** A factory lets size-limited encodes re-render frames instead of keeping a lossless copy. */
export type FrameSource = FrameIterable | (() => FrameIterable);

export interface EncodeOptions {
  /** Output file path; without it the video is built in os.tmpdir() and only returned as bytes. */
  out?: string;
  format: VideoFormat;
  fps: number;
  /** Size of the incoming frames. */
  width: number;
  height: number;
  /** Constant-quality level: x264 CRF for mp4 (default 23), VP9 CRF for webm (default 32). Unused by webp/gif. */
  crf?: number;
  /** Upper bound on the file size; larger results are re-encoded at lower bitrate, then resolution. */
  maxBytes?: number;
  signal?: AbortSignal;
  /** Stored as container metadata where the format supports it. */
  title?: string;
}

export interface EncodeAttempt {
  width: number;
  height: number;
  sizeBytes: number;
  /** Target video bitrate in bits/s (mp4/webm size-limited attempts). */
  bitrate?: number;
  /** libwebp quality 0..100 (webp). */
  quality?: number;
}

export interface EncodeResult {
  path?: string;
  bytes: Buffer;
  format: VideoFormat;
  width: number;
  height: number;
  /**
   * Frames the file holds. Animated WebP may hold fewer than durationSeconds x fps: libwebp
   * stores a run of (near-)identical frames as one frame shown for their time.
   */
  frames: number;
  fps: number;
  durationSeconds: number;
  sizeBytes: number;
  attempts: EncodeAttempt[];
}

export class VideoTooLargeError extends Error {
  override name = 'VideoTooLargeError';
  constructor(
    readonly format: VideoFormat,
    readonly maxBytes: number,
    readonly smallestSizeBytes: number,
    readonly attempts: EncodeAttempt[],
  ) {
    const smallest = attempts.find((a) => a.sizeBytes === smallestSizeBytes);
    // Sizes as every message shows them (fileSize); exact bytes where the two would read the same ("10 MiB").
    const [smallestSize, limit] = sizesApart(smallestSizeBytes, maxBytes);
    super(
      `Could not fit the ${format} under ${limit}: the smallest attempt was ` +
        `${smallestSize}${smallest ? ` at ${smallest.width}x${smallest.height}` : ''}; ` +
        'use fewer frames, a smaller size or another format.',
    );
  }
}

/** The formats with a CRF (constant quality: lower is better), their default and their range. */
export const DEFAULT_CRF: Readonly<Record<'mp4' | 'webm', number>> = { mp4: 23, webm: 32 };
export const CRF_RANGE: Readonly<Record<'mp4' | 'webm', readonly [number, number]>> = { mp4: [0, 51], webm: [0, 63] };
/**
 * libwebp quality for animated WebP, fed yuv420p (BT.601, as WebP decoders read it). libwebp's
 * animation encoder keeps a pixel from the frame before while it changes by less than a
 * quality-dependent step (31 at quality 0, 5 at 75, 3 at 85), comparing each frame with the one
 * before, so a slow crossfade drifts away from its frames until a larger change: at 75 (fed RGB)
 * the engine's crossfades were 13 off on average, 20 at worst (GIF: 6, mp4: 3.4). At 85 fed
 * yuv420p: 2.8 on average, 3 at worst, about 2.2 times the size of 75. Lower qualities drift
 * badly, so a size limit shrinks the picture at this quality instead of lowering it.
 */
export const WEBP_QUALITY = 85;
/**
 * The fastest rate an animated image plays at in a browser (so in Discord): Chromium, Firefox and
 * Safari show a frame of 10 ms or less for 100 ms. GIF delays are whole centiseconds, so 2 cs
 * (50 fps) is the shortest; WebP's are milliseconds, 11 ms (90 fps). Faster requests are written
 * at this rate, frames dropped evenly, the same duration.
 */
export const ANIMATION_MAX_FPS: Readonly<Partial<Record<VideoFormat, number>>> = { gif: 50, webp: 90 };

/** The rate a format is written at for a requested fps (lower for animated images above their limit). */
export function writtenFps(format: VideoFormat, fps: number): number {
  return Math.min(fps, ANIMATION_MAX_FPS[format] ?? Infinity);
}

/** Frames at `from` fps as frames at the lower rate `to`: output frame j is input frame round(j * from / to). */
function resampled(frames: FrameIterable, from: number, to: number): AsyncIterable<RawImage> {
  return {
    async *[Symbol.asyncIterator]() {
      let next = 0; // output frame index
      let i = 0;
      for await (const frame of frames as AsyncIterable<RawImage>) {
        if (Math.round((next * from) / to) === i) {
          yield frame;
          next++;
        }
        i++;
      }
    },
  };
}
const RESOLUTION_STEPS = [0.75, 0.5, 0.35, 0.25];
const MIN_SIDE = 16;
const MIN_BITRATE = 8_000;
/** Headroom for one-pass rate control overshooting its target. */
const RATE_MARGIN = 0.9;

function abortError(signal?: AbortSignal): Error {
  const err = new Error('Video encoding was aborted.', { cause: signal?.reason });
  err.name = 'AbortError';
  return err;
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw abortError(signal);
}

/** ffmpeg closed its stdin (usually it died); its exit status carries the real reason. */
class InputClosedError extends Error {
  constructor() {
    super('ffmpeg stopped reading frames.');
  }
}

function validateOptions(opts: EncodeOptions): void {
  if (!VIDEO_FORMATS.includes(opts.format)) {
    throw new RangeError(`Unknown video format "${String(opts.format)}": use one of ${VIDEO_FORMATS.join(', ')}.`);
  }
  if (!Number.isFinite(opts.fps) || opts.fps <= 0) throw new RangeError(`fps must be a positive number, got ${opts.fps}.`);
  for (const key of ['width', 'height'] as const) {
    if (!Number.isInteger(opts[key]) || opts[key] < 1) throw new RangeError(`${key} must be a positive integer, got ${opts[key]}.`);
  }
  if (opts.crf !== undefined && (opts.format === 'mp4' || opts.format === 'webm')) {
    const [lo, hi] = CRF_RANGE[opts.format];
    if (!Number.isInteger(opts.crf) || opts.crf < lo || opts.crf > hi) {
      throw new RangeError(`crf for ${opts.format} must be an integer from ${lo} to ${hi}, got ${opts.crf}.`);
    }
  }
  if (opts.maxBytes !== undefined && !(Number.isFinite(opts.maxBytes) && opts.maxBytes > 0)) {
    throw new RangeError(`maxBytes must be a positive number, got ${opts.maxBytes}.`);
  }
  if (opts.out !== undefined && opts.out === '') throw new RangeError('out must be a file path or left out.');
}

const needsEvenSize = (format: VideoFormat): boolean => format === 'mp4' || format === 'webm';

function outputSize(format: VideoFormat, width: number, height: number, scale: number): { width: number; height: number } {
  if (needsEvenSize(format)) {
    // yuv420p subsamples chroma 2x2, so x264 refuses odd sizes.
    // Full size rounds up (padded by one pixel); smaller sizes round to the nearest even number.
    const even = (n: number) => Math.max(2, 2 * (scale === 1 ? Math.ceil(n / 2) : Math.round((n * scale) / 2)));
    return { width: even(width), height: even(height) };
  }
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** The size a full-size (first) attempt writes: the frames' size, made even where the codec needs it. */
export function fullSize(format: VideoFormat, width: number, height: number): { width: number; height: number } {
  return outputSize(format, width, height, 1);
}

interface AttemptSettings {
  width: number;
  height: number;
  bitrate?: number;
  quality?: number;
}

/**
 * Filters made from numbers only. Same size: none; one pixel more (an even size from an odd one):
 * a pad whose new column/row repeats the edge pixels (fillborders smear; a black pad showed as a
 * dark line); smaller: a scale.
 */
function sizeFilter(inputWidth: number, inputHeight: number, s: AttemptSettings): string | undefined {
  if (s.width === inputWidth && s.height === inputHeight) return undefined;
  if (s.width >= inputWidth && s.height >= inputHeight) {
    const right = s.width - inputWidth;
    const bottom = s.height - inputHeight;
    return `pad=${s.width}:${s.height}:0:0,fillborders=right=${right}:bottom=${bottom}:mode=smear`;
  }
  return `scale=${s.width}:${s.height}:flags=lanczos`;
}

/**
 * mp4/webm: RGB to limited-range BT.709 YUV, tagged so. Untagged, ffmpeg converted with BT.601
 * and players that assume BT.709 for untagged video (most browsers, for HD) shifted the colours.
 */
const BT709_FILTER = 'scale=out_color_matrix=bt709:out_range=tv,format=yuv420p';
const BT709_TAGS = ['-colorspace', 'bt709', '-color_primaries', 'bt709', '-color_trc', 'bt709', '-color_range', 'tv'];

function outputArgs(opts: EncodeOptions, s: AttemptSettings): string[] {
  const filter = sizeFilter(opts.width, opts.height, s);
  const vf = filter ? ['-vf', filter] : [];
  const vf709 = ['-vf', filter ? `${filter},${BT709_FILTER}` : BT709_FILTER];
  const title = opts.title ? ['-metadata', `title=${opts.title.replace(/[\u0000-\u001f]/g, ' ')}`] : [];
  switch (opts.format) {
    case 'mp4': {
      // The VBV cap matters: plain one-pass ABR overshoots its target several-fold on short clips.
      const rate =
        s.bitrate !== undefined
          ? ['-b:v', String(s.bitrate), '-maxrate', String(s.bitrate), '-bufsize', String(2 * s.bitrate)]
          : ['-crf', String(opts.crf ?? DEFAULT_CRF.mp4)];
      return [...vf709, '-c:v', 'libx264', '-pix_fmt', 'yuv420p', ...BT709_TAGS, ...rate, '-movflags', '+faststart', ...title, '-f', 'mp4'];
    }
    case 'webm': {
      const rate = s.bitrate !== undefined ? ['-b:v', String(s.bitrate)] : ['-crf', String(opts.crf ?? DEFAULT_CRF.webm), '-b:v', '0'];
      // realtime/cpu-used 8 trades some compression for speed; fine for short clips on small servers.
      const speed = ['-deadline', 'realtime', '-cpu-used', '8', '-row-mt', '1'];
      return [...vf709, '-c:v', 'libvpx-vp9', '-pix_fmt', 'yuv420p', ...BT709_TAGS, ...rate, ...speed, ...title, '-f', 'webm'];
    }
    case 'webp':
      // yuv420p: fed RGB, libwebp's animation encoder drifted several times further (see WEBP_QUALITY).
      return [...vf, '-c:v', 'libwebp_anim', '-pix_fmt', 'yuv420p', '-lossless', '0', '-quality', String(s.quality ?? WEBP_QUALITY), '-loop', '0', ...title, '-f', 'webp'];
    case 'gif': {
      // One pass: split the stream, build a palette from one copy, apply it to the other.
      const palette = 'split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither=bayer:bayer_scale=3:diff_mode=rectangle';
      return ['-vf', filter ? `${filter},${palette}` : palette, '-loop', '0', '-f', 'gif'];
    }
  }
}

type FfmpegInput = { kind: 'pipe'; frames: FrameIterable } | { kind: 'file'; path: string };

function inputArgs(opts: EncodeOptions, input: FfmpegInput): string[] {
  if (input.kind === 'file') return ['-nostdin', '-i', input.path];
  return ['-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${opts.width}x${opts.height}`, '-framerate', String(opts.fps), '-i', 'pipe:0'];
}

function iteratorOf(frames: FrameIterable): AsyncIterator<RawImage> | Iterator<RawImage> {
  if (Symbol.asyncIterator in frames) return (frames as AsyncIterable<RawImage>)[Symbol.asyncIterator]();
  return (frames as Iterable<RawImage>)[Symbol.iterator]();
}

function waitForDrain(stream: Writable): Promise<void> {
  if (stream.destroyed) return Promise.reject(new InputClosedError());
  return new Promise((resolve, reject) => {
    const finish = (err?: Error) => {
      stream.off('drain', onDrain);
      stream.off('close', onClosed);
      stream.off('error', onClosed);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => finish();
    const onClosed = () => finish(new InputClosedError());
    stream.on('drain', onDrain);
    stream.on('close', onClosed);
    stream.on('error', onClosed);
  });
}

/** Writes every frame to ffmpeg's stdin, waiting for 'drain' so memory stays bounded. */
async function pumpFrames(frames: FrameIterable, stdin: Writable, opts: EncodeOptions): Promise<number> {
  const { signal } = opts;
  const frameBytes = opts.width * opts.height * 3;
  const iterator = iteratorOf(frames);
  // Races each next() against the signal so a slow frame producer cannot delay an abort.
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortError(signal));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => {});
  let count = 0;
  let finished = false;
  try {
    for (;;) {
      throwIfAborted(signal);
      const step = await Promise.race([Promise.resolve(iterator.next()), aborted]);
      if (step.done) break;
      const frame = step.value;
      if (frame.width !== opts.width || frame.height !== opts.height || frame.channels !== 3 || frame.data.length < frameBytes) {
        throw new RangeError(
          `Frame ${count} is ${frame.width}x${frame.height}x${frame.channels} (${frame.data.length} bytes) but the video is ` +
            `${opts.width}x${opts.height} RGB: every frame must match opts.width/opts.height.`,
        );
      }
      if (stdin.destroyed || stdin.writableEnded) throw new InputClosedError();
      const data = frame.data.length === frameBytes ? frame.data : frame.data.subarray(0, frameBytes);
      count++;
      if (!stdin.write(data)) await waitForDrain(stdin);
    }
    finished = true;
    stdin.end();
    return count;
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    // Lets a generator run its cleanup when we stop early; it may still be busy, so don't wait.
    if (!finished) void Promise.resolve(iterator.return?.()).catch(() => {});
  }
}

function lastLines(text: string): string {
  const lines = text.trim().split('\n').filter((l) => l.trim() !== '');
  return lines.slice(-3).join(' | ') || 'no error output';
}

/** Runs ffmpeg once; resolves with the number of frames streamed in (0 for file input). */
async function runFfmpeg(ffmpeg: string, args: string[], input: FfmpegInput, opts: EncodeOptions): Promise<number> {
  const { signal } = opts;
  throwIfAborted(signal);
  const piped = input.kind === 'pipe';
  const child = spawn(ffmpeg, args, { stdio: [piped ? 'pipe' : 'ignore', 'ignore', 'pipe'], windowsHide: true });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, sig) => resolve({ code, signal: sig }));
  });
  exited.catch(() => {}); // awaited below, after the pump; avoids an unhandled rejection meanwhile
  const kill = () => {
    child.kill('SIGKILL');
  };
  signal?.addEventListener('abort', kill, { once: true });
  try {
    let written = 0;
    let pumpError: unknown;
    if (input.kind === 'pipe') {
      // EPIPE when ffmpeg dies is expected; the exit status below says why it died.
      child.stdin!.on('error', () => {});
      try {
        written = await pumpFrames(input.frames, child.stdin!, opts);
      } catch (err) {
        pumpError = err;
        kill();
      }
    }
    let exit: { code: number | null; signal: NodeJS.Signals | null };
    try {
      exit = await exited;
    } catch (err) {
      throw new Error(`Could not start ffmpeg at ${ffmpeg}: ${(err as Error).message}; check FFMPEG_PATH or the ffmpeg install.`);
    }
    if (signal?.aborted) throw abortError(signal);
    if (pumpError && !(pumpError instanceof InputClosedError)) throw pumpError;
    if (exit.code !== 0) {
      throw new Error(`ffmpeg failed (${exit.code !== null ? `exit code ${exit.code}` : exit.signal}) encoding ${opts.format}: ${lastLines(stderr)}`);
    }
    // Some ffmpeg builds (the 2018 one @ffmpeg-installer ships) exit 0 when the disk fills while
    // they finish the file: an mp4 without its index, a webm cut short. Their error says so.
    if (WRITE_FAILED.test(stderr)) {
      throw new Error(`ffmpeg could not finish writing the ${opts.format} (${lastLines(stderr)}); check that the disk has room and can be written to`);
    }
    if (pumpError) throw pumpError;
    return written;
  } finally {
    signal?.removeEventListener('abort', kill);
  }
}

/** The frames (ANMF chunks) an animated WebP holds; 1 for a still one. */
function storedWebpFrames(b: Buffer): number {
  let frames = 0;
  for (let at = 12; at + 8 <= b.length; ) {
    const size = b.readUInt32LE(at + 4);
    if (b.toString('latin1', at, at + 4) === 'ANMF') frames++;
    at += 8 + size + (size & 1);
  }
  return Math.max(1, frames);
}

/** What ffmpeg says when it could not write its output, whatever its exit status. */
const WRITE_FAILED = /Error writing trailer|No space left on device|Disk quota exceeded|Input\/output error/i;

/** Bitrate that should land a video of this length under maxBytes, leaving room for the container. */
function budgetBitrate(maxBytes: number, frames: number, durationSeconds: number): number {
  const containerBytes = 1024 + 24 * frames;
  const payloadBytes = maxBytes * RATE_MARGIN - containerBytes;
  return Math.max(MIN_BITRATE, Math.floor((payloadBytes * 8) / durationSeconds));
}

/** Scales a bitrate that produced `size` bytes towards one that lands under maxBytes. */
function correctedBitrate(bitrate: number, size: number, maxBytes: number): number {
  return Math.max(MIN_BITRATE, Math.floor(bitrate * (maxBytes / size) * RATE_MARGIN));
}

/**
 * Encodes frames into a video. With `maxBytes`, an oversized result is re-encoded at a computed
 * bitrate (two tries), then at smaller resolutions, until it fits; every try is in `attempts`.
 */
export async function encodeVideo(source: FrameSource, requested: EncodeOptions): Promise<EncodeResult> {
  validateOptions(requested);
  throwIfAborted(requested.signal);
  // Animated images above the rate players show: every frame's time kept, fewer frames.
  const fps = writtenFps(requested.format, requested.fps);
  const opts: EncodeOptions = { ...requested, fps };
  const frames: FrameSource =
    fps === requested.fps ? source : typeof source === 'function' ? () => resampled(source(), requested.fps, fps) : resampled(source, requested.fps, fps);
  const ffmpeg = resolveFfmpeg().path;
  // Written beside `out` under a temporary name and renamed onto it once it is whole, so a failed
  // or stopped encode leaves nothing half-written there and never removes a file already there.
  const partial = opts.out ? partialPath(opts.out) : undefined;
  const workDir = await mkdtemp(path.join(tmpdir(), 'blendfarm-video-'));
  const target = partial?.path ?? path.join(workDir, `video.${opts.format}`);
  // A one-shot iterable cannot be replayed, so a size-limited encode also writes a lossless
  // FFV1 copy during the first pass for later attempts to read.
  const replay = opts.maxBytes !== undefined && typeof frames !== 'function' ? path.join(workDir, 'frames.nut') : undefined;
  const attempts: EncodeAttempt[] = [];
  let frameCount = 0;

  const encodeAttempt = async (settings: AttemptSettings): Promise<number> => {
    const first = attempts.length === 0;
    let input: FfmpegInput;
    if (first) input = { kind: 'pipe', frames: typeof frames === 'function' ? frames() : frames };
    else if (replay) input = { kind: 'file', path: replay };
    else input = { kind: 'pipe', frames: (frames as () => FrameIterable)() };

    const args = ['-hide_banner', '-loglevel', 'error', '-nostats', '-y', ...inputArgs(opts, input), ...outputArgs(opts, settings), target];
    if (first && replay) args.push('-c:v', 'ffv1', '-f', 'nut', replay);
    const written = await runFfmpeg(ffmpeg, args, input, opts);
    if (first) {
      if (written === 0) throw new RangeError('No frames were given to encode.');
      frameCount = written;
    } else if (input.kind === 'pipe' && written !== frameCount) {
      throw new RangeError(`The frame factory produced ${written} frames this time and ${frameCount} the first time; it must replay the same frames.`);
    }
    const sizeBytes = (await stat(target)).size;
    attempts.push({ ...settings, sizeBytes });
    return sizeBytes;
  };

  const finish = async (settings: AttemptSettings): Promise<EncodeResult> => {
    const bytes = await readFile(target);
    if (opts.out) await rename(target, opts.out);
    return {
      path: opts.out,
      bytes,
      format: opts.format,
      width: settings.width,
      height: settings.height,
      frames: opts.format === 'webp' ? storedWebpFrames(bytes) : frameCount,
      fps: opts.fps,
      durationSeconds: frameCount / opts.fps,
      sizeBytes: bytes.length,
      attempts,
    };
  };

  try {
    const full = fullSize(opts.format, opts.width, opts.height);
    const initial: AttemptSettings = opts.format === 'webp' ? { ...full, quality: WEBP_QUALITY } : { ...full };
    let size = await encodeAttempt(initial);
    const maxBytes = opts.maxBytes;
    if (maxBytes === undefined || size <= maxBytes) return await finish(initial);

    // Lower the rate at full resolution first: it costs less detail than shrinking.
    let rate: Pick<AttemptSettings, 'bitrate' | 'quality'> = initial.quality === undefined ? {} : { quality: initial.quality };
    if (opts.format === 'mp4' || opts.format === 'webm') {
      const durationSeconds = frameCount / opts.fps;
      for (let i = 0; i < 2; i++) {
        const bitrate = rate.bitrate === undefined ? budgetBitrate(maxBytes, frameCount, durationSeconds) : correctedBitrate(rate.bitrate, size, maxBytes);
        // Already at the floor: another try at this size would repeat the last one.
        if (bitrate === rate.bitrate) break;
        rate = { bitrate };
        const settings = { ...full, ...rate };
        size = await encodeAttempt(settings);
        if (size <= maxBytes) return await finish(settings);
      }
    }
    // webp: no lower quality (it drifts, see WEBP_QUALITY); straight to smaller sizes.

    let previous = full;
    for (const scale of RESOLUTION_STEPS) {
      const dims = outputSize(opts.format, opts.width, opts.height, scale);
      if (Math.min(dims.width, dims.height) < MIN_SIDE) break;
      if (dims.width === previous.width && dims.height === previous.height) continue;
      previous = dims;
      const settings = { ...dims, ...rate };
      size = await encodeAttempt(settings);
      if (size <= maxBytes) return await finish(settings);
      // One-pass rate control overshoots on short clips; aim lower along with the smaller size.
      if (rate.bitrate !== undefined) rate = { bitrate: correctedBitrate(rate.bitrate, size, maxBytes) };
    }
    const smallest = Math.min(...attempts.map((a) => a.sizeBytes));
    throw new VideoTooLargeError(opts.format, maxBytes, smallest, attempts);
  } catch (err) {
    // No partial or oversized file is left beside the caller's path; a file already at it stays.
    if (opts.out) await rm(target, { force: true });
    throw err;
  } finally {
    partial?.settled();
    await rm(workDir, { recursive: true, force: true });
  }
}
