/**
 * One render request in, one finished video out: the single entry point a farm worker calls.
 * Everything is plain data (no database, no Discord), so it can cross a worker-thread boundary.
 */
import type { StableDiffusionPipeline } from './pipeline/stable-diffusion.ts';
import { DEFAULT_TRANSITION_MODE, recoverEndpoint, renderMovie, type TransitionMode, type MovieProgress } from './blend/movie.ts';
import { DEFAULT_BRANCHES } from './blend/stages.ts';
import { segmentsToVideo } from './blend/video.ts';
import { checkVideoRequest } from './video/rules.ts';
import type { PerceptualMetric } from './blend/perceptual.ts';
import type { VideoFormat } from './video/encode.ts';
import { encodePng } from './image.ts';
import { DEFAULT_IMAGE_STRENGTH, type EndpointImage, type InpaintInput } from './blend/transition.ts';
import { isMaskPreset, prepareImage, prepareMask, presetMask, type ImageInput, type ImageInputLimits, type MaskPreset } from './input-image.ts';
import { InvalidRequestError } from './errors.ts';
import { clipTokensAtLeast } from './tokenizer/clip-text.ts';
import { CLIP_MAX_LENGTH } from './tokenizer/tokenizer-config.ts';
import { type RenderTimings, timingTotals, timingsSince } from './pipeline/timings.ts';

/** A user's picture as a keyframe of a latent-blending request. */
export interface RequestImage {
  /** Which prompt it belongs to: 0-based index into `prompts` (in extend.images, into extend.prompts). */
  index: number;
  /** The file as uploaded (PNG/JPEG/WebP bytes) or decoded RGB; prepared by prepareImage (cover crop to the render size). */
  image: ImageInput;
  /** img2img strength in (0, 1]; default DEFAULT_IMAGE_STRENGTH. */
  strength?: number;
}

export interface RenderRequest {
  prompts: string[];
  negativePrompt?: string;
  /** One per prompt; missing ones are drawn and reported back. */
  seeds?: Array<number | undefined>;
  mode?: TransitionMode;
  steps?: number;
  guidance?: number;
  width?: number;
  height?: number;
  depthStrength?: number;
  maxBranches?: number;
  computeSeconds?: number;
  /** Seconds per segment. */
  duration: number | number[];
  fps: number;
  format?: VideoFormat;
  /** Upload limit of where the video goes (e.g. Discord's attachment size limit). */
  maxBytes?: number;
  /**
   * Extend a finished latent-blending movie: its prompts and seeds (same model and settings), and
   * optionally its video. `prompts` are then the new prompts that follow its last one; the output is
   * the whole movie (the earlier video's frames, then the new part) when `video` is given, else the
   * new part alone, starting on the old movie's last frame.
   */
  extend?: { prompts: string[]; seeds: number[]; video?: Uint8Array; images?: RequestImage[] };
  /** Users' pictures as transition ends (latent-blend mode): each re-rendered under its prompt at its strength. */
  images?: RequestImage[];
  /** Inpainting transition (needs an inpainting model): the picture and what changes, a mask picture (white = change) or a preset. */
  inpaint?: { image: ImageInput; mask: ImageInput | MaskPreset };
  /** Narrower limits for the pictures than the engine's IMAGE_INPUT_LIMITS (e.g. the farm's). */
  imageLimits?: ImageInputLimits;
}

/** Brings a request's pictures to the render size (per prompt index) and its inpainting input, checked. */
export async function prepareRequestImages(
  images: RequestImage[] | undefined,
  count: number,
  width: number,
  height: number,
  limits?: ImageInputLimits,
): Promise<Array<EndpointImage | undefined>> {
  const out: Array<EndpointImage | undefined> = new Array(count).fill(undefined);
  for (const img of images ?? []) {
    if (!Number.isInteger(img.index) || img.index < 0 || img.index >= count) {
      throw new InvalidRequestError(`a picture is given for prompt ${img.index + 1}, but there are ${count} prompts; give each picture the index of its prompt`);
    }
    if (out[img.index]) throw new InvalidRequestError(`prompt ${img.index + 1} has two pictures; give at most one per prompt`);
    out[img.index] = { image: await prepareImage(img.image, width, height, `the picture for prompt ${img.index + 1}`, limits), strength: img.strength ?? DEFAULT_IMAGE_STRENGTH };
  }
  return out;
}

