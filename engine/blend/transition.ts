/**
 * Latent blending: a transition from prompt A to prompt B as a tree of diffusion branches that share
 * their early denoising steps (see docs in README / models). New branches start from the slerped
 * intermediate latents of their two neighbouring parents and are placed where the perceptual gap
 * between neighbouring frames is largest.
 *
 * Faster than the reference: a stage's branches are added in measured waves. A wave splits up to w
 * of the largest measured gaps at their midpoints (one branch per gap, as the reference splits its
 * largest gap; only gaps at least half the largest) and denoises them as one batched UNet call, so a
 * GPU sees batch 2w instead of 2; the gaps next to the new branches are measured before the next
 * wave is chosen, so every branch is placed by a measured gap. `order: 'sequential'` (waves of one)
 * is the reference's one-branch-at-a-time order. The two orders give the same tree whenever, in
 * every wave, each gap the wave splits is larger than every gap measured next to the branches the
 * same wave placed in larger gaps (chooseWave).
 */
import type { StableDiffusionPipeline } from '../pipeline/stable-diffusion.ts';
import { denoiseLockstep, throwIfCancelled } from '../pipeline/denoise.ts';
import { lerpEmbedding, type PromptEmbedding } from '../pipeline/text-encoder.ts';
import type { Scheduler, SchedulerKind } from '../schedulers/index.ts';
import { drawSeed, latentNoise, stepNoise } from '../noise.ts';
import { previewJpeg, type RawImage } from '../image.ts';
import { slerp } from './slerp.ts';
import { linspace } from '../schedulers/scheduler.ts';
import { checkStageRequest, MAX_BRANCHES, planStages, type Stage } from './stages.ts';
import type { PerceptualMetric } from './perceptual.ts';
import { InvalidRequestError } from '../errors.ts';
import { BuiltinPerceptualMetric } from './perceptual.ts';
import { img2imgStartIndex } from './img2img.ts';
import type { InpaintConditioning } from '../pipeline/unet.ts';
import type { PixelMask } from '../input-image.ts';

export interface Crossfeed {
  /** Slerp weight towards the reference latent at the first crossfed step. */
  power: number;
  /** Fraction of all steps (from the start) during which crossfeed applies. */
  range: number;
  /** Weight at the end of the range, as a fraction of `power`. */
  decay: number;
}

export interface TransitionProgress {
  phase: 'keyframes' | 'branches' | 'done';
  /** 1-based stage being rendered (0 during keyframes). */
  stage: number;
  stages: number;
  branchesDone: number;
  branchesPlanned: number;
  elapsedSeconds: number;
  etaSeconds: number | null;
  /** Small JPEG of the newest finished branch. */
  preview?: Buffer;
}

/**
 * A user's picture as one end of a transition: the end is the picture re-rendered under that end's
 * prompt (img2img) at `strength`. Its trajectory before the img2img start step is the forward
 * noising of the encoded picture with the end's seed, so branches can be injected at any step.
 */
export interface EndpointImage {
  /** RGB at the render size (prepareImage brings a user's file there). */
  image: RawImage;
  /** How much of the diffusion is redone, in (0, 1]: 0.2 keeps the picture, 0.8 keeps only its layout. */
  strength: number;
}

/** Strength of a picture endpoint when the request gives none. */
export const DEFAULT_IMAGE_STRENGTH = 0.5;

/**
 * Inpainting transitions (a 9-channel inpainting UNet): the picture outside the mask stays, the
 * masked part goes from prompt A to prompt B. Every branch gets the same conditioning.
 */
export interface InpaintInput {
  /** RGB at the render size. */
  image: RawImage;
  /** At the render size: 1 = change, 0 = keep (prepareMask / presetMask). */
  mask: PixelMask;
}

/** One end of a transition, kept so the next movie segment can start from it without a cut. */
export interface Endpoint {
  prompt: string;
  seed: number;
  cond: PromptEmbedding;
  uncond: PromptEmbedding;
  /** Latent after every denoising step. */
  latents: Float32Array[];
  image: RawImage;
  /** The user's picture this end was rendered from, if it was. */
  source?: EndpointImage;
}

