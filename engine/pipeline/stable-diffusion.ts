/**
 * Text-to-image with a Stable Diffusion pipeline exported to ONNX: tokenizers, text encoders, UNet,
 * scheduler and VAE decoder, loaded from a model folder on the chosen execution provider.
 */
import { loadTokenizer, type ClipTokenizer } from '../tokenizer/clip-tokenizer.ts';
import { chooseScheduler, createScheduler, type Scheduler, type SchedulerKind } from '../schedulers/index.ts';
import { type FamilyDefaults, lcmDefaults, readModelFolder, type ModelFolder } from './model-folder.ts';
import { TextEncoders, type PromptEmbedding } from './text-encoder.ts';
import { UNet } from './unet.ts';
import { VaeDecoder, VaeEncoder } from './vae.ts';
import { denoiseLockstep, throwIfCancelled } from './denoise.ts';
import { MAX_SEED, drawSeed, latentNoise, stepNoise } from '../noise.ts';
import { InvalidRequestError, ModelOutputError, nonFinite } from '../errors.ts';
import type { RawImage } from '../image.ts';
import { ModelFileError, type ExecutionProvider, type SessionOptions } from '../onnx/session.ts';

export interface PipelineOptions extends SessionOptions {
  /** Overrides the family's default scheduler. */
  scheduler?: SchedulerKind;
  /** Largest UNet batch per call (memory bound on big GPUs / small on CPU). */
  maxBatch?: number;
}

export interface GenerateOptions {
  prompt: string;
  negativePrompt?: string;
  seed?: number;
  steps?: number;
  guidance?: number;
  width?: number;
  height?: number;
  batchSize?: number;
  scheduler?: SchedulerKind;
  /**
   * Starting latents, exactly as diffusers' `latents=` argument: batch x C x (height / f) x
   * (width / f) standard-normal values (f = vaeScaleFactor), before the scheduler's
   * init_noise_sigma is applied. Given these, the seed only feeds stochastic samplers.
   */
  latents?: Float32Array | readonly number[];
  signal?: AbortSignal;
  onStep?: (step: number, total: number) => void;
}

export interface GenerateResult {
  images: RawImage[];
  /** Final latents (batch x C x h x w, in the UNet's scaled space), e.g. to inspect or re-decode. */
  latents: Float32Array;
  /** Seed of each image: image i of a batch uses seed + i, so any one can be re-made alone. */
  seeds: number[];
  steps: number;
  guidance: number;
  width: number;
  height: number;
  scheduler: SchedulerKind;
  warnings: string[];
  timings: { textMs: number; unetMs: number; decodeMs: number; totalMs: number };
}

export { InvalidRequestError } from '../errors.ts';

/** Largest image side the engine renders, in pixels. */
export const MAX_IMAGE_SIDE = 4096;
/** The most denoising steps a request may ask for (every pipeline: text-to-image, transitions, variations, the x4 upscaler). */
export const MAX_STEPS = 1000;
/** The largest classifier-free guidance scale a request may ask for (every pipeline). */
export const MAX_GUIDANCE = 50;

/**
 * What sizes a model renders: multiples of `sizeMultiple` (ModelFolder.sizeMultiple: the VAE's
 * scale factor times the UNet's total downsampling, 64 px for SD 1.5), at least 8 latent cells.
 * A plain number is a VAE scale factor alone (the rule when the UNet's config does not say).
 */
export type SizeRule = number | { vaeScaleFactor: number; sizeMultiple: number };

/**
 * Image sizes must be whole multiples of the model's size multiple (its VAE scale factor, 8 for
 * every released SD VAE, times its UNet's downsampling when unet/config.json states
 * block_out_channels: 64 for SD 1.5) from 8 latent cells up to MAX_IMAGE_SIDE pixels.
 */
