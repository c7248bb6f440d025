// Movies and their extensions. An extend job stores only its new prompts and seeds and names the
// job it continues (parentJobId); the whole movie is found by following those links.
import { eq } from 'drizzle-orm';
import type { Queryable } from '../db/client.ts';
import { type JobKind, jobs } from '../db/schema.ts';
import { FarmError, JobNotFoundError } from './errors.ts';
import type { JobParams } from './job-params.ts';
import { LIMITS } from './limits.ts';

/** The prompts of a whole movie, one seed each. */
export interface Movie {
  prompts: string[];
  seeds: number[];
}

export interface MovieLink {
  kind: JobKind;
  params: Pick<JobParams, 'prompts' | 'seeds'>;
  parentJobId: number | null;
}

/**
 * The whole movie a job renders: its own prompts and seeds, after those of the movie it extends
 * (and so on up the chain) when it is an extension.
 */
export async function movieOf(q: Queryable, job: MovieLink): Promise<Movie> {
  const prompts = [...job.params.prompts];
  const seeds = [...job.params.seeds];
  let link = job;
  while (link.kind === 'extend') {
    if (link.parentJobId === null) throw new FarmError('invalid_params', 'An extension continues an earlier movie: give its job id as the parent.');
    const [parent] = await q.select({ kind: jobs.kind, params: jobs.params, parentJobId: jobs.parentJobId }).from(jobs).where(eq(jobs.id, link.parentJobId));
    if (!parent) throw new JobNotFoundError(link.parentJobId);
    const params = parent.params as unknown as JobParams;
    prompts.unshift(...params.prompts);
    seeds.unshift(...params.seeds);
    link = { kind: parent.kind, params, parentJobId: parent.parentJobId };
  }
  return { prompts, seeds };
}

/** Refuses an extension of `movie` by `newPrompts` prompts that would make it longer than LIMITS.prompts.max. */
export function checkExtension(movie: Movie, newPrompts: number): void {
  if (newPrompts < 1) throw new FarmError('invalid_params', 'Extending a video needs the prompt to continue to.');
  if (movie.prompts.length + newPrompts > LIMITS.prompts.max) {
    throw new FarmError('invalid_params', `This movie has ${movie.prompts.length} prompts; an extension may bring it to at most ${LIMITS.prompts.max}.`);
  }
}
