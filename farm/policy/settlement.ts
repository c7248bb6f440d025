// Settlement: what a job that ended costs, and what of its reservation goes back to the user.
import { sql } from 'drizzle-orm';
import type { Transaction } from '../../db/client.ts';
import { addLedgerEntry, lockUser } from './budget.ts';

/** How a job ended, with what the charge is measured from. */
export type Outcome =
  /** The render finished; `spentMs`: the GPU time its worker measured. */
  | { kind: 'done'; spentMs: number }
  /**
   * The render finished and was stored after a reaper had failed the job (its lease ran out on its
   * last attempt) and refunded the whole reservation: `spentMs` is charged again, at most what the
   * balance holds now.
   */
  | { kind: 'done-after-refund'; spentMs: number }
  /** Out of attempts, or a permanent error that was the farm's (a crash, out of memory, a model that does not load, a lost lease). */
  | { kind: 'failed' }
  /**
   * Failed by the request itself (RenderError requestFault: a video that cannot fit its maxBytes, a
   * setting or picture the engine refuses); `ranMs`: how long the attempt ran before it failed.
   */
  | { kind: 'request-fault'; ranMs: number }
  /** Stopped for running past its time limit (config.ts renderTimeLimitSeconds); `ranMs`: how long the attempt ran. */
  | { kind: 'timed-out'; ranMs: number }
  /** Cancelled; `ranMs`: how long the current attempt had run (null: it was still queued). */
  | { kind: 'cancelled'; ranMs: number | null };

export interface SettledJob {
  id: number;
  userId: string;
  reservedMs: number;
}

export interface Settlement {
  chargedMs: number;
  /** Given back to the balance (negative: taken from it, a charge after a full refund). */
  returnedMs: number;
}

/**
 * The charge rule: a finished job pays its measured time; a cancelled or timed-out one, or one
 * that failed by its request's own fault, the time its attempt ran; one that failed by the farm's
 * fault nothing. Never more than was reserved (an under-estimate is the farm's loss, never a
 * negative balance).
 */
export function chargeFor(reservedMs: number, outcome: Outcome): number {
  const used = usedMs(outcome);
  return Math.max(0, Math.min(reservedMs, Math.round(used)));
}

function usedMs(outcome: Outcome): number {
  switch (outcome.kind) {
    case 'done':
    case 'done-after-refund':
      return outcome.spentMs;
    case 'cancelled':
    case 'timed-out':
    case 'request-fault':
      return outcome.ranMs ?? 0;
    case 'failed':
      return 0;
  }
}

/**
 * Inside the transaction that ends the job: records the charge on the job row and returns the
 * rest of the reservation (ledger 'settle' for a finished job, 'refund' for a failed, timed-out or
 * cancelled one).
 */
export async function settleJob(tx: Transaction, job: SettledJob, outcome: Outcome): Promise<Settlement> {
  if (outcome.kind === 'done-after-refund') {
    // The reservation came back with the failure: the charge is taken again, from what is there
    // (the refund may have been spent meanwhile; the balance never goes below zero).
    const { balanceMs } = await lockUser(tx, job.userId);
    const dueMs = chargeFor(job.reservedMs, outcome);
    const chargedMs = Math.min(dueMs, balanceMs);
    await tx.execute(sql`update jobs set charged_ms = ${chargedMs}::bigint where id = ${job.id}`);
    const short = chargedMs < dueMs ? `, charged ${chargedMs / 1000} (all the balance held)` : '';
    if (chargedMs > 0) await addLedgerEntry(tx, job.userId, 'settle', -chargedMs, job.id, `job ${job.id} used ${outcome.spentMs / 1000} GPU-seconds, stored after it had been failed and refunded${short}`);
    return { chargedMs, returnedMs: -chargedMs };
  }
  const chargedMs = chargeFor(job.reservedMs, outcome);
  const returnedMs = job.reservedMs - chargedMs;
  await tx.execute(sql`update jobs set charged_ms = ${chargedMs}::bigint where id = ${job.id}`);
  if (outcome.kind === 'done') {
    await addLedgerEntry(tx, job.userId, 'settle', returnedMs, job.id, `job ${job.id} used ${outcome.spentMs / 1000} GPU-seconds`);
  } else if (outcome.kind === 'request-fault') {
    if (returnedMs > 0) await addLedgerEntry(tx, job.userId, 'refund', returnedMs, job.id, `job ${job.id} failed by its request, charged ${chargedMs / 1000} GPU-seconds for the time it ran`);
  } else if (returnedMs > 0) {
    await addLedgerEntry(tx, job.userId, 'refund', returnedMs, job.id, `job ${job.id} ${outcome.kind}`);
  }
  return { chargedMs, returnedMs };
}
