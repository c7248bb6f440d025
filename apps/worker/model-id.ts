// The id of an engine worker's main model: the model its warm-up loads and that it advertises
// first. Its own module so that the worker's main thread (load-renderer.ts) and the render threads
// (engine-renderer.ts) share the rule without either loading the other's dependencies.
import { basename } from 'node:path';
import { DEFAULT_MODELS } from '../../farm/job-params.ts';

/** `modelId`, else the model folder's name, else the built-in demo model's id (the one a job without a model asks for). */
export function mainModelId(opts: { modelId?: string; modelDir?: string }): string {
  return opts.modelId ?? (opts.modelDir ? basename(opts.modelDir) : DEFAULT_MODELS.text);
}
