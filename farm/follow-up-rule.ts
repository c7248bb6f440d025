// Which follow-ups a job may have: the one rule behind the buttons front ends show (followUpsFor),
// submitFollowUp's refusals, and the parent checks submitJob and retryJob make for every follow-up,
// whoever submits it (checkFollowUpParent). Apart from follow-up.ts so jobs.ts can use it without
// importing follow-up.ts, which submits through jobs.ts.
import { eq } from 'drizzle-orm';
import type { Queryable } from '../db/client.ts';
import { artifacts, jobs, type JobKind, type JobStatus } from '../db/schema.ts';
import { InvalidJobStateError, JobNotFoundError, ParentVideoGoneError } from './errors.ts';
import type { JobParams } from './job-params.ts';
import { LIMITS } from './limits.ts';

export type FollowUpKind = 'reroll' | 'upscale' | 'extend';

/** Every follow-up (a job kind that starts from an earlier job and must name it), in the order front ends offer them. */
const FOLLOW_UP_KINDS: readonly FollowUpKind[] = ['upscale', 'reroll', 'extend'];

/** Whether jobs of `kind` are follow-ups: made from an earlier job (parentJobId), which they must name. */
export function isFollowUpKind(kind: JobKind): kind is FollowUpKind {
  return (FOLLOW_UP_KINDS as readonly JobKind[]).includes(kind);
}

/** A follow-up as a noun ("your re-roll of #12"). */
export const FOLLOW_UP_NOUNS: Readonly<Record<FollowUpKind, string>> = { upscale: 'upscale', reroll: 're-roll', extend: 'extension' };

/**
 * The follow-ups of which one press makes one job: the same member asking the same one of the same
 * job again within SAME_FOLLOW_UP_WINDOW_SECONDS (a double click sends two interactions; a press can
 * reach two bot processes) is answered with the first job (DuplicateFollowUpError), whichever
 * process takes it (submitFollowUp keeps the requests in the database). An upscale has a rule of its
 * own: refused while the same upscale is queued or running (farm/jobs.ts).
 */
export const ONE_JOB_PER_PRESS: readonly FollowUpKind[] = ['reroll', 'extend'];

/** How long after a member asks a re-roll or an extension of a job the same request of theirs is taken for a repeat of that press. */
export const SAME_FOLLOW_UP_WINDOW_SECONDS = 5;

/**
 * The same member asked the same re-roll or extension of the same job within
 * SAME_FOLLOW_UP_WINDOW_SECONDS: no second job is made. `existingJobId`: the first request's job;
 * null while that request is still being submitted.
 */
export class DuplicateFollowUpError extends InvalidJobStateError {
  constructor(
    readonly parentJobId: number,
    readonly kind: FollowUpKind,
    readonly existingJobId: number | null,
  ) {
    const noun = FOLLOW_UP_NOUNS[kind];
    super(
      (existingJobId === null ? `Your ${noun} of #${parentJobId} is already on its way; its message will appear in a moment.` : `Your ${noun} of #${parentJobId} is already queued as job #${existingJobId}.`) +
        ` Asking again within ${SAME_FOLLOW_UP_WINDOW_SECONDS} seconds makes no second job; for another ${noun}, ask again after that.`,
    );
  }

  override details(): Record<string, unknown> {
    return { existingJobId: this.existingJobId, parentJobId: this.parentJobId, kind: this.kind };
  }
}

/** Follow-ups made from the parent's finished video (a re-roll renders again from the parameters). */
const FROM_PARENT_VIDEO: readonly JobKind[] = ['upscale', 'extend'];

/** The parameters the rule reads: for an extension's prompts, those of the whole movie it makes. */
export type FollowUpRuleParams = Pick<JobParams, 'variation' | 'images' | 'prompts'>;

/**
 * Why a finished job cannot have this follow-up (a message for the user), or undefined when it
 * can: the one rule behind submitFollowUp's refusals and the buttons front ends show
 * (followUpsFor). `parent.kind` is optional so followUpParams, which only has the parameters,
 * applies the checks that depend on them.
 *
 * `parent.params.prompts` must be the prompts of the whole movie the job made (an extension's own
 * parameters list only its new ones: pass withWholeMovie's / parentMovieParams' parameters; an
 * upscale's already list the whole movie). Given an extension's own list the prompt check can only
 * miss (it never refuses wrongly), and the submission's checkExtension still refuses then.
 *
 * A re-roll or an extension of an upscale is made from the video it upscaled (submitFollowUp
 * follows the upscale back to its source), so an upscale offers both.
 */
