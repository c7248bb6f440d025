/**
 * Movies: K prompts chained into one seamless video. Segment i is a transition from prompt i to
 * prompt i+1 that starts from segment i-1's last keyframe (its latents, seed and embeddings), so the
 * segments join without a cut; when the keyframes are joined the shared frame appears once.
 */
import type { StableDiffusionPipeline } from '../pipeline/stable-diffusion.ts';
import type { RawImage } from '../image.ts';
import { drawSeed } from '../noise.ts';
import { InvalidRequestError } from '../errors.ts';
import { LatentBlender, type Endpoint, type EndpointImage, type TransitionOptions, type TransitionProgress, type TransitionResult } from './transition.ts';
import { DEFAULT_WALK_FRAMES, renderWalk, type WalkMode } from './walks.ts';
import type { PerceptualMetric } from './perceptual.ts';

export type TransitionMode = 'latent-blend' | WalkMode;
export const transitionModes: readonly TransitionMode[] = ['latent-blend', 'embedding-walk', 'noise-mixing', 'seed-slerp', 'circular'];
/** The mode of a request that names none. */
export const DEFAULT_TRANSITION_MODE: TransitionMode = 'latent-blend';

export const MIN_MOVIE_PROMPTS = 2;
export const MAX_MOVIE_PROMPTS = 16;

export interface MovieOptions extends Omit<TransitionOptions, 'promptA' | 'promptB' | 'seedA' | 'seedB' | 'start' | 'onProgress' | 'imageA' | 'imageB'> {
  prompts: string[];
  /** Users' pictures as keyframes (latent blending): images[i] is prompts[i]'s picture, at the render size. */
  images?: Array<EndpointImage | undefined>;
  /** Continue from an earlier movie's last keyframe (latent blending): it is prompts[0]'s frame. */
  start?: Endpoint;
  /** One per prompt; missing ones are drawn and reported. */
  seeds?: Array<number | undefined>;
  mode?: TransitionMode;
  /** Distinct frames per segment for the walk modes (latent blending uses its branch budget). */
  walkFrames?: number;
  onProgress?: (p: MovieProgress) => void;
}

export interface MovieProgress {
  segment: number;
  segments: number;
  transition?: TransitionProgress;
  /** Walk modes: frames done in this segment. */
  framesDone?: number;
  framesTotal?: number;
}

export interface MovieSegment {
  promptA: string;
  promptB: string;
  seeds: [number, number];
  keyframes: RawImage[];
  /** Perceptual gaps between neighbouring keyframes (latent blending). */
  gaps?: number[];
  fracts: number[];
  transition?: TransitionResult;
  /** The circular walk: the video loops, its last frame leading back into its first (segmentsToVideo). */
  loops?: boolean;
}

export interface MovieResult {
  mode: TransitionMode;
  segments: MovieSegment[];
  /** The seed of every prompt, so the movie can be made again. */
  seeds: number[];
  metric?: string;
  branches: number;
  seconds: number;
}