export async function prepareInpaint(req: RenderRequest['inpaint'], width: number, height: number, limits?: ImageInputLimits): Promise<InpaintInput | undefined> {
  if (!req) return undefined;
  const image = await prepareImage(req.image, width, height, 'the inpainting picture', limits);
  const mask = isMaskPreset(req.mask) ? presetMask(req.mask, width, height) : await prepareMask(req.mask as ImageInput, width, height, 'the mask', limits);
  return { image, mask };
}

export interface RenderProgress {
  /** 0..1 over the whole job, encoding included. */
  fraction: number;
  segment: number;
  segments: number;
  stage: number;
  stages: number;
  branchesDone: number;
  branchesPlanned: number;
  etaSeconds: number | null;
  preview?: Buffer;
}

export interface RenderOutput {
  video: Buffer;
  format: VideoFormat;
  seeds: number[];
  keyframes: number;
  frames: number;
  durationSeconds: number;
  width: number;
  height: number;
  sizeBytes: number;
  /** Re-encoded smaller to fit maxBytes. */
  shrunk: boolean;
  metric?: string;
  maxGap?: number;
  meanGap?: number;
  renderSeconds: number;
  encodeSeconds: number;
  timings: RenderTimings;
  /** PNG of the middle keyframe: a thumbnail for the finished message. */
  thumbnail: Buffer;
  /** What the user should know about the result, e.g. a prompt whose end the text encoder could not read. */
  warnings: string[];
}

/**
 * What to tell the user about a transition's or movie's prompts: each one longer than the text
 * encoder reads (pipe.truncationWarning), named as the user knows it (A/B of a blend, 1..n of a
 * movie or of an extension's new prompts), and the negative prompt. Empty when all fit.
 */
export function promptWarnings(pipe: StableDiffusionPipeline, prompts: readonly string[], negativePrompt: string | undefined, opts: { extension?: boolean } = {}): string[] {
  return eachPrompt(prompts, negativePrompt, opts, (text, what) => pipe.truncationWarning(text, what));
}

/**
 * What can be told about the prompts before any model is loaded (a front end at submission): each
 * one that is certainly longer than the text encoder reads, since even its pre-tokens are more
 * (clipTokensAtLeast; every CLIP tokenizer makes at least that many tokens). A prompt of fewer
 * pre-tokens may still be too long: renderVideo's warnings say so exactly, once it is rendered.
 */
export function promptLengthNotices(prompts: readonly string[], negativePrompt: string | undefined, opts: { extension?: boolean } = {}): string[] {
  const reads = CLIP_MAX_LENGTH - 2;
  return eachPrompt(prompts, negativePrompt, opts, (text, what) => {
    const least = clipTokensAtLeast(text);
    return least > reads ? `${what} is at least ${least} CLIP tokens long; the text encoder reads ${reads}, so its end will be cut off: shorten it to keep every word.` : undefined;
  });
}

/** `say` for each prompt, named as the user knows it (A/B of a blend, 1..n of a movie or of an extension's new prompts), and the negative prompt. */
function eachPrompt(prompts: readonly string[], negativePrompt: string | undefined, opts: { extension?: boolean }, say: (text: string, what: string) => string | undefined): string[] {
  const prompt = (i: number) => (prompts.length === 2 && !opts.extension ? `Prompt ${i === 0 ? 'A' : 'B'}` : `Prompt ${i + 1}`);
  return [...prompts.map((p, i) => say(p, prompt(i))), say(negativePrompt ?? '', 'The negative prompt')].filter((w): w is string => w !== undefined);
}

