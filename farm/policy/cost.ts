// Up-front estimate of a job's GPU-seconds, reserved from the user's budget at admission.
// It only needs to be a sensible upper-ish bound: settlement charges the measured time, capped
// at the reservation, so a generous estimate costs users nothing but temporarily held seconds.
import { type JobParams, movieFrames, outputPixels, variationFrames } from '../job-params.ts';
import type { CostModel } from './options.ts';

/**
 * `moviePrompts`: prompts of the whole movie the job renders. An extension lists only its new
 * prompts but re-renders the movie it continues up to its last frame, so it is priced as the
 * whole movie (default: the job's own prompts).
 */
export function estimateGpuSeconds(params: JobParams, model: CostModel, moviePrompts = params.prompts.length): number {
  const megapixels = outputPixels(params) / 1_000_000;
  const transitions = Math.max(1, moviePrompts - 1);
  // An upscale (only upscale jobs have a factor) renders nothing: it upscales each frame of the
  // parent's finished video, so it costs per output megapixel per frame.
  if (params.upscaleFactor) {
    const videoFrames = movieFrames(params, moviePrompts);
    return Math.round((model.overheadSeconds + videoFrames * megapixels * model.secondsPerUpscaledMegapixelFrame) * 1000) / 1000;
  }
  // A variation animation renders every frame as a whole diffusion (intermediate frames from
  // interpolated embeddings and noise). A picture endpoint costs like a text one: img2img renders
  // fewer steps, and encoding the picture is small next to them.
  if (params.variation) {
    const frames = variationFrames(params.variation);
    return Math.round((model.overheadSeconds + frames * megapixels * (params.steps * model.secondsPerMegapixelStep + model.secondsPerMegapixelFrame)) * 1000) / 1000;
  }
  // Latent blending renders both keyframes plus up to maxBranches partial branches per transition,
  // and decodes durationSeconds × fps frames per transition (durationSeconds is per transition).
  const unetSteps = transitions * (params.maxBranches + 2) * params.steps;
  const frames = movieFrames(params, moviePrompts);
  const seconds =
    model.overheadSeconds +
    unetSteps * megapixels * model.secondsPerMegapixelStep +
    frames * megapixels * model.secondsPerMegapixelFrame;
  return Math.round(seconds * 1000) / 1000;
}
