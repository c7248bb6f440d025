/**
 * Text-to-image with a Stable Diffusion pipeline exported to ONNX: tokenizers, text encoders, UNet,
 * scheduler and VAE decoder, loaded from a model folder on the chosen execution provider.
 */
import { loadTokenizer, type ClipTokenizer } from '../tokenizer/clip-tokenizer.ts';
import { createScheduler, type Scheduler, type SchedulerKind } from '../schedulers/index.ts';
import { readModelFolder, type ModelFolder } from './model-folder.ts';
import { TextEncoders, type PromptEmbedding } from './text-encoder.ts';
import { UNet } from './unet.ts';
import { VaeDecoder, VaeEncoder } from './vae.ts';
import { denoiseLockstep, throwIfCancelled } from './denoise.ts';
import { SeededRandom, drawSeed, latentNoise } from '../noise.ts';
import type { RawImage } from '../image.ts';
import type { ExecutionProvider, SessionOptions } from '../onnx/session.ts';

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

export class InvalidRequestError extends Error {
  override name = 'InvalidRequestError';
}

export function validateSize(width: number, height: number): void {
  for (const [name, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < 64 || v > 4096 || v % 8 !== 0) {
      throw new InvalidRequestError(`${name} must be a multiple of 8 between 64 and 4096 pixels, got ${v}`);
    }
  }
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
    const tokenizers = [await loadTokenizer(folder.tokenizerDir)];
    if (folder.tokenizer2Dir) tokenizers.push(await loadTokenizer(folder.tokenizer2Dir));
    const session: SessionOptions = { ep: opts.ep, deviceId: opts.deviceId, threads: opts.threads };
    const text = await TextEncoders.load(folder, tokenizers, folder.isXL, session);
    const unet = await UNet.load(folder.unet, { ...session, maxBatch: opts.maxBatch });
    const vae = await VaeDecoder.load(folder.vaeDecoder, folder.vaeScalingFactor, session);
    const vaeEncoder = folder.vaeEncoder ? await VaeEncoder.load(folder.vaeEncoder, folder.vaeScalingFactor, session) : undefined;
    const kind = opts.scheduler ?? folder.defaults.scheduler;
    // Fail at load time, not at the first render, if the scheduler config is unusable.
    createScheduler(kind, folder.schedulerConfig);
    return new StableDiffusionPipeline(folder, tokenizers, text, unet, vae, vaeEncoder, kind, opts.ep ?? 'cpu');
  }

  /** fp16 or fp32, as the UNet's inputs say. */
  get dtype(): string {
    return this.unet.dtype;
  }

  get latentChannels(): number {
    return this.unet.channels;
  }

  /** A fresh scheduler with `steps` timesteps; one per trajectory, since multistep solvers keep state. */
  scheduler(steps: number, kind: SchedulerKind = this.schedulerKind, seed = 0): Scheduler {
    const rng = new SeededRandom(seed);
    const s = createScheduler(kind, this.folder.schedulerConfig, { rng: () => rng.nextGaussian() });
    s.setTimesteps(steps);
    return s;
  }

  async encodePrompt(prompt: string, negativePrompt = ''): Promise<{ cond: PromptEmbedding; uncond: PromptEmbedding }> {
    const [cond, uncond] = [await this.text.encode(prompt), await this.text.encode(negativePrompt, { negative: true })];
    return { cond, uncond };
  }

  /** Initial latents for a seed, scaled by the scheduler's initial noise sigma. */
  initialLatents(seed: number, width: number, height: number, initNoiseSigma: number): Float32Array {
    const n = latentNoise(seed, this.latentChannels * (height / 8) * (width / 8));
    if (initNoiseSigma !== 1) for (let i = 0; i < n.length; i++) n[i] *= initNoiseSigma;
    return n;
  }

  resolve(opts: GenerateOptions) {
    const d = this.folder.defaults;
    const width = opts.width ?? d.width;
    const height = opts.height ?? d.height;
    validateSize(width, height);
    const steps = opts.steps ?? d.steps;
    if (!Number.isInteger(steps) || steps < 1 || steps > 1000) throw new InvalidRequestError(`steps must be a whole number from 1 to 1000, got ${steps}`);
    const guidance = opts.guidance ?? d.guidance;
    if (!Number.isFinite(guidance) || guidance < 0 || guidance > 50) throw new InvalidRequestError(`guidance must be between 0 and 50, got ${guidance}`);
    const batchSize = opts.batchSize ?? 1;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 64) throw new InvalidRequestError(`batch size must be a whole number from 1 to 64, got ${batchSize}`);
    const seed = opts.seed ?? drawSeed();
    if (!Number.isSafeInteger(seed) || seed < 0) throw new InvalidRequestError(`seed must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}, got ${seed}`);
    return { width, height, steps, guidance, batchSize, seed, scheduler: opts.scheduler ?? this.schedulerKind };
  }

  async generate(opts: GenerateOptions): Promise<GenerateResult> {
    const t0 = performance.now();
    const { width, height, steps, guidance, batchSize, seed, scheduler: kind } = this.resolve(opts);
    const warnings: string[] = [];
    const { cond, uncond } = await this.encodePrompt(opts.prompt, opts.negativePrompt ?? '');
    if (cond.truncated) warnings.push('The prompt is longer than 77 CLIP tokens; the end was cut off.');
    if (uncond.truncated) warnings.push('The negative prompt is longer than 77 CLIP tokens; the end was cut off.');
    const t1 = performance.now();

    const h = height / 8;
    const w = width / 8;
    const seeds = Array.from({ length: batchSize }, (_, i) => seed + i);
    const schedulers = seeds.map((s) => this.scheduler(steps, kind, s));
    const final = await denoiseLockstep({
      unet: this.unet,
      latentSize: [h, w],
      schedulers,
      xs: seeds.map((s) => this.initialLatents(s, width, height, schedulers[0].initNoiseSigma)),
      cond: seeds.map(() => cond),
      uncond: seeds.map(() => uncond),
      guidance: seeds.map(() => guidance),
      signal: opts.signal,
      afterStep: (i) => opts.onStep?.(i + 1, schedulers[0].timesteps.length),
    });
    const per = this.latentChannels * h * w;
    const latents = new Float32Array(per * batchSize);
    final.forEach((x, b) => latents.set(x, b * per));
    const t2 = performance.now();
    const images: RawImage[] = [];
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