export function validateSize(width: number, height: number, rule: SizeRule = 8): void {
  const vaeScaleFactor = typeof rule === 'number' ? rule : rule.vaeScaleFactor;
  const multiple = typeof rule === 'number' ? rule : Math.max(rule.sizeMultiple, vaeScaleFactor);
  const min = Math.max(8 * vaeScaleFactor, multiple);
  for (const [name, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < min || v > MAX_IMAGE_SIDE || v % multiple !== 0) {
      // Past the VAE's factor, the UNet's: name the model as the reason (other models take other sizes).
      const what = multiple === vaeScaleFactor ? `a multiple of ${multiple}` : `a multiple of ${multiple} for this model (its VAE's factor ${vaeScaleFactor} x its UNet's downsampling ${multiple / vaeScaleFactor})`;
      throw new InvalidRequestError(`${name} must be ${what} between ${min} and ${MAX_IMAGE_SIDE} pixels, got ${v}`);
    }
  }
}

/** A request's size, steps and guidance, each the model's default when not given, checked against the engine's limits (every pipeline). */
export function resolveSettings(
  defaults: Pick<FamilyDefaults, 'width' | 'height' | 'steps' | 'guidance'>,
  size: SizeRule,
  opts: { width?: number; height?: number; steps?: number; guidance?: number },
): { width: number; height: number; steps: number; guidance: number } {
  const width = opts.width ?? defaults.width;
  const height = opts.height ?? defaults.height;
  validateSize(width, height, size);
  const steps = opts.steps ?? defaults.steps;
  if (!Number.isInteger(steps) || steps < 1 || steps > MAX_STEPS) throw new InvalidRequestError(`steps must be a whole number from 1 to ${MAX_STEPS}, got ${steps}`);
  const guidance = opts.guidance ?? defaults.guidance;
  if (!Number.isFinite(guidance) || guidance < 0 || guidance > MAX_GUIDANCE) throw new InvalidRequestError(`guidance must be between 0 and ${MAX_GUIDANCE}, got ${guidance}`);
  return { width, height, steps, guidance };
}

export class StableDiffusionPipeline {
  private constructor(
    readonly folder: ModelFolder,
    readonly tokenizers: ClipTokenizer[],
    readonly text: TextEncoders,
    readonly unet: UNet,
    readonly vae: VaeDecoder,
    readonly vaeEncoder: VaeEncoder | undefined,
    readonly schedulerKind: SchedulerKind,
    readonly ep: ExecutionProvider,
  ) {}

  static async load(dir: string, opts: PipelineOptions = {}): Promise<StableDiffusionPipeline> {
    const folder = readModelFolder(dir);
    if (folder.kind === 'image-variation') {
      throw new ModelFileError(dir, 'this is an image-variation model (it has image_encoder/): it makes variations of a picture (npm run vary, ImageVariationPipeline), not pictures from text');
    }
    const tokenizers = [await loadTokenizer(folder.tokenizerDir)];
    if (folder.tokenizer2Dir) tokenizers.push(await loadTokenizer(folder.tokenizer2Dir));
    const session: SessionOptions = { ep: opts.ep, deviceId: opts.deviceId, threads: opts.threads };
    const text = await TextEncoders.load(folder, tokenizers, folder.isXL, session);
    const unet = await UNet.load(folder.unet, { ...session, maxBatch: opts.maxBatch, timeCondProjDim: folder.timeCondProjDim, vaeScaleFactor: folder.vaeScaleFactor });
    const vae = await VaeDecoder.load(folder.vaeDecoder, folder.vaeScalingFactor, { ...session, forceUpcast: folder.vaeForceUpcast, scaleFactor: folder.vaeScaleFactor });
    const vaeEncoder = folder.vaeEncoder ? await VaeEncoder.load(folder.vaeEncoder, folder.vaeScalingFactor, { ...session, scaleFactor: folder.vaeScaleFactor }) : undefined;
    // The caller's choice, else blendfarm.json's or an LCM UNet's, else scheduler_config.json's class, else the family default.
    const choice = chooseScheduler({
      requested: opts.scheduler,
      folderChoice: folder.requestedScheduler ?? (folder.timeCondProjDim !== undefined ? lcmDefaults.scheduler : undefined),
      config: folder.schedulerConfig,
      fallback: folder.defaults.scheduler,
      fallbackLabel: `the ${folder.family} default`,
    });
    const kind = choice.kind;
    // Fail at load time, not at the first render, if the scheduler config is unusable.
    createScheduler(kind, folder.schedulerConfig);
    const pipe = new StableDiffusionPipeline(folder, tokenizers, text, unet, vae, vaeEncoder, kind, opts.ep ?? 'cpu');
    if (choice.warning) pipe.schedulerWarnings.push(choice.warning);
    return pipe;
  }