export interface TransitionOptions {
  promptA: string;
  promptB: string;
  negativePrompt?: string;
  seedA?: number;
  seedB?: number;
  steps?: number;
  guidance?: number;
  /** Guidance is lowered towards the middle of the transition: g - (g(1-damper) - 1) * m. Default 0.5. */
  guidanceDamper?: number;
  /** Where the first stage branches off, as a fraction of the steps. */
  depthStrength?: number;
  branch1Crossfeed?: Crossfeed;
  parentalCrossfeed?: Crossfeed;
  width?: number;
  height?: number;
  /** Budget: total branches including both keyframes ... */
  maxBranches?: number;
  /** ... or seconds of compute, scheduled from measured UNet-step and decode times. */
  computeSeconds?: number;
  scheduler?: SchedulerKind;
  /** Default: batched on GPU providers, sequential on the CPU. */
  order?: 'batched' | 'sequential';
  metric?: PerceptualMetric;
  signal?: AbortSignal;
  onProgress?: (p: TransitionProgress) => void;
  /** Minimum time between progress events (ms). */
  progressIntervalMs?: number;
  /** Start from an earlier transition's end (movies): its seed, embeddings and latents. */
  start?: Endpoint;
  /** A user's picture as end A (not with `start`) and/or end B. */
  imageA?: EndpointImage;
  imageB?: EndpointImage;
  /** Inpainting transition (needs an inpainting model): the picture and the mask of what changes. */
  inpaint?: InpaintInput;
}

export interface TransitionFrame {
  fract: number;
  injIdx: number;
  image: RawImage;
}

/** How one branch was placed: for reports and for checking the tree grows where gaps are largest. */
export interface BranchRecord {
  fract: number;
  injIdx: number;
  parents: [number, number];
  /** The measured gap that was split, and the largest measured gap when its wave was chosen (equal in waves of one). */
  splitGap: number;
  largestGap: number;
  /** 1-based wave of its stage that placed it (branches of one wave are denoised as one batch and measured together). */
  wave: number;
}

export interface TransitionResult {
  frames: TransitionFrame[];
  history: BranchRecord[];
  /** gaps[j] = perceptual distance between frames j and j+1. */
  gaps: number[];
  maxGap: number;
  meanGap: number;
  seeds: [number, number];
  stages: Stage[];
  metric: string;
  steps: number;
  guidance: number;
  depthStrength: number;
  width: number;
  height: number;
  scheduler: SchedulerKind;
  start: Endpoint;
  end: Endpoint;
  unetCalls: number;
  timings: {
    unetStepSeconds: number;
    decodeSeconds: number;
    totalSeconds: number;
    /** Seconds spent measuring perceptual gaps (all pairs) and how many pairs were measured. */
    metricSeconds: number;
    metricPairs: number;
  };
}

interface Branch {
  fract: number;
  injIdx: number;
  latents: Array<Float32Array | null>;
  image: RawImage;
}

interface Trajectory {
  fract: number;
  start: number;
  /** Latent entering step `start`. */
  x: Float32Array;
  cond: PromptEmbedding;
  uncond: PromptEmbedding;
  guidance: number;
  scheduler: Scheduler;
  /** Per-step slerp weights and the reference latent after step i-1 to pull towards. */
  crossfeed?: { coeffs: number[]; ref: (i: number) => Float32Array | null };
  latents: Array<Float32Array | null>;
}

/** Guidance at fraction f, damped towards the middle. Off (g <= 1) stays off: turbo models have no CFG. */
export function dampedGuidance(g: number, f: number, damper: number): number {
  if (g <= 1) return g;
  const m = 1 - Math.abs(f - 0.5) / 0.5;
  return g - (g * (1 - damper) - 1) * m;
}

/**
 * Crossfeed weights per step: linspace(P, P*D, stop - from) on [from, stop), zero elsewhere
 * (stop = round(N*R)). Branch 1 uses from = 0 like the reference (its weight at step 0 is never
 * applied: there is no reference latent before step 0); a parental branch uses its injection step.
 */
export function crossfeedCoefficients(cf: Crossfeed | undefined, steps: number, from: number): number[] {
  const coeffs = new Array<number>(steps).fill(0);
  if (!cf || cf.power <= 0) return coeffs;
  const stop = Math.min(steps, Math.round(steps * cf.range));
  const values = linspace(cf.power, cf.power * cf.decay, stop - from);
  for (let i = from; i < stop; i++) coeffs[i] = values[i - from];
  return coeffs;
}

/** Branch-1 crossfeed weights: the reference's linspace(P, P*D, round(N*R)) indexed from step 0, then zeros. */
export function branch1Coefficients(cf: Crossfeed | undefined, steps: number): number[] {
  return crossfeedCoefficients(cf, steps, 0);
}

