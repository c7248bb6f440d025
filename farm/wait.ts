// Waiting for a job to finish without polling: subscribe to its events, then read its row once
// (so a job that finished before the subscription is not missed). A slow re-read covers
// notifications lost while a LISTEN connection was reconnecting.
import type { FarmContext } from './config.ts';
import { type JobEvent, onJobEvent } from './events.ts';
import { getJob } from './jobs.ts';
import { JobNotFoundError } from './errors.ts';
import { type Job, TERMINAL_STATUSES } from './types.ts';
import { monotonicNow } from './timers.ts';

export interface WaitOptions {
  /** Called for each event of this job (progress, claimed, retrying...). */
  onEvent?: (event: JobEvent) => void;
  /** Give up after this long (rejects). Default: wait forever. */
  timeoutMs?: number;
}

/** How often the row is re-read anyway, for notifications lost while LISTEN was reconnecting. */
const RECHECK_MS = 5000;

const isTerminal = (job: Job): boolean => (TERMINAL_STATUSES as readonly string[]).includes(job.status);

/** Resolves with the job once it is done, failed or cancelled. */
export async function waitForJob(farm: FarmContext, jobId: number, options: WaitOptions = {}): Promise<Job> {
  let settle: (() => void) | undefined;
  // Set by events that arrive while the row is being read, so none slips between read and wait.
  let dirty = false;
  const changed = (): void => {
    dirty = true;
    settle?.();
  };
  const unsubscribe = await onJobEvent(farm.db, (event) => {
    if (event.jobId !== jobId) return;
    options.onEvent?.(event);
    if (event.type !== 'progress') changed();
  });
  const deadline = options.timeoutMs === undefined ? Infinity : monotonicNow() + options.timeoutMs;
  try {
    for (;;) {
      dirty = false;
      const job = await getJob(farm, jobId);
      if (!job) throw new JobNotFoundError(jobId);
      if (isTerminal(job)) return job;
      const remaining = deadline - monotonicNow();
      if (remaining <= 0) {
        const goesOn = job.status === 'queued' ? 'stays queued and is rendered when a worker takes it' : 'goes on rendering';
        throw new Error(`Job ${jobId} is still ${job.status} after ${options.timeoutMs} ms; only the waiting stopped: the job ${goesOn} (cancel it if it is no longer wanted).`);
      }
      if (dirty) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(remaining, RECHECK_MS));
        settle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      settle = undefined;
    }
  } finally {
    await unsubscribe();
  }
}