export function followUpRefusal(kind: FollowUpKind, parent: { kind?: JobKind; parentJobId?: number | null; params: FollowUpRuleParams }): string | undefined {
  if (kind === 'reroll') return undefined;
  if (parent.params.variation) return `A variation animation can only be re-rolled; to ${kind} it, start a new /vary from a frame of it.`;
  if (kind === 'upscale' && parent.kind === 'upscale') {
    return `This video is already an upscale; upscale the original video${parent.parentJobId ? ` (#${parent.parentJobId})` : ''} with a larger factor instead.`;
  }
  if (kind === 'extend' && parent.params.prompts.length >= LIMITS.prompts.max) {
    return `This movie already has ${parent.params.prompts.length} prompts, the most a movie may have, so it can't be extended; start a new /movie to go on from its last prompt.`;
  }
  return undefined;
}

/**
 * The follow-ups a finished job can have (in FOLLOW_UP_KINDS order): what its buttons
 * should offer. `parent.params.prompts`: the whole movie's, as for followUpRefusal (the bot posts a
 * finished job with withWholeMovie's parameters), so a movie at LIMITS.prompts.max offers no Extend.
 */
export function followUpsFor(parent: { kind: JobKind; parentJobId?: number | null; params: FollowUpRuleParams }): FollowUpKind[] {
  return FOLLOW_UP_KINDS.filter((kind) => followUpRefusal(kind, parent) === undefined);
}

/** The parent row checkFollowUpParent read. */
export interface FollowUpParent {
  id: number;
  kind: JobKind;
  status: JobStatus;
  params: JobParams;
  parentJobId: number | null;
}

/**
 * The parent `parentJobId` of a new (or retried) job of `kind`, refused unless it can have that
 * job: it must exist; an upscale or an extension (made from the parent's video) also needs it
 * finished (`done`), allowed by followUpRefusal, and its video still stored (retention deletes old
 * videos: ParentVideoGoneError). With `lock` (inside the transaction that writes the job) the
 * parent's row and its video's row are held FOR KEY SHARE until that transaction ends; retention
 * (retention.ts) skips locked rows and decides what to delete only once it holds its own locks, so
 * it can neither delete the video under a submission nor miss the new job that protects it.
 */
export async function checkFollowUpParent(q: Queryable, kind: JobKind, parentJobId: number, options: { lock?: boolean } = {}): Promise<FollowUpParent> {
  const select = q.select({ id: jobs.id, kind: jobs.kind, status: jobs.status, params: jobs.params, parentJobId: jobs.parentJobId }).from(jobs).where(eq(jobs.id, parentJobId));
  const [row] = options.lock ? await select.for('key share') : await select;
  if (!row) throw new JobNotFoundError(parentJobId);
  const parent: FollowUpParent = { ...row, params: row.params as unknown as JobParams };
  if (!FROM_PARENT_VIDEO.includes(kind)) return parent;
  const verb = kind === 'upscale' ? 'upscaled' : 'extended';
  if (parent.status === 'queued' || parent.status === 'running') {
    throw new InvalidJobStateError(`Job ${parent.id} is ${parent.status}; only a finished video can be ${verb}: wait until it is done, then ask again.`);
  }
  if (parent.status !== 'done') {
    throw new InvalidJobStateError(`Job ${parent.id} is ${parent.status}, so it has no video to ${kind}; re-roll it to render it again, then ${kind} the re-roll.`);
  }
  const refusal = followUpRefusal(kind as FollowUpKind, parent);
  if (refusal) throw new InvalidJobStateError(refusal);
  if (kind === 'extend' && parent.kind === 'upscale') {
    // The upscale's movie has lost its pictures and inpainting, and its video is at another size:
    // an extension continues the movie it upscaled (submitFollowUp, the Extend button, goes there itself).
    throw new InvalidJobStateError(
      `Job ${parent.id} is an upscale; an extension continues the movie it upscaled${parent.parentJobId !== null ? `: extend job ${parent.parentJobId} instead` : ''} (upscale the extension afterwards).`,
    );
  }
  const video = q.select({ id: artifacts.id }).from(artifacts).where(eq(artifacts.jobId, parentJobId));
  const [artifact] = options.lock ? await video.for('key share') : await video;
  if (!artifact) throw new ParentVideoGoneError(parent.id, verb);
  return parent;
}
