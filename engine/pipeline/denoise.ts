/**
 * The denoising loop every render mode shares: several trajectories that start at the same step
 * run in lockstep, one batched UNet call per step (text-to-image batches, latent-blending stages,
 * walk frames, upscale refinement). Each trajectory keeps its own scheduler, since multistep
 * solvers carry state.
 */
import type { Scheduler } from '../schedulers/index.ts';
import type { PromptEmbedding } from './text-encoder.ts';
import type { InpaintConditioning, UNet } from './unet.ts';

/** Thrown when a render's AbortSignal fires; checked before every UNet call. */
export class RenderCancelledError extends Error {
  override name = 'AbortError';
  constructor() {
    super('The render was cancelled (aborted).');
  }
}

export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new RenderCancelledError();
}

export interface LockstepRun {
  unet: UNet;
  /** Latent height and width (image size / the VAE's scale factor, pipe.vaeScaleFactor). */
  latentSize: [number, number];
  schedulers: Scheduler[];
  /** Each trajectory's latent entering step `from`. */
  xs: Float32Array[];
  /** First step to run (0 = from noise); all trajectories share it. */
  from?: number;
  cond: PromptEmbedding[];
  uncond: PromptEmbedding[];
  guidance: number[];
  signal?: AbortSignal;
  /** Before step i's UNet call; may replace entries of xs (crossfeed). */
  beforeStep?: (i: number, xs: Float32Array[]) => void;
  /** After step i; xs holds every trajectory's latent after that step. */
  afterStep?: (i: number, xs: Float32Array[]) => void | Promise<void>;
  /** Inpainting UNets: the mask and masked-picture latents every trajectory shares. */
  inpaint?: InpaintConditioning;
  /** Replaces the guided UNet call (noise-prediction mixing needs its own combination). */
  predict?: (scaled: Float32Array, t: number) => Promise<Float32Array>;
}

/** Runs steps `from`..end and returns the final latents. */
export async function denoiseLockstep(run: LockstepRun): Promise<Float32Array[]> {
  const xs = [...run.xs];
  const n = xs.length;
  const per = xs[0].length;
  const timesteps = run.schedulers[0].timesteps;
  for (let i = run.from ?? 0; i < timesteps.length; i++) {
    throwIfCancelled(run.signal);
    const t = timesteps[i];
    run.beforeStep?.(i, xs);
    const scaled = new Float32Array(per * n);
    for (let k = 0; k < n; k++) scaled.set(run.schedulers[k].scaleModelInput(xs[k], t) as Float32Array, k * per);
    const eps = run.predict
      ? await run.predict(scaled, t)
      : await run.unet.predict({ latents: scaled, count: n, latentSize: run.latentSize, timestep: t, cond: run.cond, uncond: run.uncond, guidance: run.guidance, inpaint: run.inpaint });
    for (let k = 0; k < n; k++) xs[k] = run.schedulers[k].step(eps.subarray(k * per, (k + 1) * per), t, xs[k]).prevSample as Float32Array;
    await run.afterStep?.(i, xs);
  }
  return xs;
}