export async function renderVideo(
  pipe: StableDiffusionPipeline,
  req: RenderRequest,
  opts: { signal?: AbortSignal; onProgress?: (p: RenderProgress) => void; metric?: PerceptualMetric; progressIntervalMs?: number } = {},
): Promise<RenderOutput> {
  const t0 = performance.now();
  const timingsBefore = timingTotals(pipe);
  // Rendering is ~95% of the time; encoding the rest. The branch count is only known once the
  // keyframes are timed, so the raw fraction can dip: report the running maximum.
  let reported = 0;
  const renderShare = 0.95;
  const progress = (p: MovieProgress) => {
    const t = p.transition;
    const within = t ? (t.phase === 'done' ? 1 : t.branchesDone / Math.max(1, t.branchesPlanned)) : (p.framesDone ?? 0) / Math.max(1, p.framesTotal ?? 1);
    reported = Math.max(reported, renderShare * ((p.segment - 1 + Math.min(1, within)) / p.segments));
    opts.onProgress?.({
      fraction: reported,
      segment: p.segment,
      segments: p.segments,
      stage: t?.stage ?? 0,
      stages: t?.stages ?? 0,
      branchesDone: t?.branchesDone ?? p.framesDone ?? 0,
      branchesPlanned: t?.branchesPlanned ?? p.framesTotal ?? 0,
      etaSeconds: t?.etaSeconds ?? null,
      preview: t?.preview,
    });
  };
  const ext = req.extend;
  const shared = {
    negativePrompt: req.negativePrompt,
    steps: req.steps,
    guidance: req.guidance,
    width: req.width,
    height: req.height,
    depthStrength: req.depthStrength,
    signal: opts.signal,
  };
  // The video's settings and the pictures are checked before anything renders, so a bad value or
  // file fails at once, not after the whole movie has been rendered.
  checkVideoRequest(Math.max(1, ext ? req.prompts.length : req.prompts.length - 1), { fps: req.fps, duration: req.duration, format: req.format, maxBytes: req.maxBytes });
  if (ext && (req.mode ?? DEFAULT_TRANSITION_MODE) !== 'latent-blend') {
    // The walks keep no keyframe trajectory to continue from: the join would be a cut.
    throw new InvalidRequestError(`a movie can be extended in the latent-blend mode only, not ${req.mode}; leave the mode at latent-blend`);
  }
  const size = pipe.resolve({ prompt: req.prompts[0] ?? '', width: req.width, height: req.height });
  const inpaint = await prepareInpaint(req.inpaint, size.width, size.height, req.imageLimits);
  const pictures = await prepareRequestImages(req.images, req.prompts.length, size.width, size.height, req.imageLimits);
  const oldPictures = ext?.images?.length ? await prepareRequestImages(ext.images, ext.prompts.length, size.width, size.height, req.imageLimits) : undefined;
  const start = ext ? await recoverEndpoint(pipe, { ...shared, inpaint, prompts: ext.prompts, seeds: ext.seeds, images: oldPictures }) : undefined;
  const movie = await renderMovie(
    pipe,
    {
      prompts: ext ? [ext.prompts[ext.prompts.length - 1], ...req.prompts] : req.prompts,
      seeds: ext ? [ext.seeds[ext.seeds.length - 1], ...(req.seeds ?? req.prompts.map(() => undefined))] : req.seeds,
      ...shared,
      start,
      inpaint,
      images: ext ? [undefined, ...pictures] : pictures,
      mode: req.mode,
      maxBranches: req.maxBranches ?? (req.computeSeconds === undefined ? DEFAULT_BRANCHES : undefined),
      computeSeconds: req.computeSeconds,
      onProgress: progress,
      progressIntervalMs: opts.progressIntervalMs,
    },
    opts.metric,
  );
  const segments = movie.segments;
  const t1 = performance.now();
  const timings = timingsSince(pipe, timingsBefore);
  const format = req.format ?? 'mp4';
  const video = await segmentsToVideo(segments, { fps: req.fps, duration: req.duration, format, maxBytes: req.maxBytes, signal: opts.signal, continues: ext?.video });
  const t2 = performance.now();
  const gaps = segments.flatMap((s) => s.gaps ?? []);
  const all = segments.flatMap((s, i) => (i === 0 ? s.keyframes : s.keyframes.slice(1)));
  // The pipeline's load-time notes (an SDXL encoder without hidden_states.N, a scheduler class that fell back), then the prompts'.
  const warnings = [...pipe.warnings, ...promptWarnings(pipe, req.prompts, req.negativePrompt, { extension: ext !== undefined })];
  opts.onProgress?.({ fraction: 1, segment: segments.length, segments: segments.length, stage: 0, stages: 0, branchesDone: all.length, branchesPlanned: all.length, etaSeconds: 0 });
  return {
    video: video.bytes,
    format,
    seeds: ext ? [...ext.seeds, ...movie.seeds.slice(1)] : movie.seeds,
    keyframes: all.length,
    frames: video.frames,
    durationSeconds: video.durationSeconds,
    width: video.width,
    height: video.height,
    sizeBytes: video.sizeBytes,
    shrunk: video.attempts.length > 1,
    metric: movie.metric,
    maxGap: gaps.length ? Math.max(...gaps) : undefined,
    meanGap: gaps.length ? gaps.reduce((a, b) => a + b, 0) / gaps.length : undefined,
    renderSeconds: (t1 - t0) / 1000,
    encodeSeconds: (t2 - t1) / 1000,
    timings,
    thumbnail: await encodePng(all[Math.floor(all.length / 2)]),
    warnings,
  };
}
