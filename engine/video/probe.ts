// Reads back what a video file actually contains, for tests and for callers checking output.
import { execFile } from 'node:child_process';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { resolveFfprobe } from './ffmpeg-path.ts';

const execFileAsync = promisify(execFile);

export interface VideoProbe {
  /** 'mp4' | 'webm' | 'webp' | 'gif', or ffprobe's own name for other containers. */
  format: string;
  codec: string;
  width: number;
  height: number;
  /**
   * Decoded frames (ffprobe -count_frames); for animated webp the frames at its rate (a stored
   * frame that lasts several frame times counts as that many: the encoder merges repeats).
   */
  frames: number;
  fps: number;
  durationSeconds: number;
  pixFmt: string;
}

export interface ProbeOptions {
  signal?: AbortSignal;
  /**
   * Count packets instead of decoding every frame (much faster on long videos): exact for the
   * streams the engine writes (one packet per shown frame in mp4/H.264 and webm/VP9). Default false.
   */
  countPackets?: boolean;
}

interface FfprobeJson {
  streams?: Array<{
    codec_name?: string;
    width?: number;
    height?: number;
    pix_fmt?: string;
    avg_frame_rate?: string;
    r_frame_rate?: string;
    nb_read_frames?: string;
    nb_read_packets?: string;
    nb_frames?: string;
    duration?: string;
  }>;
  format?: { format_name?: string; duration?: string };
}

function parseRate(rate: string | undefined): number {
  if (!rate) return 0;
  const [num, den] = rate.split('/').map(Number);
  if (den === undefined) return Number.isFinite(num) ? num : 0;
  return den > 0 && Number.isFinite(num) ? num / den : 0;
}

function parseNumber(value: string | undefined): number | undefined {
  if (value === undefined || value === 'N/A') return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

function normaliseFormat(formatName: string): string {
  const names = formatName.split(',');
  for (const known of ['mp4', 'webm', 'gif']) if (names.includes(known)) return known;
  return names[0] ?? formatName;
}

/** A RIFF/WEBP file (still or animated), from its first 12 bytes. */
export function isWebp(header: Uint8Array): boolean {
  const text = Buffer.from(header.subarray(0, 12)).toString('latin1');
  return text.startsWith('RIFF') && text.slice(8, 12) === 'WEBP';
}

const u24 = (b: Buffer, at: number): number => b[at] | (b[at + 1] << 8) | (b[at + 2] << 16);

/**
 * Reads an (animated) WebP from its RIFF chunks: the ffprobe builds in use cannot decode
 * animated WebP, so the container is parsed directly.
 */
export function probeWebp(bytes: Uint8Array): VideoProbe {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!isWebp(b)) throw new Error('Not a WebP file: the RIFF/WEBP header is missing.');
  let width = 0;
  let height = 0;
  let frames = 0;
  let durationMs = 0;
  let lossless = false;
  let alpha = false;
  let shortestDelay = Infinity;
  const visit = (start: number, end: number, inFrame: boolean): void => {
    let at = start;
    while (at + 8 <= end) {
      const id = b.toString('latin1', at, at + 4);
      const size = b.readUInt32LE(at + 4);
      const body = at + 8;
      if (body + size > b.length) throw new Error(`WebP chunk ${id} runs past the end of the file (truncated?).`);
      if (id === 'VP8X') {
        width = u24(b, body + 4) + 1;
        height = u24(b, body + 7) + 1;
      } else if (id === 'ANMF') {
        frames++;
        const delay = u24(b, body + 12);
        durationMs += delay;
        if (delay > 0) shortestDelay = Math.min(shortestDelay, delay);
        visit(body + 16, body + size, true);
      } else if (id === 'ALPH') {
        alpha = true;
      } else if (id === 'VP8L' || id === 'VP8 ') {
        if (id === 'VP8L') lossless = true;
        if (!inFrame) {
          // A still image without VP8X: the size lives in the bitstream header.
          frames = 1;
          if (id === 'VP8 ') {
            width = b.readUInt16LE(body + 6) & 0x3fff;
            height = b.readUInt16LE(body + 8) & 0x3fff;
          } else {
            const bits = b.readUInt32LE(body + 1);
            width = (bits & 0x3fff) + 1;
            height = ((bits >> 14) & 0x3fff) + 1;
          }
        }
      }
      at = body + size + (size & 1);
    }
  };
  visit(12, Math.min(b.length, 8 + b.readUInt32LE(4)), false);
  const durationSeconds = durationMs / 1000;
  // The encoder (libwebp_anim) stores a run of near-identical frames as one longer frame, so the
  // stored frames are not the video's: the rate is the shortest frame's (rounded to a whole rate,
  // as delays are whole milliseconds), and the frames are the duration at that rate.
  const fps = Number.isFinite(shortestDelay) ? webpFrameRate(shortestDelay) : durationSeconds > 0 ? frames / durationSeconds : 0;
  return {
    format: 'webp',
    codec: 'webp',
    width,
    height,
    frames: fps > 0 && frames > 1 ? Math.round(durationSeconds * fps) : frames,
    fps,
    durationSeconds,
    pixFmt: lossless ? 'argb' : alpha ? 'yuva420p' : 'yuv420p',
  };
}

