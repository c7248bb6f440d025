// Jobs that start from an earlier one (the bot's Re-roll, Upscale and Extend buttons):
// parameters are derived from the parent's, and the new job links to it (parentJobId).
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { queryRows } from '../db/client.ts';
import type { FarmContext } from './config.ts';
import { InvalidJobStateError, JobNotFoundError } from './errors.ts';
import { checkFollowUpParent, DuplicateFollowUpError, type FollowUpKind, followUpRefusal, ONE_JOB_PER_PRESS, SAME_FOLLOW_UP_WINDOW_SECONDS } from './follow-up-rule.ts';
import { getJob, getJobInputs, submitJob, type SubmitJobInput } from './jobs.ts';
import { defaultUpscaleFactor, inputNames, type JobParams, type JobParamsInput } from './job-params.ts';
import type { UPSCALE_FACTORS } from './limits.ts';
import { checkExtension, movieImageInputs, movieOf, type Movie } from './movie.ts';
import type { Job } from './types.ts';

export { DuplicateFollowUpError, type FollowUpKind, followUpRefusal, followUpsFor, isFollowUpKind, ONE_JOB_PER_PRESS, SAME_FOLLOW_UP_WINDOW_SECONDS } from './follow-up-rule.ts';

export interface FollowUpOptions {
  /** extend: the prompt(s) to continue to. */
  prompts?: string[];
  /**
   * upscale: 2, 3 or 4 per side. Default: DEFAULT_UPSCALE_FACTOR (4: sixteen times the pixels), or
   * the largest smaller one that keeps a long video within the farm's limit (defaultUpscaleFactor).
   */
  upscaleFactor?: (typeof UPSCALE_FACTORS)[number];
  /** upscale: the upscaler to use (e.g. esrgan-medium); unset: the best the claiming worker has. */
  upscaler?: string;
  /**
   * The largest video the front end can post where the follow-up was asked for (the bot: the
   * pressing interaction's upload limit, which drops when a server loses its boost); checked like
   * the job parameter (LIMITS.maxBytes). Unset: the parent's.
   */
  maxBytes?: number;
}

/**
 * Parameters for a follow-up (validated later by submitJob). `parent` is the parent's parameters
 * with the prompts and seeds of its whole movie (`parentMovieParams`); for a parent that is not an
 * extension that is simply its `params`. A re-roll or an upscale renders the whole movie again; an
 * extension lists only its new prompts (seeds drawn at submission) and continues the parent's
 * movie, which it may bring to LIMITS.prompts.max prompts.
 */
export function followUpParams(kind: FollowUpKind, parent: JobParams, options: FollowUpOptions = {}): JobParamsInput {
  // movieHasPictures is submitJob's to set (from the movie an extension continues); `parent` lists the pictures themselves.
  const { upscaleFactor: _factor, upscaler: _upscaler, movieHasPictures: _derived, ...inherited } = parent;
  // The upload limit where the follow-up was asked for, when the front end knows it (parseJobParams checks it).
  const base = options.maxBytes === undefined ? inherited : { ...inherited, maxBytes: options.maxBytes };
  // A re-roll keeps the pictures (submitFollowUp copies the parent's stored inputs).
  if (kind === 'reroll') return { ...base, seeds: undefined };
  const refusal = followUpRefusal(kind, { params: parent });
  if (refusal) throw new InvalidJobStateError(refusal);
  const { images: _images, inpaint: _inpaint, ...withoutPictures } = base;
  if (kind === 'upscale') {
    // The worker upscales the parent's finished video (job.parent), frame by frame; the parameters
    // keep the parent's, so prices, sizes and titles follow from them (not its pictures: nothing is re-rendered).
    const upscaleFactor = options.upscaleFactor ?? defaultUpscaleFactor(parent, options.upscaler);
    return { ...withoutPictures, upscaleFactor, ...(options.upscaler ? { upscaler: options.upscaler } : {}) };
  }
  const next = options.prompts ?? [];
  checkExtension(parent, next.length);
  // The movie's pictures stay with the jobs that have them (the worker hands them to the renderer,
  // which needs them to recover the last frame); an inpainting movie keeps its picture and mask.
  const { images: _movieImages, ...withoutImages } = base;
  return { ...withoutImages, prompts: next, seeds: undefined };
}

