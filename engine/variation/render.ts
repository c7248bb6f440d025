/**
 * One variation-animation request in, one video out: what a farm worker (and `npm run vary`) calls
 * for an image-variation model. Plain data, like RenderRequest.
 */
import type { ImageVariationPipeline } from './pipeline.ts';
import { renderVariations, type VariationOptions } from './animation.ts';
import { decodeImage, type ImageInput, type ImageInputLimits } from '../input-image.ts';
import { encodeVideo, type VideoFormat } from '../video/encode.ts';
import { encodePng, type RawImage } from '../image.ts';
import { checkFps, checkVideoOutput } from '../video/rules.ts';
import { type RenderTimings, timingTotals, timingsSince } from '../pipeline/timings.ts';

export interface VariationRequest extends Omit<VariationOptions, 'image' | 'signal' | 'onFrames'> {
  /** The start picture as uploaded (PNG/JPEG/WebP bytes) or decoded RGB, at its own size: the model's CLIP processor crops it. */
  image: ImageInput;
  /** Frames per second of the video (the source's default 20). */
  fps?: number;
  format?: VideoFormat;
  maxBytes?: number;
  imageLimits?: ImageInputLimits;
}

export interface VariationProgress {
  fraction: number;
  framesDone: number;
  framesTotal: number;
  preview?: RawImage;
}

export interface VariationOutput {
  video: Buffer;
  format: VideoFormat;
  seed: number;
  frames: number;
  variations: number;
  durationSeconds: number;
  width: number;
  height: number;
  sizeBytes: number;
  renderSeconds: number;
  encodeSeconds: number;
  /** PNG of the last variation. */
  thumbnail: Buffer;
  /** UNet runs by batch size and VAE decodes, with their milliseconds (as RenderOutput.timings). */
  timings: RenderTimings;
  /** Mean cosine similarity of each variation's embedding with the positive prompts (null without any). */
  positiveSimilarity: Array<number | null>;
}

export const DEFAULT_VARIATION_FPS = 20;

export async function renderVariationVideo(
  pipe: ImageVariationPipeline,
  req: VariationRequest,
  opts: { signal?: AbortSignal; onProgress?: (p: VariationProgress) => void; out?: string } = {},
): Promise<VariationOutput> {
  const t0 = performance.now();
  const fps = req.fps ?? DEFAULT_VARIATION_FPS;
  checkFps(fps);
  checkVideoOutput(req.format, req.maxBytes);
  pipe.resolve(req); // the request's sizes and steps, checked before the picture is decoded
  // As uploaded: CLIP's processor crops it (not the render size), as diffusers does.
  const image = await decodeImage(req.image, 'the start picture', req.imageLimits);
  const timingsBefore = timingTotals(pipe);
  const result = await renderVariations(pipe, {
    ...req,
    image,
    signal: opts.signal,
    onFrames: (done, total, preview) => opts.onProgress?.({ fraction: 0.95 * (done / total), framesDone: done, framesTotal: total, preview }),
  });
  const t1 = performance.now();
  const timings = timingsSince(pipe, timingsBefore);
  const format = req.format ?? 'mp4';
  const video = await encodeVideo(result.frames, { format, fps, width: result.width, height: result.height, maxBytes: req.maxBytes, signal: opts.signal, out: opts.out });
  const t2 = performance.now();
  opts.onProgress?.({ fraction: 1, framesDone: result.frames.length, framesTotal: result.frames.length });
  return {
    video: video.bytes,
    format,
    seed: result.seed,
    frames: video.frames,
    variations: result.embeddings.length,
    durationSeconds: video.durationSeconds,
    width: video.width,
    height: video.height,
    sizeBytes: video.sizeBytes,
    renderSeconds: (t1 - t0) / 1000,
    encodeSeconds: (t2 - t1) / 1000,
    timings,
    thumbnail: await encodePng(result.frames[result.frames.length - 1]),
    positiveSimilarity: result.info.filter((i) => i.variation).map((i) => i.positiveSimilarity),
  };
}
