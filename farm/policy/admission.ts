// Admission: may this user queue this job now? One rule for submissions and retries alike.
import type { Transaction } from '../../db/client.ts';
import { ActiveJobLimitError, BudgetExceededError } from '../errors.ts';
import { addLedgerEntry, applyDueRefill, type BudgetContext, countActiveJobs, lockUser, nextRefillAt, resolveLimits } from './budget.ts';
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
 * Inside the transaction that queues a job: applies a due refill when the request carries the
 * member's complete limits (outside any server, or in a server with the member's roles or without
 * role overrides; otherwise the stored balance is all there is, and the refill waits for such a
 * request: README, Budgets), refuses with
 * ActiveJobLimitError when the user already has `maxActiveJobs` queued or running, and with
 * BudgetExceededError (carrying the numbers) when the balance does not cover the price; otherwise
 * lets `queue(reservedMs)` write the job row and takes the reservation from the balance (a
 * 'reserve' ledger entry). Returns what `queue` returned.
 */
export async function admitJob<T extends { id: number }>(
  tx: Transaction,
  options: Pick<PolicyOptions, 'budget' | 'guildCeilings'>,
  request: AdmissionRequest,
  queue: (reservedMs: number) => Promise<T>,
): Promise<T> {
  const reservedMs = Math.round(request.gpuSeconds * 1000);
  const limits = await resolveLimits(tx, options, request);
  const user = await lockUser(tx, request.userId);
  await applyDueRefill(tx, user, limits);
  const active = await countActiveJobs(tx, request.userId);
  if (active.count >= limits.maxActiveJobs) throw new ActiveJobLimitError(active.count, limits.maxActiveJobs);
  if (user.balanceMs < reservedMs) {
    throw new BudgetExceededError(reservedMs / 1000, user.balanceMs / 1000, nextRefillAt(user, limits), limits.refillGpuSeconds);
  }
  const job = await queue(reservedMs);
  await addLedgerEntry(tx, request.userId, 'reserve', -reservedMs, job.id, request.note(job.id));
  return job;
}