/** Defaults by model family, from the reference implementation's settings. */
export function transitionDefaults(family: string): { depthStrength: number; parental: Crossfeed; branch1: Crossfeed; oneStage: boolean } {
  if (family === 'sdxl') return { depthStrength: 0.5, parental: { power: 0.3, range: 0.6, decay: 0.9 }, branch1: { power: 0, range: 0, decay: 0 }, oneStage: false };
  // Turbo: the reference injects every branch at one step (2 of 4) instead of a staged tree.
  if (family.endsWith('turbo')) return { depthStrength: 0.5, parental: { power: 1, range: 1, decay: 1 }, branch1: { power: 0, range: 0, decay: 0 }, oneStage: true };
  return { depthStrength: 0.5, parental: { power: 0.1, range: 0.8, decay: 0.8 }, branch1: { power: 0.1, range: 0.6, decay: 0.8 }, oneStage: false };
}

/**
 * The noise a sampler injects between steps (LCM) for the branch at fraction f: the slerp of the two
 * end seeds' step noises, so neighbouring branches get nearly the same noise and the ends get exactly
 * what a plain render of their seed gets. A pure function of (seedA, seedB, step, f).
 */
export function branchStepNoise(seedA: number, seedB: number, f: number): (step: number, count: number) => Float32Array {
  return (step, count) => {
    if (f === 0) return stepNoise(seedA, step, count);
    if (f === 1) return stepNoise(seedB, step, count);
    return slerp(stepNoise(seedA, step, count), stepNoise(seedB, step, count), f);
  };
}

export class LatentBlender {
  constructor(
    readonly pipe: StableDiffusionPipeline,
    readonly metric: PerceptualMetric = new BuiltinPerceptualMetric(),
  ) {}

  async transition(opts: TransitionOptions): Promise<TransitionResult> {
    return new TransitionRun(this.pipe, opts.metric ?? this.metric, opts).run();
  }
}

class TransitionRun {
  private readonly started = performance.now();
  private lastProgress = 0;
  private unitsDone = 0;
  private unitsPlanned = 0;
  private branches: Branch[] = [];
  private gaps: number[] = [];
  private history: BranchRecord[] = [];
  private stageNo = 0;
  private stageCount = 0;
  private branchesPlanned = 2;
  private unetSeconds = 0;
  private unetTrajectorySteps = 0;
  private decodeSeconds = 0;
  private decodes = 0;
  private metricSeconds = 0;
  private metricPairs = 0;
  private readonly callsAtStart: number;

  private readonly steps: number;
  /** UNet steps per full trajectory: the schedule's length (steps + 1 for PNDM, whose schedule repeats a timestep). */
  private readonly N: number;
  private readonly oneStage: boolean;
  private readonly guidance: number;
  private readonly damper: number;
  private readonly depth: number;
  private readonly width: number;
  private readonly height: number;
  private readonly kind: SchedulerKind;
  private readonly seedA: number;
  private readonly seedB: number;
  private readonly parental: Crossfeed;
  private readonly branch1: Crossfeed;
  private readonly h: number;
  private readonly w: number;
  private condA!: PromptEmbedding;
  private condB!: PromptEmbedding;
  private uncondA!: PromptEmbedding;
  private uncondB!: PromptEmbedding;
  private inpaint?: InpaintConditioning;

