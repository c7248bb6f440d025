// The id of an engine worker's main model: the model its warm-up loads and that it advertises
// first. Its own module so that the worker's main thread (load-renderer.ts) and the render threads
// (engine-renderer.ts) share the rule without either loading the other's dependencies.
import { DEFAULT_MODELS } from '../../farm/job-params.ts';

/**
 * `modelId` (BLENDFARM_MODEL_ID), else the id a job without a model asks for (DEFAULT_MODELS.text):
 * a worker's one model, real or the built-in demo, is what every bot command renders. (The folder's
 * name was the default once: a farm pointed at a real export then never took a bot job.)
 */
export function mainModelId(opts: { modelId?: string }): string {
  return opts.modelId ?? DEFAULT_MODELS.text;
}
