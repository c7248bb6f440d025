/**
 * The other transition methods from the seed documents, sharing the same pipeline. Each frame is a
 * full denoising run (no shared steps), so they cost more per frame than latent blending but each
 * shows a different kind of motion:
 *  - embedding-walk: fixed noise, prompt embeddings interpolated per frame;
 *  - noise-mixing:   fixed noise, per-step mix of the two prompts' noise predictions
 *                    eps = eps_u + g((1-f)(eps_A - eps_u) + f(eps_B - eps_u));
 *  - seed-slerp:     initial noise slerped from seed A's to seed B's (with the prompts lerped);
 *  - circular:       noise x cos(theta) + y sin(theta) for theta = 2 pi k / frames (a full turn,
 *                    end excluded), prompts lerped by (1 - cos theta)/2: the frame after the last
 *                    is the first, so a looping player shows a seamless loop (no repeated frame).
 * Frames are independent, so they are denoised together in batches.
 */
import type { StableDiffusionPipeline } from '../pipeline/stable-diffusion.ts';
import { lerpEmbedding, type PromptEmbedding } from '../pipeline/text-encoder.ts';
import type { SchedulerKind } from '../schedulers/index.ts';
import { drawSeed, latentNoise } from '../noise.ts';
import type { RawImage } from '../image.ts';
import { slerp } from './slerp.ts';
import { linspace } from '../schedulers/scheduler.ts';
import { denoiseLockstep, throwIfCancelled } from '../pipeline/denoise.ts';
import { InvalidRequestError } from '../errors.ts';

export type WalkMode = 'embedding-walk' | 'noise-mixing' | 'seed-slerp' | 'circular';
export const walkModes: readonly WalkMode[] = ['embedding-walk', 'noise-mixing', 'seed-slerp', 'circular'];

export interface WalkOptions {
  mode: WalkMode;
  promptA: string;
  promptB: string;
  negativePrompt?: string;
  seedA?: number;
  seedB?: number;
  /** Distinct frames to render (the video crossfades between them). */
  frames: number;
  steps?: number;
  guidance?: number;
  width?: number;
  height?: number;
  scheduler?: SchedulerKind;
  signal?: AbortSignal;
  onFrames?: (done: number, total: number) => void;
}

export interface WalkResult {
  mode: WalkMode;
  frames: RawImage[];
  /** Each frame's prompt mix (0 = prompt A, 1 = prompt B). */
  fracts: number[];
  seeds: [number, number];
  steps: number;
  guidance: number;
  width: number;
  height: number;
}

interface FrameJob {
  noise: Float32Array;
  cond: PromptEmbedding;
  /** noise-mixing only: the second prompt and its weight. */
  condB?: PromptEmbedding;
  mix?: number;
}

/** Distinct frames per segment of a walk mode: the range, and the default when a caller leaves it out. */
export const MIN_WALK_FRAMES = 2;
export const MAX_WALK_FRAMES = 600;
export const DEFAULT_WALK_FRAMES = 12;

