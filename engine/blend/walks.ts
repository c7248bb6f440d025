/**
 * The other transition methods from the seed documents, sharing the same pipeline. Each frame is a
 * full denoising run (no shared steps), so they cost more per frame than latent blending but each
 * shows a different kind of motion:
 *  - embedding-walk: fixed noise, prompt embeddings interpolated per frame;
 *  - noise-mixing:   fixed noise, per-step mix of the two prompts' noise predictions
 *                    eps = eps_u + g((1-f)(eps_A - eps_u) + f(eps_B - eps_u));
 *  - seed-slerp:     initial noise slerped from seed A's to seed B's (with the prompts lerped);
 *  - circular:       noise x cos(theta) + y sin(theta) over a full turn, prompts lerped by
 *                    (1 - cos theta)/2: the last frame equals the first, so the video loops.
 * Frames are independent, so they are denoised together in batches.
 */
import type { StableDiffusionPipeline } from '../pipeline/stable-diffusion.ts';
import { lerpEmbedding, type PromptEmbedding } from '../pipeline/text-encoder.ts';
import type { SchedulerKind } from '../schedulers/index.ts';
import { drawSeed, latentNoise } from '../noise.ts';
import type { RawImage } from '../image.ts';
import { linspace, slerp } from './slerp.ts';
import { TransitionCancelledError } from './transition.ts';

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

export async function renderWalk(pipe: StableDiffusionPipeline, opts: WalkOptions): Promise<WalkResult> {
  const r = pipe.resolve({ prompt: opts.promptA, steps: opts.steps, guidance: opts.guidance, width: opts.width, height: opts.height, seed: opts.seedA, scheduler: opts.scheduler });
  const seedB = opts.seedB ?? drawSeed();
  if (!Number.isInteger(opts.frames) || opts.frames < 2 || opts.frames > 600) throw new RangeError(`frames must be a whole number from 2 to 600, got ${opts.frames}`);
  const { cond: cA, uncond } = await pipe.encodePrompt(opts.promptA, opts.negativePrompt ?? '');
  const { cond: cB } = await pipe.encodePrompt(opts.promptB, opts.negativePrompt ?? '');
  const count = pipe.latentChannels * (r.height / 8) * (r.width / 8);
  const sigma0 = pipe.scheduler(r.steps, r.scheduler).initNoiseSigma;
  const scale = (n: Float32Array) => (sigma0 === 1 ? n : n.map((v) => v * sigma0));
  const noiseA = latentNoise(r.seed, count);
  const noiseB = latentNoise(seedB, count);

  const circular = opts.mode === 'circular';
  // The circular walk renders n frames over [0, 2pi) and repeats the first as the last.
  const rendered = circular ? opts.frames - 1 : opts.frames;
  const fracts = linspace(0, 1, opts.frames);
  const jobs: FrameJob[] = [];
  for (let k = 0; k < rendered; k++) {
    const f = fracts[k];
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
        throw new RangeError(`unknown transition mode "${String(opts.mode)}"; use one of ${walkModes.join(', ')}`);
    }
  }

  const h = r.height / 8;
  const w = r.width / 8;
  pipe.unet.setLatentSize(h, w);
  // Guided frames take two batch slots, noise-mixing three.
  const slots = opts.mode === 'noise-mixing' ? 3 : r.guidance > 1 ? 2 : 1;
  const chunk = Math.max(1, Math.floor(pipe.unet.maxBatch / slots));
  const images: RawImage[] = [];
  for (let start = 0; start < jobs.length; start += chunk) {
    const batch = jobs.slice(start, start + chunk);
    const latents = await denoiseBatch(pipe, batch, uncond, r.steps, r.guidance, r.scheduler, opts.signal);
    for (const l of latents) {
      if (opts.signal?.aborted) throw new TransitionCancelledError();
      images.push(await pipe.vae.decode(l, h, w));
      opts.onFrames?.(images.length, opts.frames);
    }
  }
  if (circular) images.push(images[0]);
  return { mode: opts.mode, frames: images, fracts, seeds: [r.seed, seedB], steps: r.steps, guidance: r.guidance, width: r.width, height: r.height };
}

async function denoiseBatch(
  pipe: StableDiffusionPipeline,
  jobs: FrameJob[],
  uncond: PromptEmbedding,
  steps: number,
  guidance: number,
  kind: SchedulerKind,
  signal?: AbortSignal,
): Promise<Float32Array[]> {
  const schedulers = jobs.map(() => pipe.scheduler(steps, kind));
  const per = jobs[0].noise.length;
  let xs: Float32Array[] = jobs.map((j) => Float32Array.from(j.noise));
  const mixing = jobs[0].condB !== undefined;
  for (const t of schedulers[0].timesteps) {
    if (signal?.aborted) throw new TransitionCancelledError();
    const scaled = xs.map((x, k) => schedulers[k].scaleModelInput(x, t) as Float32Array);
    let eps: Float32Array[];
    if (mixing) {
      // Three unguided predictions per frame (A, B, unconditional), mixed here.
      const items = jobs.flatMap((j) => [j.cond, j.condB!, uncond]);
      const input = new Float32Array(per * items.length);
      scaled.forEach((s, k) => {
        for (let m = 0; m < 3; m++) input.set(s, (3 * k + m) * per);
      });
      const out = await pipe.unet.predict({ latents: input, count: items.length, timestep: t, cond: items, uncond: items, guidance: items.map(() => 1) });
      eps = jobs.map((j, k) => {
        const a = out.subarray(3 * k * per, (3 * k + 1) * per);
        const b = out.subarray((3 * k + 1) * per, (3 * k + 2) * per);
        const u = out.subarray((3 * k + 2) * per, (3 * k + 3) * per);
        const f = j.mix!;
        const g = Math.max(guidance, 1);
        const e = new Float32Array(per);
        for (let i = 0; i < per; i++) e[i] = u[i] + g * ((1 - f) * (a[i] - u[i]) + f * (b[i] - u[i]));
        return e;
      });
    } else {
      const input = new Float32Array(per * jobs.length);
      scaled.forEach((s, k) => input.set(s, k * per));
      const out = await pipe.unet.predict({ latents: input, count: jobs.length, timestep: t, cond: jobs.map((j) => j.cond), uncond: jobs.map(() => uncond), guidance: jobs.map(() => guidance) });
      eps = jobs.map((_, k) => out.subarray(k * per, (k + 1) * per));
    }
    xs = xs.map((x, k) => schedulers[k].step(eps[k], t, x).prevSample as Float32Array);
  }
  return xs;
}