  constructor(
    private readonly pipe: StableDiffusionPipeline,
    private readonly metric: PerceptualMetric,
    private readonly opts: TransitionOptions,
  ) {
    const r = pipe.resolve({
      prompt: opts.promptA,
      steps: opts.steps,
      guidance: opts.guidance,
      width: opts.width,
      height: opts.height,
      seed: opts.start?.seed ?? opts.seedA,
      scheduler: opts.scheduler,
    });
    const d = transitionDefaults(pipe.folder.family);
    this.steps = r.steps;
    this.N = pipe.scheduler(r.steps, r.scheduler).timesteps.length;
    this.oneStage = d.oneStage;
    this.guidance = r.guidance;
    this.width = r.width;
    this.height = r.height;
    this.kind = r.scheduler;
    this.seedA = r.seed;
    this.seedB = opts.seedB ?? drawSeed();
    this.damper = opts.guidanceDamper ?? 0.5;
    this.depth = opts.depthStrength ?? d.depthStrength;
    this.parental = opts.parentalCrossfeed ?? d.parental;
    this.branch1 = opts.branch1Crossfeed ?? d.branch1;
    // Latent size from the model's own VAE scale factor (not every VAE downsamples 8x).
    [this.h, this.w] = pipe.latentSize(this.width, this.height);
    this.callsAtStart = pipe.unet.calls;
    if (!opts.promptA.trim() || !opts.promptB.trim()) throw new InvalidRequestError('both prompts must contain text; give a non-empty prompt for each end');
    if (opts.maxBranches === undefined && opts.computeSeconds === undefined) throw new InvalidRequestError('give a budget: maxBranches or computeSeconds');
    if (opts.maxBranches !== undefined && (!Number.isInteger(opts.maxBranches) || opts.maxBranches < 2 || opts.maxBranches > MAX_BRANCHES)) {
      throw new InvalidRequestError(`maxBranches must be a whole number from 2 to ${MAX_BRANCHES}, got ${opts.maxBranches}`);
    }
    if (opts.computeSeconds !== undefined && !(opts.computeSeconds > 0)) throw new InvalidRequestError(`computeSeconds must be positive, got ${opts.computeSeconds}`);
    // Checked here, not only when the stages are planned after the keyframes were rendered.
    checkStageRequest(this.N, this.depth);
    if (opts.start && opts.imageA) throw new InvalidRequestError('a movie segment that continues from the previous one cannot also start from a picture; give the picture to the first prompt only');
    for (const [name, img] of [['A', opts.imageA], ['B', opts.imageB]] as const) {
      if (!img) continue;
      if (!(img.strength > 0 && img.strength <= 1)) throw new InvalidRequestError(`the strength of picture ${name} must be above 0 and at most 1, got ${img.strength}; 0.2 keeps the picture, 0.8 keeps only its layout`);
      if (img.image.width !== this.width || img.image.height !== this.height) {
        throw new InvalidRequestError(`picture ${name} is ${img.image.width}x${img.image.height} but the render is ${this.width}x${this.height}; bring it to the render size first (prepareImage)`);
      }
      if (!pipe.vaeEncoder) throw new InvalidRequestError(`the model ${pipe.folder.name} has no vae_encoder/model.onnx, which starting from a picture needs; use a model exported with its VAE encoder`);
    }
    if (pipe.unet.isInpaint && !opts.inpaint) {
      throw new InvalidRequestError(`the model ${pipe.folder.name} is an inpainting model: give a picture and a mask (white = change) for an inpainting transition, or use a text-to-image model`);
    }
    if (opts.inpaint) {
      if (!pipe.unet.isInpaint) throw new InvalidRequestError(`the model ${pipe.folder.name} is not an inpainting model (its UNet takes ${pipe.unet.channels} channels, an inpainting UNet 9); use an inpainting export such as stable-diffusion-2-inpainting (models/README.md)`);
      if (!pipe.vaeEncoder) throw new InvalidRequestError(`the inpainting model ${pipe.folder.name} has no vae_encoder/model.onnx, which inpainting needs; export it with its VAE encoder`);
      const { image, mask } = opts.inpaint;
      if (image.width !== this.width || image.height !== this.height || mask.width !== this.width || mask.height !== this.height) {
        throw new InvalidRequestError(`the inpainting picture (${image.width}x${image.height}) and mask (${mask.width}x${mask.height}) must both be the render size ${this.width}x${this.height}; bring them there first (prepareImage, prepareMask)`);
      }
    }
  }