/** The frame rate an animated WebP was written at, from its shortest frame delay (whole milliseconds). */
function webpFrameRate(shortestDelayMs: number): number {
  return Math.max(1, Math.round(1000 / shortestDelayMs));
}

async function readHeader(file: string): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const header = Buffer.alloc(12);
    const { bytesRead } = await handle.read(header, 0, 12, 0);
    return header.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

async function runFfprobe(file: string, signal?: AbortSignal, countPackets = false): Promise<VideoProbe> {
  const ffprobe = resolveFfprobe().path;
  const args = [
    '-v', 'error', countPackets ? '-count_packets' : '-count_frames', '-select_streams', 'v:0',
    '-show_entries', 'stream=codec_name,width,height,pix_fmt,avg_frame_rate,r_frame_rate,nb_read_frames,nb_read_packets,nb_frames,duration:format=format_name,duration',
    '-of', 'json', file,
  ];
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(ffprobe, args, { maxBuffer: 16 * 1024 * 1024, signal, windowsHide: true }));
  } catch (err) {
    if (signal?.aborted) throw err;
    const detail = ((err as { stderr?: string }).stderr ?? (err as Error).message).trim().split('\n').pop();
    throw new Error(`ffprobe could not read ${path.basename(file)}: ${detail}`);
  }
  const json = JSON.parse(stdout) as FfprobeJson;
  const stream = json.streams?.[0];
  if (!stream) throw new Error(`${path.basename(file)} has no video stream.`);
  const format = normaliseFormat(json.format?.format_name ?? 'unknown');
  const frames = (countPackets ? parseNumber(stream.nb_read_packets) : parseNumber(stream.nb_read_frames)) ?? parseNumber(stream.nb_frames) ?? 0;
  const durationSeconds = parseNumber(stream.duration) ?? parseNumber(json.format?.duration) ?? 0;
  // GIF delays are whole centiseconds, so its nominal rates are meaningless; derive it instead.
  const nominal = parseRate(stream.avg_frame_rate) || parseRate(stream.r_frame_rate);
  const fps = format !== 'gif' && nominal > 0 ? nominal : durationSeconds > 0 ? frames / durationSeconds : 0;
  return {
    format,
    codec: stream.codec_name ?? 'unknown',
    width: stream.width ?? 0,
    height: stream.height ?? 0,
    frames,
    fps,
    durationSeconds,
    pixFmt: stream.pix_fmt ?? 'unknown',
  };
}

/** Probes a video file (path) or in-memory video (bytes). */
export async function probeVideo(input: string | Uint8Array, opts: ProbeOptions = {}): Promise<VideoProbe> {
  if (typeof input === 'string') {
    if (isWebp(await readHeader(input))) return probeWebp(await readFile(input));
    return runFfprobe(input, opts.signal, opts.countPackets);
  }
  if (isWebp(input)) return probeWebp(input);
  // ffprobe needs a seekable input for mp4 without faststart, so bytes go through a temp file.
  const dir = await mkdtemp(path.join(tmpdir(), 'blendfarm-probe-'));
  try {
    const file = path.join(dir, 'video');
    await writeFile(file, input);
    return await runFfprobe(file, opts.signal, opts.countPackets);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