export async function renderWalk(pipe: StableDiffusionPipeline, opts: WalkOptions): Promise<WalkResult> {
  const r = pipe.resolve({ prompt: opts.promptA, steps: opts.steps, guidance: opts.guidance, width: opts.width, height: opts.height, seed: opts.seedA, scheduler: opts.scheduler });
  const seedB = opts.seedB ?? drawSeed();
  if (!walkModes.includes(opts.mode)) throw new InvalidRequestError(`unknown transition mode "${String(opts.mode)}"; use one of ${walkModes.join(', ')}`);
  if (!Number.isInteger(opts.frames) || opts.frames < MIN_WALK_FRAMES || opts.frames > MAX_WALK_FRAMES) throw new InvalidRequestError(`frames must be a whole number from ${MIN_WALK_FRAMES} to ${MAX_WALK_FRAMES}, got ${opts.frames}`);
  const { cond: cA, uncond } = await pipe.encodePrompt(opts.promptA, opts.negativePrompt ?? '');
  const { cond: cB } = await pipe.encodePrompt(opts.promptB, opts.negativePrompt ?? '');
  // Latent size from the model's own VAE scale factor (not every VAE downsamples 8x).
  const [h, w] = pipe.latentSize(r.width, r.height);
  const count = pipe.latentChannels * h * w;
  const sigma0 = pipe.scheduler(r.steps, r.scheduler).initNoiseSigma;
  const scale = (n: Float32Array) => (sigma0 === 1 ? n : n.map((v) => v * sigma0));
  const noiseA = latentNoise(r.seed, count);
  const noiseB = latentNoise(seedB, count);

  const circular = opts.mode === 'circular';
  // The circular walk's frames are evenly spaced on [0, 2pi): the loop closes from the last frame back
  // to the first, which is not repeated. Its fracts are each frame's prompt mix, (1 - cos theta) / 2.
  const turns = linspace(0, 1, opts.frames, !circular);
  const fracts = circular ? turns.map((f) => (1 - Math.cos(2 * Math.PI * f)) / 2) : turns;
  const jobs: FrameJob[] = [];
  for (let k = 0; k < opts.frames; k++) {
    const f = turns[k];
    switch (opts.mode) {
      case 'embedding-walk':
        jobs.push({ noise: scale(noiseA), cond: lerpEmbedding(cA, cB, f) });
        break;
      case 'noise-mixing':
        jobs.push({ noise: scale(noiseA), cond: cA, condB: cB, mix: f });
        break;
      case 'seed-slerp':
        jobs.push({ noise: scale(slerp(noiseA, noiseB, f)), cond: lerpEmbedding(cA, cB, f) });
        break;
      case 'circular': {
        const theta = 2 * Math.PI * f;
        const n = new Float32Array(count);
        const c = Math.cos(theta);
        const s = Math.sin(theta);
        for (let i = 0; i < count; i++) n[i] = noiseA[i] * c + noiseB[i] * s;
        jobs.push({ noise: scale(n), cond: lerpEmbedding(cA, cB, (1 - c) / 2) });
        break;
      }
      default:
        // Checked above; a mode added to walkModes without a case here is a programming error.
        throw new RangeError(`walk mode "${String(opts.mode)}" has no renderer`);
    }
  }

  // All frames denoise together; the UNet splits the batch to its size limit.
  const latents = await denoiseLockstep({
    unet: pipe.unet,
    latentSize: [h, w],
    schedulers: jobs.map(() => pipe.scheduler(r.steps, r.scheduler)),
    xs: jobs.map((j) => j.noise),
    cond: jobs.map((j) => j.cond),
    uncond: jobs.map(() => uncond),
    guidance: jobs.map(() => r.guidance),
    signal: opts.signal,
    predict: opts.mode === 'noise-mixing' ? (scaled, t) => mixedNoise(pipe, jobs, uncond, r.guidance, [h, w], scaled, t) : undefined,
  });
  const images: RawImage[] = [];
  for (const l of latents) {
    throwIfCancelled(opts.signal);
    images.push(await pipe.vae.decode(l, h, w));
    opts.onFrames?.(images.length, opts.frames);
  }
  return { mode: opts.mode, frames: images, fracts, seeds: [r.seed, seedB], steps: r.steps, guidance: r.guidance, width: r.width, height: r.height };
}

/** Noise-prediction mixing: three unguided predictions per frame (A, B, unconditional), combined. */
async function mixedNoise(
  pipe: StableDiffusionPipeline,
  jobs: FrameJob[],
  uncond: PromptEmbedding,
  guidance: number,
  latentSize: [number, number],
  scaled: Float32Array,
  t: number,
): Promise<Float32Array> {
  const per = scaled.length / jobs.length;
  const items = jobs.flatMap((j) => [j.cond, j.condB!, uncond]);
  const input = new Float32Array(per * items.length);
  for (let k = 0; k < jobs.length; k++) for (let m = 0; m < 3; m++) input.set(scaled.subarray(k * per, (k + 1) * per), (3 * k + m) * per);
  const out = await pipe.unet.predict({ latents: input, count: items.length, latentSize, timestep: t, cond: items, uncond: items, guidance: items.map(() => 1) });
  const eps = new Float32Array(scaled.length);
  const g = Math.max(guidance, 1);
  jobs.forEach((j, k) => {
    const [a, b, u] = [0, 1, 2].map((m) => (3 * k + m) * per);
    const f = j.mix!;
    for (let i = 0; i < per; i++) eps[k * per + i] = out[u + i] + g * ((1 - f) * (out[a + i] - out[u + i]) + f * (out[b + i] - out[u + i]));
  });
  return eps;
}