  async run(): Promise<TransitionResult> {
    const neg = this.opts.negativePrompt ?? '';
    if (this.opts.start) {
      this.condA = this.opts.start.cond;
      this.uncondA = this.opts.start.uncond;
    } else {
      ({ cond: this.condA, uncond: this.uncondA } = await this.pipe.encodePrompt(this.opts.promptA, neg));
    }
    ({ cond: this.condB, uncond: this.uncondB } = await this.pipe.encodePrompt(this.opts.promptB, neg));
    if (this.opts.inpaint) this.inpaint = await inpaintConditioning(this.pipe, this.opts.inpaint, this.h, this.w);

    await this.renderKeyframes();
    const stages = planStages(this.N, this.depth, {
      oneStage: this.oneStage,
      maxBranches: this.opts.maxBranches,
      computeSeconds: this.opts.computeSeconds,
      unetStepSeconds: this.unetTrajectorySteps ? this.unetSeconds / this.unetTrajectorySteps : undefined,
      decodeSeconds: this.branchOverheadSeconds(),
    });
    this.stageCount = stages.length;
    this.branchesPlanned = 2 + stages.reduce((a, s) => a + s.stems, 0);
    this.unitsPlanned += stages.reduce((a, s) => a + s.stems * (this.N - s.idx + 1), 0);

    for (const [s, stage] of stages.entries()) {
      this.stageNo = s + 1;
      // Batching pays on GPUs; on a CPU the same work in bigger calls measured ~20% slower
      // (bench/results/blend.md), so CPU renders default to one branch at a time.
      const order = this.opts.order ?? (this.pipe.ep === 'cpu' ? 'sequential' : 'batched');
      await this.runStage(stage.idx, stage.stems, order === 'sequential' ? 1 : this.waveLimit());
    }
    await this.emit('done', true);

    const a = this.branches[0];
    const b = this.branches[this.branches.length - 1];
    const endpoint = (br: Branch, prompt: string, seed: number, cond: PromptEmbedding, uncond: PromptEmbedding, source?: EndpointImage): Endpoint => ({
      prompt,
      seed,
      cond,
      uncond,
      latents: br.latents as Float32Array[],
      image: br.image,
      ...(source ? { source } : {}),
    });
    const totalSeconds = (performance.now() - this.started) / 1000;
    return {
      frames: this.branches.map((br) => ({ fract: br.fract, injIdx: br.injIdx, image: br.image })),
      history: this.history,
      gaps: [...this.gaps],
      maxGap: Math.max(...this.gaps),
      meanGap: this.gaps.reduce((x, y) => x + y, 0) / this.gaps.length,
      seeds: [this.seedA, this.seedB],
      stages,
      metric: this.metric.name,
      steps: this.steps,
      guidance: this.guidance,
      depthStrength: this.depth,
      width: this.width,
      height: this.height,
      scheduler: this.kind,
      start: endpoint(a, this.opts.promptA, this.seedA, this.condA, this.uncondA, this.opts.start ? this.opts.start.source : this.opts.imageA),
      end: endpoint(b, this.opts.promptB, this.seedB, this.condB, this.uncondB, this.opts.imageB),
      unetCalls: this.pipe.unet.calls - this.callsAtStart,
      timings: {
        unetStepSeconds: this.unetTrajectorySteps ? this.unetSeconds / this.unetTrajectorySteps : 0,
        decodeSeconds: this.decodes ? this.decodeSeconds / this.decodes : 0,
        totalSeconds,
        metricSeconds: this.metricSeconds,
        metricPairs: this.metricPairs,
      },
    };
  }

  private condAt(f: number) {
    return {
      cond: f === 0 ? this.condA : f === 1 ? this.condB : lerpEmbedding(this.condA, this.condB, f),
      uncond: f === 0 ? this.uncondA : f === 1 ? this.uncondB : lerpEmbedding(this.uncondA, this.uncondB, f),
      guidance: dampedGuidance(this.guidance, f, this.damper),
    };
  }

  /**
   * A scheduler for the branch at fraction f whose first step is `begin` (set explicitly: a repeated
   * timestep, as in PNDM or Karras DPM++ schedules, cannot say where a branch starts). Noise injected
   * between steps (LCM) is shared across branches, derived from the two seeds and the step.
   */
  private newScheduler(f: number, begin: number): Scheduler {
    const s = this.pipe.scheduler(this.steps, this.kind).clone({ stepNoise: branchStepNoise(this.seedA, this.seedB, f) });
    s.setBeginIndex(begin);
    return s;
  }

  /**
   * A picture end's trajectory: img2img from start index s = N - int(N * strength) (diffusers'
   * get_timesteps) with the end's seed as noise. Its latents before s are defined as the forward
   * noising of the encoded picture to each step's noise level with the same noise, so a branch
   * injected earlier than s still has both parents.
   */
  private async imageTrajectory(img: EndpointImage, f: 0 | 1, seed: number): Promise<Trajectory> {
    const N = this.N;
    const { latent } = await this.pipe.vaeEncoder!.encode(img.image);
    const noise = latentNoise(seed, latent.length);
    const s = img2imgStartIndex(this.steps, img.strength, N);
    const scheduler = this.newScheduler(f, s);
    const ts = scheduler.timesteps;
    const latents: Array<Float32Array | null> = new Array(N).fill(null);
    // latents[i] is the latent after step i, i.e. entering step i + 1.
    for (let i = 0; i < s; i++) latents[i] = scheduler.addNoise(latent, noise, ts[i + 1]) as Float32Array;
    return { fract: f, start: s, x: scheduler.addNoise(latent, noise, ts[s]) as Float32Array, ...this.condAt(f), scheduler, latents };
  }

