/**
 * The engine's rules for a requested video, written once: frame rate, seconds per segment, format
 * and size limit. Render entry points (renderVideo, renderVariationVideo) check them before any
 * rendering, so a bad value fails at once instead of after minutes of UNet work; segmentsToVideo
 * checks them again for callers that encode directly. And how much a finished video may be
 * upscaled (upscaleVideoIssue: frame size and output pixels), which callers check from its probe.
 */
import { InvalidRequestError } from '../errors.ts';
import { IMAGE_INPUT_LIMITS } from '../input-image.ts';
import { VIDEO_FORMATS, type VideoFormat } from './encode.ts';
import type { VideoProbe } from './probe.ts';

export const MIN_FPS = 1;
export const MAX_FPS = 120;
/** Longest segment (one transition of a movie), in seconds. */
export const MAX_SEGMENT_SECONDS = 600;
/**
 * Most pixels an upscaled video may have in all: frames x output width x output height. The
 * upscalers' time goes per output pixel (bench/results/upscale.md: about 3 s per megapixel for
 * esrgan-slim on two CPU cores; the farm prices 0.05 GPU-seconds), so this bounds the work: some
 * 100 GPU-seconds, over an hour on a CPU. At 2x it also keeps the decoded input frames (a quarter
 * of the pixels, 3 bytes each: 1.5 GB) within what decodeVideoFrames reads (2 GiB). Of a 4K video
 * at 4x (133 megapixels a frame) 15 frames fit.
 */
export const MAX_UPSCALED_VIDEO_PIXELS = 2_000_000_000;

/** Megapixels and gigapixels as the messages write them. */
const megapixels = (pixels: number) => Number((pixels / 1e6).toFixed(1));
const gigapixels = (pixels: number) => Number((pixels / 1e9).toFixed(3));

/**
 * Why a video cannot be upscaled `scale` times per side, or undefined when it can: a frame over
 * the picture pixel limit (IMAGE_INPUT_LIMITS.maxPixels, as for a picture to upscale), or more
 * output than MAX_UPSCALED_VIDEO_PIXELS. From its probe, before any model loads or frame decodes;
 * `label` names it (the file as the user gave it). Frames: the probe's count, else duration x fps.
 */
export function upscaleVideoIssue(label: string, source: Pick<VideoProbe, 'width' | 'height' | 'frames' | 'fps' | 'durationSeconds'>, scale: number): string | undefined {
  const { width, height } = source;
  const maxFramePixels = IMAGE_INPUT_LIMITS.maxPixels;
  if (width * height > maxFramePixels) {
    // The widest even width whose even height (ffmpeg's scale=W:-2) keeps the frame within the limit.
    let fit = 2 * Math.floor((width * Math.sqrt(maxFramePixels / (width * height))) / 2);
    while (fit > 2 && fit * 2 * Math.ceil((height * fit) / width / 2) > maxFramePixels) fit -= 2;
    return (
      `${label} has frames of ${width}x${height} (${megapixels(width * height)} megapixels), more than the ${megapixels(maxFramePixels)}-megapixel limit of a picture to upscale; ` +
      `shrink it to at most ${fit} pixels wide first, e.g. ffmpeg -i ${label} -vf scale=${fit}:-2 smaller.mp4`
    );
  }
  const frames = source.frames > 0 ? source.frames : Math.ceil(source.durationSeconds * source.fps);
  const outWidth = width * scale;
  const outHeight = height * scale;
  const perFrame = outWidth * outHeight;
  if (frames * perFrame <= MAX_UPSCALED_VIDEO_PIXELS) return undefined;
  const fitting = Math.floor(MAX_UPSCALED_VIDEO_PIXELS / perFrame);
  const what = `${label} upscaled ${scale}x makes ${frames} frame${frames === 1 ? '' : 's'} of ${outWidth}x${outHeight}, ${gigapixels(frames * perFrame)} gigapixels in all, more than the ${gigapixels(MAX_UPSCALED_VIDEO_PIXELS)}-gigapixel limit`;
  if (fitting === 0) return `${what} (one frame is ${gigapixels(perFrame)} gigapixels); upscale it at a smaller scale, or shrink it first (e.g. ffmpeg -i ${label} -vf scale=iw/2:-2 smaller.mp4)`;
  return `${what}; at this size and scale ${fitting === 1 ? '1 frame fits' : `${fitting} frames fit`}: upscale a part (e.g. ffmpeg -i ${label} -frames:v ${fitting} part.mp4), at a smaller scale, or shrink it first`;
}

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
