// What a failed job's owner is told. A job row keeps two texts: `error`, the failure in full for
// operators, and `userError`, the part its owner can act on (RenderError's userMessage, the farm's
// own time-limit and expiry texts). Everything that shows a failure to a job's owner or the public
// (the bot, a public status page) reads it through failureForOwner, so a model, driver or ffmpeg
// message, a path or a host name stays with the operator.
import type { Job } from './types.ts';

/** The owner's line for a failure that is not about their request. */
export function internalFailureText(jobId: number): string {
  return `something went wrong on the farm's side, not with your request; the farm's operator can look it up as job ${jobId}`;
}

/** What the owner of a failed (or retried) job is told: its userError, else the generic line. */
export function failureForOwner(job: Pick<Job, 'id' | 'userError'>): string {
  return job.userError ?? internalFailureText(job.id);
}

/** The owner's line when a job's worker stopped renewing its lease (the operator's names the worker). */
export const LEASE_LOST_TEXT = 'the worker rendering it stopped answering (it crashed or lost its connection)';

/**
 * What the operator's error of a job whose worker stopped renewing its lease says after the worker's
 * id (reapExpiredLeases, farm/queue.ts, writes it through leaseLostError; failureCause,
 * farm/metrics.ts, counts a failure as a lost lease by it).
 */
export const LEASE_LOST_ERROR_MARK = 'stopped renewing its lease during attempt';

/** The operator's error of a job whose worker (`workerId`, null when unknown) stopped renewing its lease during `attempt`. */
export function leaseLostError(workerId: string | null, attempt: number): string {
  return `worker ${workerId ?? '?'} ${LEASE_LOST_ERROR_MARK} ${attempt} (it crashed, hung or lost its connection)`;
}

/**
 * The words of a job's error when a new process under a worker id takes back the jobs of the one
 * that held it (takeBackJobsOf, farm/queue.ts, writes it through holderEndedError): that worker's
 * lease is lost too, only noticed sooner.
 */
export const HOLDER_ENDED_ERROR_MARK = 'ended during attempt';

/** The operator's error of a job taken back because `holder` (the process that held its worker id, in words) ended during `attempt`. */
export function holderEndedError(holder: string, attempt: number): string {
  return `${holder} ${HOLDER_ENDED_ERROR_MARK} ${attempt}`;
}

/** Whether a job's error says its worker's lease was lost (written by leaseLostError or holderEndedError). */
export function isLeaseLostError(error: string | null | undefined): boolean {
  const text = error ?? '';
  return text.includes(` ${LEASE_LOST_ERROR_MARK} `) || text.includes(` ${HOLDER_ENDED_ERROR_MARK} `);
}

/** The owner's line when every worker that claimed the job could not render it (a worker fault: handBackForWorkerFault, farm/queue.ts). */
export const NO_WORKER_COULD_RENDER_TEXT = "the farm's render workers could not render it (a problem on the workers, not in your request); the farm's operator can see why";

/**
 * Whether a failure was the farm's, not the request's: no userError (the generic line), the worker
 * lost mid-render, or no worker could render it. Other settings would not have helped.
 */
export function isFarmSideFailure(job: Pick<Job, 'userError'>): boolean {
  return job.userError === null || job.userError === LEASE_LOST_TEXT || job.userError === NO_WORKER_COULD_RENDER_TEXT;
}

/** How the error of a job that expired unclaimed in the queue begins (expireQueuedJobs, farm/queue.ts). */
export const EXPIRED_ERROR_PREFIX = 'Expired:';

/** A job that failed because no worker took it before the queue's timeout: never rendered in that queuing, refunded in full. */
export function isExpiredJob(job: Pick<Job, 'status' | 'error'>): boolean {
  return job.status === 'failed' && (job.error ?? '').startsWith(EXPIRED_ERROR_PREFIX);
}

/** The reason stored (as the job's error) when a member cancels a job: who did it, by user id. */
export function cancelReason(userId: string): string {
  return `cancelled by ${userId}`;
}

/** The reason stored when the farm's operator cancels a job (the farm CLI's `cancel`). */
export const OPERATOR_CANCEL_REASON = 'cancelled by an operator';

/** Who cancelled a job, as far as its stored reason tells (older rows and other callers: unknown). */
export function cancelledBy(job: Pick<Job, 'userId' | 'error'>): 'owner' | 'someone-else' | 'operator' | 'unknown' {
  if (job.error === OPERATOR_CANCEL_REASON) return 'operator';
  const by = /^cancelled by (.+)$/.exec(job.error ?? '');
  if (!by) return 'unknown';
  return by[1] === job.userId ? 'owner' : 'someone-else';
}

/**
 * What a cancelled job's owner and the public (a public status page) are told of who cancelled it,
 * read from its stored reason through cancelledBy: no user id (the stored `error` keeps the id for
 * operators). cancelJob stores this as the job's userError.
 */
export function cancelledByText(job: Pick<Job, 'userId' | 'error'>): string {
  return { owner: 'cancelled by its owner', 'someone-else': 'cancelled by a moderator', operator: "cancelled by the farm's operator", unknown: 'cancelled' }[cancelledBy(job)];
}