  private async renderKeyframes(): Promise<void> {
    const N = this.N;
    const initSigma = this.newScheduler(0, 0).initNoiseSigma;
    const start = this.opts.start;
    let a: Trajectory | undefined;
    let aLatents: Array<Float32Array | null>;
    if (start) {
      if (start.latents.length !== N) throw new InvalidRequestError(`the previous segment ran ${start.latents.length} denoising steps and this one runs ${N}; a movie's segments must all use the same steps and scheduler`);
      aLatents = start.latents;
    } else if (this.opts.imageA) {
      a = await this.imageTrajectory(this.opts.imageA, 0, this.seedA);
      aLatents = a.latents;
    } else {
      aLatents = new Array(N).fill(null);
      a = {
        fract: 0,
        start: 0,
        x: this.pipe.initialLatents(this.seedA, this.width, this.height, initSigma),
        ...this.condAt(0),
        scheduler: this.newScheduler(0, 0),
        latents: aLatents,
      };
    }
    // A picture end B is its own img2img render: no branch-1 crossfeed pulls it away from the picture.
    const b: Trajectory = this.opts.imageB
      ? await this.imageTrajectory(this.opts.imageB, 1, this.seedB)
      : {
          fract: 1,
          start: 0,
          x: this.pipe.initialLatents(this.seedB, this.width, this.height, initSigma),
          ...this.condAt(1),
          scheduler: this.newScheduler(1, 0),
          // Branch-1 crossfeed pulls B towards A's trajectory early on, so the two ends share composition.
          crossfeed: { coeffs: branch1Coefficients(this.branch1, N), ref: (i) => aLatents[i] },
          latents: new Array(N).fill(null),
        };
    const trajs = a ? [a, b] : [b];
    this.unitsPlanned = trajs.reduce((acc, t) => acc + (N - t.start + 1), 0);
    // Trajectories that start at the same step run in lockstep; otherwise A first (B may crossfeed from it).
    if (a && a.start !== b.start) {
      await this.denoise([a], 'keyframes');
      await this.denoise([b], 'keyframes');
    } else {
      await this.denoise(trajs, 'keyframes');
    }
    const imgA = start ? start.image : await this.decode(aLatents[N - 1]!);
    const imgB = await this.decode(b.latents[N - 1]!);
    this.branches = [
      { fract: 0, injIdx: 0, latents: aLatents, image: imgA },
      { fract: 1, injIdx: 0, latents: b.latents, image: imgB },
    ];
    this.gaps = [await this.distance(imgA, imgB)];
    await this.emit('keyframes', false, imgB);
  }

  /**
   * Adds `count` branches injected at step `idx`, in waves of at most `wave` branches (chooseWave).
   * A wave splits the largest measured gaps at their midpoints, at most one branch per gap (the
   * reference's choice, made for several gaps at once), denoises its branches as one batch, then
   * measures the gaps next to them before the next wave is chosen: no branch is placed by an
   * estimate. A first stage grows at most 1, 2, 4, ... (there is one gap to begin with); later
   * stages have many gaps and run in few waves. `wave` 1 is the reference's one-at-a-time order.
   */
  private async runStage(idx: number, count: number, wave: number): Promise<void> {
    for (let left = count, n = 1; left > 0; n++) {
      const chosen = chooseWave(this.branches.map((b) => b.fract), this.gaps, Math.min(left, wave));
      await this.runWave(idx, n, chosen);
      left -= chosen.length;
    }
  }

