// Admission: may this user queue this job now? One rule for submissions and retries alike, and for
// the check that forecasts it (checkAdmission).
import type { Queryable, Transaction } from '../../db/client.ts';
import { ActiveJobLimitError, BudgetExceededError } from '../errors.ts';
import {
  addLedgerEntry,
  afterRefill,
  applyDueRefill,
  type BudgetContext,
  countActiveJobs,
  dueRefill,
  type LockedUser,
  lockUser,
  nextRefillAt,
  readUser,
  type ResolvedLimits,
  resolveLimits,
} from './budget.ts';
import type { PolicyOptions } from './options.ts';

export interface AdmissionRequest extends BudgetContext {
  /** Whose budget pays. */
  userId: string;
  /** The job's price in GPU-seconds (FarmPolicy.price). */
  gpuSeconds: number;
  /** Ledger note for the reservation, e.g. "blend job 12". */
  note: (jobId: number) => string;
}

/**
 * Admission's refusals, on what it read (the user after any due refill, their queued and running
 * jobs, their limits): ActiveJobLimitError when the user already has `maxActiveJobs` queued or
 * running, BudgetExceededError (carrying the numbers) when the balance does not cover the price.
 */
function refuseUnlessAdmissible(user: LockedUser, activeJobs: number, limits: ResolvedLimits, reservedMs: number): void {
  if (activeJobs >= limits.maxActiveJobs) throw new ActiveJobLimitError(activeJobs, limits.maxActiveJobs);
  if (user.balanceMs < reservedMs) {
    throw new BudgetExceededError(reservedMs / 1000, user.balanceMs / 1000, nextRefillAt(user, limits), limits.refillGpuSeconds);
  }
}

const reservedMsOf = (request: Pick<AdmissionRequest, 'gpuSeconds'>) => Math.round(request.gpuSeconds * 1000);

/**
 * Inside the transaction that queues a job: applies a due refill when the request carries the
 * member's complete limits (outside any server, or in a server with the member's roles or without
 * role overrides; otherwise the stored balance is all there is, and the refill waits for such a
 * request: README, Budgets), refuses (refuseUnlessAdmissible: too many active jobs, a balance that
 * does not cover the price); otherwise lets `queue(reservedMs)` write the job row and takes the
 * reservation from the balance (a 'reserve' ledger entry). Returns what `queue` returned.
 */
export async function admitJob<T extends { id: number }>(
  tx: Transaction,
  options: Pick<PolicyOptions, 'budget' | 'guildCeilings'>,
  request: AdmissionRequest,
  queue: (reservedMs: number) => Promise<T>,
): Promise<T> {
  const reservedMs = reservedMsOf(request);
  const limits = await resolveLimits(tx, options, request);
  const user = await lockUser(tx, request.userId);
  await applyDueRefill(tx, user, limits);
  refuseUnlessAdmissible(user, (await countActiveJobs(tx, request.userId)).count, limits, reservedMs);
  const job = await queue(reservedMs);
  await addLedgerEntry(tx, request.userId, 'reserve', -reservedMs, job.id, request.note(job.id));
  return job;
}

/**
 * Would admitJob refuse this request now? Throws the refusal it would make (the same error, the
 * same numbers), counting a due refill as admitJob would apply it. Reads only: it creates no user,
 * applies no refill and locks nothing, so it is a forecast; admitJob decides, in its transaction.
 */
export async function checkAdmission(q: Queryable, options: Pick<PolicyOptions, 'budget' | 'guildCeilings'>, request: Omit<AdmissionRequest, 'note'>): Promise<void> {
  const limits = await resolveLimits(q, options, request);
  const stored = await readUser(q, request.userId);
  const refill = await dueRefill(q, stored, limits);
  const user = refill ? afterRefill(stored, refill) : stored;
  refuseUnlessAdmissible(user, (await countActiveJobs(q, request.userId)).count, limits, reservedMsOf(request));
}