/**
 * A job's parameters with the prompts, seeds and pictures of the whole movie it made (an
 * extension's include those it continues; pictures at their movie-wide prompt indices).
 */
export async function parentMovieParams(farm: FarmContext, parent: Job, movie?: Movie): Promise<JobParams> {
  const { prompts, seeds, images } = movie ?? (await movieOf(farm.db.db, parent));
  const { images: _own, movieHasPictures: _derived, ...params } = parent.params;
  return { ...params, prompts, seeds, ...(images ? { images: images.map(({ index, strength }) => ({ index, strength })) } : {}) };
}

export interface SubmitFollowUpInput extends Omit<SubmitJobInput, 'kind' | 'params' | 'parentJobId'> {
  kind: FollowUpKind;
  parentJobId: number;
  options?: FollowUpOptions;
  /**
   * A press (a front end's button, reaction or form: a person asking once; default false): a
   * re-roll or extension pressed again within SAME_FOLLOW_UP_WINDOW_SECONDS is a repeat of it
   * (ONE_JOB_PER_PRESS). An operator's or a script's submission (the farm CLI, HTTP) is taken as asked.
   */
  press?: boolean;
}

/**
 * The job a re-roll or an extension of `job` is made from: `job` itself, or for an upscale the
 * video it upscaled (followed back through upscales). An upscale keeps neither the source's
 * pictures nor its inpainting (nothing is re-rendered) and its video is at another size, so a
 * re-roll made from it would lose the pictures and an extension would continue without them.
 */
async function followUpSource(farm: FarmContext, job: Job): Promise<Job> {
  let source = job;
  // Parents are older jobs, so the walk ends; upscales of upscales are refused anyway.
  while (source.kind === 'upscale' && source.parentJobId !== null) {
    const next = await getJob(farm, source.parentJobId);
    if (!next) throw new JobNotFoundError(source.parentJobId);
    source = next;
  }
  return source;
}

/**
 * Submits a follow-up charged to input.userId (the person asking; front ends decide who may
 * act on whose job). Upscale and extend need a finished parent whose video is still stored
 * (checkFollowUpParent, which submitJob applies again under lock); re-roll works from any. A
 * re-roll or extension of an upscale is one of the video it upscaled (followUpSource): the new
 * job links to that job, renders at its size and keeps its pictures and inpainting.
 *
 * One press, one job (ONE_JOB_PER_PRESS, `input.press`): a re-roll or an extension the same member pressed on the
 * same job (`parentJobId`, the one pressed on) within SAME_FOLLOW_UP_WINDOW_SECONDS is refused with
 * DuplicateFollowUpError naming the first one's job. The request is recorded in the database
 * (follow_up_requests) before the job is submitted, by one atomic upsert on its key, so of two at
 * once — in one process or in two — exactly one goes on; one refused (a budget, a rule) is forgotten,
 * so asking again at once is not taken for a repeat.
 */
export async function submitFollowUp(farm: FarmContext, input: SubmitFollowUpInput): Promise<Job> {
  if (!input.press || !ONE_JOB_PER_PRESS.includes(input.kind)) return submitFollowUpJob(farm, input);
  const asked = await getJob(farm, input.parentJobId);
  if (!asked) throw new JobNotFoundError(input.parentJobId);
  const request = { userId: input.userId, parentJobId: asked.id, kind: input.kind };
  const token = await takeFollowUpRequest(farm, request);
  let job: Job;
  try {
    job = await submitFollowUpJob(farm, input, asked);
  } catch (error) {
    // Refused (or failed): not a press to answer later ones with. Should this fail too, the
    // request only stands until its window ends.
    await farm.db.db.execute(sql`delete from follow_up_requests where token = ${token}::uuid`).catch(() => undefined);
    throw error;
  }
  // The job is queued: nothing refuses it now. Should this fail, a repeat within the window is
  // told the first is on its way (no job named) rather than the job number.
  await farm.db.db.execute(sql`update follow_up_requests set job_id = ${job.id} where token = ${token}::uuid`).catch(() => undefined);
  return job;
}