  /** fp16 or fp32, as the UNet's inputs say. */
  get dtype(): string {
    return this.unet.dtype;
  }

  /** Channels of the latents (4 for SD, also for inpainting UNets whose input has 9). */
  get latentChannels(): number {
    return this.unet.latentChannels;
  }

  /** Image pixels per latent cell along each side, from the model's VAE config (diffusers' vae_scale_factor). */
  get vaeScaleFactor(): number {
    return this.folder.vaeScaleFactor;
  }

  /** Latent [height, width] for an image size (validated against the model's size multiple, folder.sizeMultiple). */
  latentSize(width: number, height: number): [number, number] {
    validateSize(width, height, this.folder);
    return [height / this.vaeScaleFactor, width / this.vaeScaleFactor];
  }

  /** Why the scheduler scheduler_config.json names is not the one used (set by load). */
  readonly schedulerWarnings: string[] = [];

  /** Load-time notes for the user (e.g. quality lost to an export without hidden_states.N). */
  get warnings(): string[] {
    return [...this.folder.warnings, ...this.text.warnings, ...this.vae.warnings, ...this.schedulerWarnings];
  }

  /** A fresh scheduler with `steps` timesteps; one per trajectory, since multistep solvers keep state. */
  scheduler(steps: number, kind: SchedulerKind = this.schedulerKind, seed = 0): Scheduler {
    // LCM's injected noise is a pure function of (seed, step), the same rule latent blending's ends use.
    const s = createScheduler(kind, this.folder.schedulerConfig, { stepNoise: (i, n) => stepNoise(seed, i, n) });
    s.setTimesteps(steps);
    return s;
  }

  async encodePrompt(prompt: string, negativePrompt = ''): Promise<{ cond: PromptEmbedding; uncond: PromptEmbedding }> {
    const [cond, uncond] = [await this.text.encode(prompt), await this.text.encode(negativePrompt, { negative: true })];
    return { cond, uncond };
  }

  /**
   * What to tell the user when `text` is longer than the text encoder reads (77 CLIP tokens): the
   * tokens past it are dropped, as diffusers does, so the end of the prompt has no effect.
   * `what` names it in the message ("The prompt", "Prompt 3"); undefined when it fits.
   */
  truncationWarning(text: string, what: string): string | undefined {
    return this.truncationWarningFor(this.tokenizers[0].encodeWithInfo(text).tokenCount, what);
  }

  /** truncationWarning's words for a prompt already tokenized: `tokenCount` CLIP tokens, start and end included. */
  private truncationWarningFor(tokenCount: number | undefined, what: string): string | undefined {
    const { maxLength } = this.tokenizers[0];
    if (tokenCount === undefined || tokenCount <= maxLength) return undefined;
    return `${what} is ${tokenCount - 2} CLIP tokens long; the text encoder reads ${maxLength - 2} (${maxLength} CLIP tokens with its start and end), so its end was cut off: shorten it to keep every word.`;
  }

  /** Initial latents for a seed, scaled by the scheduler's initial noise sigma. */
  initialLatents(seed: number, width: number, height: number, initNoiseSigma: number): Float32Array {
    const [h, w] = this.latentSize(width, height);
    const n = latentNoise(seed, this.latentChannels * h * w);
    if (initNoiseSigma !== 1) for (let i = 0; i < n.length; i++) n[i] *= initNoiseSigma;
    return n;
  }

