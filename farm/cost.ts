// Up-front estimate of a job's GPU-seconds, reserved from the user's budget at submission.
// It only needs to be a sensible upper-ish bound: settlement charges the measured time, capped
// at the reservation, so a generous estimate costs users nothing but temporarily held seconds.
import type { CostModel } from './config.ts';
import { type JobParams, outputPixels } from './job-params.ts';

export function estimateGpuSeconds(params: JobParams, model: CostModel): number {
  // An upscale re-renders at the larger size, so its cost scales with the output pixels.
  const megapixels = outputPixels(params) / 1_000_000;
  const transitions = Math.max(1, params.prompts.length - 1);
  // Latent blending renders both keyframes plus up to maxBranches partial branches per transition.
  const unetSteps = transitions * (params.maxBranches + 2) * params.steps;
  const frames = Math.ceil(params.durationSeconds * params.fps);
  const seconds =
    model.overheadSeconds +
    unetSteps * megapixels * model.secondsPerMegapixelStep +
    frames * megapixels * model.secondsPerMegapixelFrame;
  return Math.round(seconds * 1000) / 1000;
}
