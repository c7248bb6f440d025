/**
 * Re-encoding a finished video to fit a server's upload limit, in the bot's own process. Uses the
 * engine's ffmpeg layer (no ONNX): decode the frames, encode again under the byte limit (lower
 * bitrate, then size). The work is bounded: the decoded frames are held in memory, so they are
 * decoded at a smaller size when the full size would exceed SHRINK_MAX_RAW_BYTES (down to
 * SHRINK_MIN_SCALE per side, not at all for animated WebP; the encoder's own size steps go
 * further), a video that would need less than that is not shrunk here, and the whole shrink stops after SHRINK_TIMEOUT_MS.
 * Whatever stops a shrink is final for that video (the same bytes fail the same way again), so it
 * is answered with why, never thrown for a retry.
 */
import { decodeVideoFrames, encodeVideo, probeVideo, VideoTooLargeError, type VideoFormat } from '../engine/index.ts';
import { duration } from './format.ts';

/** The most decoded RGB (frames × width × height × 3) one shrink holds in memory: 512 MiB. */
export const SHRINK_MAX_RAW_BYTES = 512 * 1024 * 1024;
/** The smallest per-side scale the frames are decoded at to stay within the raw cap. */
export const SHRINK_MIN_SCALE = 0.25;
/** The longest one shrink (probe, decode, every encode attempt) may take. */
export const SHRINK_TIMEOUT_MS = 5 * 60_000;

export interface ShrinkOptions {
  /** Default SHRINK_MAX_RAW_BYTES. */
  maxRawBytes?: number;
  /** Default SHRINK_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Stops the shrink early (the bot stopping); the result then says nothing final (the caller knows why). */
  signal?: AbortSignal;
}

/** The re-encoded video, or why there is none (in words for the job's message) and the error behind it. */
export type ShrinkResult = { bytes: Buffer } | { bytes?: undefined; why: string; cause?: unknown };

/** The even side at most `n` (never rounded up: the decoded frames would pass the cap). */
const evenAtMost = (n: number) => Math.max(2, 2 * Math.floor(n / 2));

/** Why a shrink that ran past its time limit (`timeoutMs`) has no video, the limit said as every bot message says a duration. */
export function timeoutWhy(timeoutMs: number): string {
  return `re-encoding it smaller took longer than ${duration(timeoutMs / 1000)}`;
}

export async function shrinkVideo(video: Buffer, format: string, maxBytes: number, opts: ShrinkOptions = {}): Promise<ShrinkResult> {
  const maxRaw = opts.maxRawBytes ?? SHRINK_MAX_RAW_BYTES;
  const timeoutMs = opts.timeoutMs ?? SHRINK_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  try {
    // Packets, not decoded frames: counting needs no decode (exact for the streams the engine writes).
    const info = await probeVideo(video, { signal, countPackets: true });
    if (!(info.width > 0 && info.height > 0)) return { why: 'it could not be read back to re-encode it' };
    const raw = info.width * info.height * 3 * Math.max(1, info.frames);
    // An animated WebP is decoded whole at its own size (libvips) before any scaling: no smaller decode.
    const scale = Math.min(1, Math.sqrt(maxRaw / raw));
    if (scale < (info.format === 'webp' ? 1 : SHRINK_MIN_SCALE)) {
      return { why: `it is too long and too large (${info.frames} frames of ${info.width}×${info.height}) to be re-encoded smaller here` };
    }
    const width = scale < 1 ? evenAtMost(info.width * scale) : info.width;
    const height = scale < 1 ? evenAtMost(info.height * scale) : info.height;
    const frames = await decodeVideoFrames(video, width, height, signal);
    const out = await encodeVideo(() => frames, { format: format as VideoFormat, fps: info.fps || 12, width, height, maxBytes, signal });
    return { bytes: out.bytes };
  } catch (err) {
    if (err instanceof VideoTooLargeError) return { why: 'even re-encoded at a lower quality and a smaller size it does not fit', cause: err };
    if (opts.signal?.aborted) return { why: 'the re-encoding was stopped', cause: err };
    if (timeout.aborted) return { why: timeoutWhy(timeoutMs), cause: err };
    return { why: 'it could not be re-encoded smaller', cause: err };
  }
}