  resolve(opts: GenerateOptions) {
    const { width, height, steps, guidance } = resolveSettings(this.folder.defaults, this.folder, opts);
    const per = this.latentChannels * (height / this.vaeScaleFactor) * (width / this.vaeScaleFactor);
    let batchSize = opts.batchSize ?? 1;
    if (opts.latents !== undefined) {
      const n = opts.latents.length;
      const shape = `${this.latentChannels} x ${height / this.vaeScaleFactor} x ${width / this.vaeScaleFactor}`;
      if (n === 0 || n % per !== 0 || (opts.batchSize !== undefined && n !== per * opts.batchSize)) {
        throw new InvalidRequestError(
          `latents must hold batch x ${shape} values (${per} per image for ${width}x${height}${opts.batchSize !== undefined ? `, ${per * opts.batchSize} for a batch of ${opts.batchSize}` : ''}), got ${n}`,
        );
      }
      const bad = nonFinite(opts.latents);
      if (bad.count > 0) throw new InvalidRequestError(`latents must be finite numbers; value ${bad.first} is ${opts.latents[bad.first]}`);
      batchSize = n / per;
    }
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 64) throw new InvalidRequestError(`batch size must be a whole number from 1 to 64, got ${batchSize}`);
    const seed = opts.seed ?? drawSeed();
    if (!Number.isInteger(seed) || seed < 0 || seed + batchSize - 1 > MAX_SEED) {
      throw new InvalidRequestError(
        `seed must be a whole number from 0 to ${MAX_SEED}${batchSize > 1 ? ` (image i of a batch uses seed + i, so at most ${MAX_SEED - batchSize + 1} for a batch of ${batchSize})` : ''}, got ${seed}`,
      );
    }
    return { width, height, steps, guidance, batchSize, seed, scheduler: opts.scheduler ?? this.schedulerKind };
  }

  async generate(opts: GenerateOptions): Promise<GenerateResult> {
    const t0 = performance.now();
    const { width, height, steps, guidance, batchSize, seed, scheduler: kind } = this.resolve(opts);
    const warnings: string[] = [...this.warnings];
    const { cond, uncond } = await this.encodePrompt(opts.prompt, opts.negativePrompt ?? '');
    // The lengths come from the tokenization the encoders made; the prompts are not tokenized again.
    for (const w of [this.truncationWarningFor(cond.tokenCount, 'The prompt'), this.truncationWarningFor(uncond.tokenCount, 'The negative prompt')]) if (w) warnings.push(w);
    const t1 = performance.now();

    const [h, w] = this.latentSize(width, height);
    const per = this.latentChannels * h * w;
    const seeds = Array.from({ length: batchSize }, (_, i) => seed + i);
    const schedulers = seeds.map((s) => this.scheduler(steps, kind, s));
    const sigma0 = schedulers[0].initNoiseSigma;
    const given = opts.latents;
    const start = given
      ? seeds.map((_, b) => Float32Array.from({ length: per }, (_, i) => given[b * per + i] * sigma0))
      : seeds.map((s) => this.initialLatents(s, width, height, sigma0));
    const final = await denoiseLockstep({
      unet: this.unet,
      latentSize: [h, w],
      schedulers,
      xs: start,
      cond: seeds.map(() => cond),
      uncond: seeds.map(() => uncond),
      guidance: seeds.map(() => guidance),
      signal: opts.signal,
      afterStep: (i) => opts.onStep?.(i + 1, schedulers[0].timesteps.length),
    });
    const latents = new Float32Array(per * batchSize);
    final.forEach((x, b) => latents.set(x, b * per));
    const t2 = performance.now();
    const images: RawImage[] = [];
    const diverged = nonFinite(latents);
    if (diverged.count > 0) {
      throw new ModelOutputError(
        `the UNet produced NaN/infinite latents (${diverged.count} of ${latents.length}) with the ${kind} sampler; ` +
          `check that scheduler/scheduler_config.json matches the model (prediction_type "${String(this.folder.schedulerConfig.prediction_type ?? 'epsilon')}") and, for an fp16 UNet, try an fp32 export`,
      );
    }
    for (const x of final) {
      throwIfCancelled(opts.signal);
      images.push(await this.vae.decode(x, h, w));
    }
    const t3 = performance.now();
    return {
      images,
      latents,
      seeds,
      steps,
      guidance,
      width,
      height,
      scheduler: kind,
      warnings,
      timings: { textMs: t1 - t0, unetMs: t2 - t1, decodeMs: t3 - t2, totalMs: t3 - t0 },
    };
  }

  async release(): Promise<void> {
    for (const s of this.text.sessions) await s.session.release();
    await this.unet.release();
    await this.vae.release();
    await this.vaeEncoder?.release();
  }
}
