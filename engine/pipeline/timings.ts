/**
 * Where a render's model time went, for every pipeline that has a UNet and a VAE decoder (latent
 * blending and image variations alike): the sessions keep running totals, and a render's timings
 * are the difference between the totals after and before it (one render at a time per pipeline).
 */
import type { BatchTiming, UNet } from './unet.ts';
import type { VaeDecoder } from './vae.ts';

/** A render's session runs with their wall milliseconds. */
export interface RenderTimings {
  /** UNet runs per batch size (a guided item counts 2). */
  unet: BatchTiming[];
  /** VAE decoder runs (one per decoded frame, plus an fp32 retry after an fp16 overflow). */
  vaeDecode: { calls: number; ms: number };
}

/** The pipeline's running totals now. */
export function timingTotals(pipe: { unet: UNet; vae: VaeDecoder }): RenderTimings {
  return { unet: pipe.unet.runTimings(), vaeDecode: { calls: pipe.vae.calls, ms: pipe.vae.ms } };
}

/** What ran since `before` (timingTotals taken when the render started). */
export function timingsSince(pipe: { unet: UNet; vae: VaeDecoder }, before: RenderTimings): RenderTimings {
  const now = timingTotals(pipe);
  const unet = now.unet
    .map((t) => {
      const was = before.unet.find((b) => b.batch === t.batch);
      return { batch: t.batch, calls: t.calls - (was?.calls ?? 0), ms: t.ms - (was?.ms ?? 0) };
    })
    .filter((t) => t.calls > 0);
  return { unet, vaeDecode: { calls: now.vaeDecode.calls - before.vaeDecode.calls, ms: now.vaeDecode.ms - before.vaeDecode.ms } };
}