  /** Renders the branches `chosen` (from chooseWave) at step `idx` as one batch and measures their gaps. */
  private async runWave(idx: number, wave: number, chosen: WaveChoice[]): Promise<void> {
    const N = this.N;
    const trajs: Trajectory[] = chosen.map(({ fract: f, splitGap, largestGap }) => {
      // Parents: the nearest existing branches on each side from earlier stages.
      let left = -1;
      let right = -1;
      for (let i = 0; i < this.branches.length; i++) {
        const br = this.branches[i];
        if (br.injIdx >= idx) continue;
        if (br.fract < f) left = i;
        else if (br.fract > f && right < 0) right = i;
      }
      const p1 = this.branches[left];
      const p2 = this.branches[right];
      const g = (f - p1.fract) / (p2.fract - p1.fract);
      this.history.push({ fract: f, injIdx: idx, parents: [p1.fract, p2.fract], splitGap, largestGap, wave });
      const mix = new Map<number, Float32Array>();
      const parentMix = (i: number): Float32Array | null => {
        let m = mix.get(i);
        if (!m) {
          const a = p1.latents[i];
          const b = p2.latents[i];
          if (!a || !b) return null;
          m = slerp(a, b, g);
          mix.set(i, m);
        }
        return m;
      };
      return {
        fract: f,
        start: idx,
        x: Float32Array.from(parentMix(idx - 1)!),
        ...this.condAt(f),
        scheduler: this.newScheduler(f, idx),
        crossfeed: { coeffs: crossfeedCoefficients(this.parental, N, idx), ref: parentMix },
        latents: new Array(N).fill(null),
      };
    });
    await this.denoise(trajs, 'branches');

    // Decode, splice into the sorted lists, then re-measure every gap next to a new branch.
    const fresh = new Set<Branch>();
    for (const t of trajs) {
      const image = await this.decode(t.latents[N - 1]!);
      const br: Branch = { fract: t.fract, injIdx: idx, latents: t.latents, image };
      const at = this.branches.findIndex((b) => b.fract > t.fract);
      this.branches.splice(at, 0, br);
      this.gaps.splice(at - 1, 1, NaN, NaN);
      fresh.add(br);
      await this.emit('branches', false, image);
    }
    const changed = this.gaps.map((_, j) => j).filter((j) => fresh.has(this.branches[j]) || fresh.has(this.branches[j + 1]));
    const measured = await this.distances(changed.map((j) => [this.branches[j].image, this.branches[j + 1].image] as const));
    changed.forEach((j, i) => (this.gaps[j] = measured[i]));
  }

  /**
   * Branches per batched wave: as many as one UNet call takes (its maxBatch, halved for classifier-free
   * guidance). A bigger wave would be split into several calls per step anyway, so smaller waves cost
   * no more UNet calls and place more branches by measured gaps.
   */
  private waveLimit(): number {
    const unet = this.pipe.unet;
    const guided = unet.timeCondDim === undefined && this.guidance > 1;
    return Math.max(1, Math.floor(unet.maxBatch / (guided ? 2 : 1)));
  }

  /** Runs trajectories that share their start step in lockstep, one batched UNet call per step. */
  private async denoise(trajs: Trajectory[], phase: TransitionProgress['phase']): Promise<void> {
    let stepStarted = 0;
    await denoiseLockstep({
      unet: this.pipe.unet,
      latentSize: [this.h, this.w],
      schedulers: trajs.map((tr) => tr.scheduler),
      xs: trajs.map((tr) => tr.x),
      from: trajs[0].start,
      cond: trajs.map((tr) => tr.cond),
      uncond: trajs.map((tr) => tr.uncond),
      guidance: trajs.map((tr) => tr.guidance),
      inpaint: this.inpaint,
      signal: this.opts.signal,
      beforeStep: (i, xs) => {
        trajs.forEach((tr, k) => {
          const c = tr.crossfeed?.coeffs[i] ?? 0;
          const ref = c > 0 && i >= 1 ? tr.crossfeed!.ref(i - 1) : null;
          if (ref) xs[k] = slerp(xs[k], ref, c);
        });
        stepStarted = performance.now();
      },
      afterStep: async (i, xs) => {
        // Step time per trajectory feeds the compute-budget schedule.
        this.unetSeconds += (performance.now() - stepStarted) / 1000;
        this.unetTrajectorySteps += trajs.length;
        trajs.forEach((tr, k) => (tr.latents[i] = xs[k]));
        this.unitsDone += trajs.length;
        await this.emit(phase, false);
      },
    });
  }

  private async distance(a: RawImage, b: RawImage): Promise<number> {
    return (await this.distances([[a, b]]))[0];
  }

  /** The gaps of several neighbour pairs: one call where the metric takes pairs in a batch. */
  private async distances(pairs: ReadonlyArray<readonly [RawImage, RawImage]>): Promise<number[]> {
    if (pairs.length === 0) return [];
    throwIfCancelled(this.opts.signal);
    const t0 = performance.now();
    const ds = this.metric.distances ? await this.metric.distances(pairs) : await sequentially(pairs, ([a, b]) => this.metric.distance(a, b));
    this.metricSeconds += (performance.now() - t0) / 1000;
    this.metricPairs += pairs.length;
    return ds;
  }

  /** Per-branch cost besides UNet steps: one decode and two distances (the reference counts only the decode). */
  private branchOverheadSeconds(): number | undefined {
    if (!this.decodes) return undefined;
    return this.decodeSeconds / this.decodes + (this.metricPairs ? (2 * this.metricSeconds) / this.metricPairs : 0);
  }

