// Jobs that start from an earlier one (the bot's Re-roll, Upscale and Extend buttons):
// parameters are derived from the parent's, and the new job links to it.
import type { FarmContext } from './config.ts';
import { FarmError, InvalidJobStateError, JobNotFoundError } from './errors.ts';
import { getJob, submitJob, type SubmitJobInput } from './jobs.ts';
import { type JobParams, type JobParamsInput, LIMITS } from './job-params.ts';
import type { Job } from './types.ts';

export type FollowUpKind = 'reroll' | 'upscale' | 'extend';

export interface FollowUpOptions {
  /** extend: the prompt(s) to continue to. */
  prompts?: string[];
  /** upscale: 2 or 4 per side (default 2: four times the pixels). */
  upscaleFactor?: 2 | 4;
}

/** Parameters for a follow-up of a job with `parent` parameters (validated later by submitJob). */
export function followUpParams(kind: FollowUpKind, parent: JobParams, options: FollowUpOptions = {}): JobParamsInput {
  const { upscaleFactor: _factor, ...base } = parent;
  if (kind === 'reroll') return { ...base, seeds: undefined };
  if (kind === 'upscale') return { ...base, upscaleFactor: options.upscaleFactor ?? 2 };
  const next = options.prompts ?? [];
  if (next.length === 0) throw new FarmError('invalid_params', 'Extending a video needs the prompt to continue to.');
  if (parent.prompts.length + next.length > LIMITS.maxPrompts) {
    throw new FarmError('invalid_params', `This movie has ${parent.prompts.length} prompts; an extension may bring it to at most ${LIMITS.maxPrompts}.`);
  }
  // The engine adapter continues from the parent's last keyframe: the job lists the parent's
  // prompts and seeds first, then the new ones.
  return { ...base, prompts: [...parent.prompts, ...next], seeds: [...parent.seeds, ...next.map(() => null)] };
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
  const { options, ...rest } = input;
  return submitJob(farm, { ...rest, params: followUpParams(input.kind, parent.params, options) });
}
