// Jobs that start from an earlier one (the bot's Re-roll, Upscale and Extend buttons):
// parameters are derived from the parent's, and the new job links to it (parentJobId).
import type { FarmContext } from './config.ts';
import { InvalidJobStateError, JobNotFoundError } from './errors.ts';
import { getJob, submitJob, type SubmitJobInput } from './jobs.ts';
import type { JobParams, JobParamsInput } from './job-params.ts';
import { DEFAULT_UPSCALE_FACTOR, type UPSCALE_FACTORS } from './limits.ts';
import { checkExtension, movieOf } from './movie.ts';
import type { Job } from './types.ts';

export type FollowUpKind = 'reroll' | 'upscale' | 'extend';

export interface FollowUpOptions {
  /** extend: the prompt(s) to continue to. */
  prompts?: string[];
  /** upscale: 2, 3 or 4 per side (default DEFAULT_UPSCALE_FACTOR, 4: sixteen times the pixels). */
  upscaleFactor?: (typeof UPSCALE_FACTORS)[number];
  /** upscale: the upscaler to use (e.g. esrgan-medium); unset: the best the claiming worker has. */
  upscaler?: string;
}

/**
 * Parameters for a follow-up (validated later by submitJob). `parent` is the parent's parameters
 * with the prompts and seeds of its whole movie (`parentMovieParams`); for a parent that is not an
 * extension that is simply its `params`. A re-roll or an upscale renders the whole movie again; an
 * extension lists only its new prompts (seeds drawn at submission) and continues the parent's
 * movie, which it may bring to LIMITS.prompts.max prompts.
 */
export function followUpParams(kind: FollowUpKind, parent: JobParams, options: FollowUpOptions = {}): JobParamsInput {
  const { upscaleFactor: _factor, upscaler: _upscaler, ...base } = parent;
  if (kind === 'reroll') return { ...base, seeds: undefined };
  if (kind === 'upscale') {
    // The worker upscales the parent's finished video (job.parent), frame by frame; the parameters
    // keep the parent's, so prices, sizes and titles follow from them.
    return { ...base, upscaleFactor: options.upscaleFactor ?? DEFAULT_UPSCALE_FACTOR, ...(options.upscaler ? { upscaler: options.upscaler } : {}) };
  }
  const next = options.prompts ?? [];
  checkExtension(parent, next.length);
  return { ...base, prompts: next, seeds: undefined };
}

/** A job's parameters with the prompts and seeds of the whole movie it made (an extension's include those it continues). */
export async function parentMovieParams(farm: FarmContext, parent: Job): Promise<JobParams> {
  return { ...parent.params, ...(await movieOf(farm.db.db, parent)) };
}

export interface SubmitFollowUpInput extends Omit<SubmitJobInput, 'kind' | 'params' | 'parentJobId'> {
  kind: FollowUpKind;
  parentJobId: number;
  options?: FollowUpOptions;
}

/**
 * Submits a follow-up charged to input.userId (the person asking; front ends decide who may
 * act on whose job). Upscale and extend need a finished parent; re-roll works from any.
 */
export async function submitFollowUp(farm: FarmContext, input: SubmitFollowUpInput): Promise<Job> {
  const parent = await getJob(farm, input.parentJobId);
  if (!parent) throw new JobNotFoundError(input.parentJobId);
  if (input.kind !== 'reroll' && parent.status !== 'done') {
    throw new InvalidJobStateError(`Job ${parent.id} is ${parent.status}; only a finished video can be ${input.kind === 'upscale' ? 'upscaled' : 'extended'}.`);
  }
  if (input.kind === 'upscale' && parent.kind === 'upscale') {
    throw new InvalidJobStateError(`Job ${parent.id} is already an upscale; upscale the original video (#${parent.parentJobId}) with a larger factor instead.`);
  }
  const { options, ...rest } = input;
  return submitJob(farm, { ...rest, params: followUpParams(input.kind, await parentMovieParams(farm, parent), options) });
}
