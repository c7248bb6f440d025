/**
 * The engine's rules for a requested video, written once: frame rate, seconds per segment, format
 * and size limit. Render entry points (renderVideo, renderVariationVideo) check them before any
 * rendering, so a bad value fails at once instead of after minutes of UNet work; segmentsToVideo
 * checks them again for callers that encode directly.
 */
import { InvalidRequestError } from '../errors.ts';
import { VIDEO_FORMATS, type VideoFormat } from './encode.ts';

export const MIN_FPS = 1;
export const MAX_FPS = 120;
/** Longest segment (one transition of a movie), in seconds. */
export const MAX_SEGMENT_SECONDS = 600;

export function checkFps(fps: number): void {
  if (!(typeof fps === 'number' && fps >= MIN_FPS && fps <= MAX_FPS)) throw new InvalidRequestError(`fps must be between ${MIN_FPS} and ${MAX_FPS}, got ${fps}`);
}

/** The output format and size limit of a video (format defaults to mp4 where it is left out). */
export function checkVideoOutput(format: VideoFormat | undefined, maxBytes: number | undefined): void {
  if (format !== undefined && !VIDEO_FORMATS.includes(format)) {
    throw new InvalidRequestError(`unknown video format "${String(format)}"; use one of ${VIDEO_FORMATS.join(', ')}`);
  }
  if (maxBytes !== undefined && !(typeof maxBytes === 'number' && Number.isFinite(maxBytes) && maxBytes > 0)) {
    throw new InvalidRequestError(`the size limit (maxBytes) must be a positive number of bytes, got ${maxBytes}`);
  }
}

/** Seconds of each of `segments` segments: one number for all, or exactly one per segment. Returns them. */
export function segmentDurations(duration: number | readonly number[], segments: number): number[] {
  if (Array.isArray(duration) && duration.length !== segments) {
    throw new InvalidRequestError(`${duration.length} durations for ${segments} transition${segments === 1 ? '' : 's'}; give one number for all or one per transition`);
  }
  const durations = Array.from({ length: segments }, (_, i) => (Array.isArray(duration) ? duration[i] : (duration as number)));
  durations.forEach((d, i) => {
    if (!(typeof d === 'number' && d > 0 && d <= MAX_SEGMENT_SECONDS)) {
      throw new InvalidRequestError(`segment ${i + 1} duration must be more than 0 and at most ${MAX_SEGMENT_SECONDS} seconds, got ${d}`);
    }
  });
  return durations;
}

/** Every rule of a movie's video at once. */
export function checkVideoRequest(segments: number, opts: { fps: number; duration: number | readonly number[]; format?: VideoFormat; maxBytes?: number }): number[] {
  checkFps(opts.fps);
  const durations = segmentDurations(opts.duration, segments);
  checkVideoOutput(opts.format, opts.maxBytes);
  return durations;
}