  private async decode(latent: Float32Array): Promise<RawImage> {
    throwIfCancelled(this.opts.signal);
    const t0 = performance.now();
    const img = await this.pipe.vae.decode(latent, this.h, this.w);
    this.decodeSeconds += (performance.now() - t0) / 1000;
    this.decodes++;
    this.unitsDone++;
    return img;
  }

  private async emit(phase: TransitionProgress['phase'], force: boolean, newest?: RawImage): Promise<void> {
    const cb = this.opts.onProgress;
    if (!cb) return;
    const now = performance.now();
    if (!force && now - this.lastProgress < (this.opts.progressIntervalMs ?? 250)) return;
    this.lastProgress = now;
    const elapsed = (now - this.started) / 1000;
    const frac = this.unitsPlanned > 0 ? this.unitsDone / this.unitsPlanned : 0;
    const event: TransitionProgress = {
      phase,
      stage: this.stageNo,
      stages: this.stageCount,
      branchesDone: this.branches.length,
      branchesPlanned: this.branchesPlanned,
      elapsedSeconds: elapsed,
      etaSeconds: phase === 'done' ? 0 : frac > 0.02 && phase !== 'keyframes' ? (elapsed / frac) * (1 - frac) : null,
    };
    // Previews are only encoded for events that are actually sent (a few per second at most).
    if (newest) event.preview = await previewJpeg(newest);
    cb(event);
  }
}

/** One branch of a wave: its fraction, the measured gap it splits and the largest measured gap then. */
export interface WaveChoice {
  fract: number;
  splitGap: number;
  largestGap: number;
}

/**
 * The next wave of at most `w` branches: the midpoints of the largest measured gaps (gaps[j] lies
 * between fracts[j] and fracts[j + 1]), at most one per gap, largest first (ties: leftmost first, as
 * the one-at-a-time loop's argmax). The largest gap is always split (with w = 1 this is the
 * reference's choice); another only if it is at least half the largest: splitting a gap leaves two
 * of about half its size, so the reference's loop would split a smaller gap only after one of those,
 * and it waits for the next wave, chosen after they are measured.
 *
 * The wave's fractions are the next choices of the one-at-a-time loop exactly when (ties aside) each
 * gap it splits is larger than every gap measured next to the branches it placed in its larger gaps
 * (else that loop would split one of those first). A branch's latents depend only on its fraction
 * and on earlier stages, so when this holds for every wave the two orders build the same tree.
 */
export function chooseWave(fracts: readonly number[], gaps: readonly number[], w: number): WaveChoice[] {
  if (fracts.length !== gaps.length + 1) throw new Error(`${fracts.length} fractions need ${fracts.length - 1} gaps, got ${gaps.length}`);
  const order = gaps.map((_, j) => j).sort((a, b) => gaps[b] - gaps[a] || a - b);
  const largestGap = gaps[order[0]];
  const take = order.slice(0, Math.max(0, w)).filter((j, k) => k === 0 || gaps[j] >= largestGap / 2);
  return take.map((j) => ({ fract: (fracts[j] + fracts[j + 1]) / 2, splitGap: gaps[j], largestGap }));
}

/**
 * diffusers' StableDiffusionInpaintPipeline conditioning: the mask resized to the latent grid
 * (torch's nearest: cell y takes row floor(y * H / h)) and binarised, and the VAE encoding of the
 * picture with the masked area set to mid grey (diffusers: exactly 0 in [-1, 1]; 128 of 255 here).
 */
export async function inpaintConditioning(pipe: StableDiffusionPipeline, input: InpaintInput, h: number, w: number): Promise<InpaintConditioning> {
  const { image, mask } = input;
  const masked = new Uint8Array(image.data.length);
  for (let p = 0; p < mask.data.length; p++) {
    const keep = mask.data[p] < 0.5;
    for (let c = 0; c < 3; c++) masked[p * 3 + c] = keep ? image.data[p * 3 + c] : 128;
  }
  const enc = await pipe.vaeEncoder!.encode({ ...image, data: masked });
  const small = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    const sy = Math.min(mask.height - 1, Math.floor((y * mask.height) / h));
    for (let x = 0; x < w; x++) {
      const sx = Math.min(mask.width - 1, Math.floor((x * mask.width) / w));
      small[y * w + x] = mask.data[sy * mask.width + sx] >= 0.5 ? 1 : 0;
    }
  }
  return { mask: small, maskedImageLatents: enc.latent };
}

/** `fn` on each item in turn (a metric's calls share one model session). */
async function sequentially<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (const item of items) out.push(await fn(item));
  return out;
}