/**
 * Records a re-roll or extension request of `userId` on `parentJobId` (ONE_JOB_PER_PRESS) and
 * returns its token, or throws DuplicateFollowUpError when the same request was recorded within
 * SAME_FOLLOW_UP_WINDOW_SECONDS (by the database's clock). One statement: an insert, or an update
 * of the key's row only if that row is older than the window; a concurrent request with the same
 * key waits for this one's row and then sees it as recent.
 */
async function takeFollowUpRequest(farm: FarmContext, request: { userId: string; parentJobId: number; kind: FollowUpKind }): Promise<string> {
  const token = randomUUID();
  const window = sql`make_interval(secs => ${SAME_FOLLOW_UP_WINDOW_SECONDS}::float8)`;
  const taken = await queryRows<{ token: string }>(
    farm.db.db,
    sql`insert into follow_up_requests as r (user_id, parent_job_id, kind, token, requested_at, job_id)
        values (${request.userId}, ${request.parentJobId}, ${request.kind}, ${token}::uuid, now(), null)
        on conflict (user_id, parent_job_id, kind) do update set token = excluded.token, requested_at = excluded.requested_at, job_id = null
          where r.requested_at <= now() - ${window}
        returning r.token`,
  );
  if (taken.length > 0) return token;
  const [first] = await queryRows<{ job_id: number | string | null }>(
    farm.db.db,
    sql`select job_id from follow_up_requests where user_id = ${request.userId} and parent_job_id = ${request.parentJobId} and kind = ${request.kind}`,
  );
  throw new DuplicateFollowUpError(request.parentJobId, request.kind, first?.job_id == null ? null : Number(first.job_id));
}

/** submitFollowUp's submission itself; `known`: the parent job as just read. */
async function submitFollowUpJob(farm: FarmContext, input: SubmitFollowUpInput, known?: Job): Promise<Job> {
  const asked = known ?? (await getJob(farm, input.parentJobId));
  if (!asked) throw new JobNotFoundError(input.parentJobId);
  const parent = input.kind === 'upscale' ? asked : await followUpSource(farm, asked);
  // Refused here before the movie and its pictures are read; submitJob checks again, under lock.
  await checkFollowUpParent(farm.db.db, input.kind, parent.id);
  const { options, parentJobId: _asked, ...rest } = input;
  const movie = await movieOf(farm.db.db, parent);
  const params = followUpParams(input.kind, await parentMovieParams(farm, parent, movie), options);
  // The pictures the new job still uses (a re-roll: all of the movie's, wherever in its chain they
  // are stored; an extension: the inpainting picture and mask).
  // A re-roll of an extension gathers the movie's pictures along its chain; any other parent has its own.
  const stored = { ...(await getJobInputs(farm, parent.id)), ...(input.kind === 'reroll' && parent.kind === 'extend' ? await movieImageInputs(farm.db.db, movie) : {}) };
  // A re-roll of a variation animation is another vary job (same picture, new seed), linked to its parent.
  const kind = input.kind === 'reroll' && parent.kind === 'vary' ? 'vary' : input.kind;
  const needed = inputNames(kind, { images: params.images?.map((img) => ({ index: img.index, strength: img.strength ?? 0 })), inpaint: params.inpaint });
  const inputs = Object.fromEntries(needed.filter((name) => Object.hasOwn(stored, name)).map((name) => [name, stored[name].bytes]));
  return submitJob(farm, { ...rest, kind, parentJobId: parent.id, params, inputs });
}