export async function renderMovie(pipe: StableDiffusionPipeline, opts: MovieOptions, metric?: PerceptualMetric): Promise<MovieResult> {
  const started = performance.now();
  const { prompts } = opts;
  if (prompts.length < MIN_MOVIE_PROMPTS || prompts.length > MAX_MOVIE_PROMPTS) {
    throw new InvalidRequestError(`a movie needs ${MIN_MOVIE_PROMPTS} to ${MAX_MOVIE_PROMPTS} prompts, got ${prompts.length}`);
  }
  prompts.forEach((p, i) => {
    if (!p.trim()) throw new InvalidRequestError(`prompt ${i + 1} is empty; give text for every prompt`);
  });
  const mode = opts.mode ?? DEFAULT_TRANSITION_MODE;
  if (mode === 'circular' && prompts.length !== 2) throw new InvalidRequestError('the circular walk loops between two prompts; give exactly two');
  const pictures = opts.images ?? [];
  if (mode !== 'latent-blend' && (pictures.some(Boolean) || opts.inpaint)) {
    throw new InvalidRequestError(`pictures and inpainting work with the latent-blend mode only, not ${mode}; leave the mode at latent-blend`);
  }
  if (pictures.length > prompts.length) throw new InvalidRequestError(`${pictures.length} pictures for ${prompts.length} prompts; give at most one picture per prompt`);
  if (opts.start && pictures[0]) throw new InvalidRequestError('the first prompt continues the earlier movie, so it cannot also start from a picture');
  if (opts.seeds && opts.seeds.length > prompts.length) throw new InvalidRequestError(`${opts.seeds.length} seeds for ${prompts.length} prompts; give at most one seed per prompt`);
  const seeds = prompts.map((_, i) => opts.seeds?.[i] ?? drawSeed());
  const segments: MovieSegment[] = [];
  const count = prompts.length - 1;
  const blender = new LatentBlender(pipe, metric);
  let branches = 0;

  for (let i = 0; i < count; i++) {
    const progress = (p: Omit<MovieProgress, 'segment' | 'segments'>) => opts.onProgress?.({ segment: i + 1, segments: count, ...p });
    if (mode === 'latent-blend') {
      const prev = i === 0 ? opts.start : segments[i - 1].transition?.end;
      const r = await blender.transition({
        ...opts,
        promptA: prompts[i],
        promptB: prompts[i + 1],
        seedA: seeds[i],
        seedB: seeds[i + 1],
        start: prev,
        imageA: i === 0 && !prev ? pictures[0] : undefined,
        imageB: pictures[i + 1],
        onProgress: (t) => progress({ transition: t }),
      });
      branches += r.frames.length - (i > 0 ? 1 : 0);
      segments.push({
        promptA: prompts[i],
        promptB: prompts[i + 1],
        seeds: r.seeds,
        keyframes: r.frames.map((f) => f.image),
        gaps: r.gaps,
        fracts: r.frames.map((f) => f.fract),
        transition: r,
      });
    } else {
      // Fixed-noise walks keep one seed for the whole movie so a segment ends on the noise the next
      // starts with; the seed slerp chains prompt seeds instead.
      const chained = mode === 'seed-slerp';
      const w = await renderWalk(pipe, {
        ...opts,
        mode,
        promptA: prompts[i],
        promptB: prompts[i + 1],
        seedA: chained ? seeds[i] : seeds[0],
        seedB: chained ? seeds[i + 1] : seeds[1],
        frames: opts.walkFrames ?? DEFAULT_WALK_FRAMES,
        onFrames: (done, total) => progress({ framesDone: done, framesTotal: total }),
      });
      branches += w.frames.length - (i > 0 ? 1 : 0);
      segments.push({ promptA: prompts[i], promptB: prompts[i + 1], seeds: w.seeds, keyframes: w.frames, fracts: w.fracts, ...(mode === 'circular' ? { loops: true } : {}) });
    }
  }
  return {
    mode,
    segments,
    seeds,
    metric: segments[0].transition?.metric,
    branches,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * The last keyframe of a latent-blending movie, recomputed without its in-between branches: each
 * keyframe's trajectory only depends on the previous keyframe's (branch-1 crossfeed), so K full
 * trajectories reproduce it exactly, for the same model, settings and seeds. Used to extend a
 * finished movie from its last frame.
 */
export async function recoverEndpoint(
  pipe: StableDiffusionPipeline,
  opts: Omit<MovieOptions, 'maxBranches' | 'computeSeconds' | 'mode' | 'onProgress'> & { seeds: number[] },
): Promise<Endpoint> {
  // Without every seed the keyframes would be drawn afresh: the continuation would start on another picture.
  if (opts.seeds.length !== opts.prompts.length) {
    throw new InvalidRequestError(`the movie to extend has ${opts.prompts.length} prompts and ${opts.seeds.length} seeds; give the seed of every prompt, as its render reported them`);
  }
  const blender = new LatentBlender(pipe);
  let end: Endpoint | undefined;
  const pictures = opts.images ?? [];
  for (let i = 0; i < opts.prompts.length - 1; i++) {
    const r = await blender.transition({
      ...opts,
      promptA: opts.prompts[i],
      promptB: opts.prompts[i + 1],
      seedA: opts.seeds[i],
      seedB: opts.seeds[i + 1],
      start: end,
      imageA: i === 0 ? pictures[0] : undefined,
      imageB: pictures[i + 1],
      maxBranches: 2,
    });
    end = r.end;
  }
  if (!end) throw new InvalidRequestError(`a movie to extend has at least two prompts, got ${opts.prompts.length}`);
  return end;
}
