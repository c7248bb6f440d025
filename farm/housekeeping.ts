// Upkeep of the queue and the stored videos that any farm process with a database handle may run,
// several at once (each step locks what it changes or takes turns: SKIP LOCKED, an advisory lock):
//   every heartbeatSeconds       take back jobs whose worker stopped heartbeating (reapExpiredLeases)
//                                and expire queued jobs nobody took (expireQueuedJobs, queueTimeoutSeconds)
//   every pruneIntervalSeconds   the retention rules (pruneFarm; 0: never)
// Workers run the sweep in their heartbeat and the pruning on its own timer (worker.ts); a process
// without workers (`npm start` with BLENDFARM_LOCAL_WORKERS=0) runs both with startHousekeeping, on
// the same intervals.
import { dbFailureLine, loggableError } from '../db/errors.ts';
import type { FarmContext } from './config.ts';
import { expireQueuedJobs, type ReapedJob, reapExpiredLeasesDetailed } from './queue.ts';
import { durationText } from './text.ts';
import { describePrune, pruneFarm } from './retention.ts';
import { startInterval } from './timers.ts';

/** Takes back abandoned jobs and expires queued ones nobody took, saying so when it did. Throws on database errors. */
export async function sweepQueue(farm: FarmContext, log: (line: string) => void): Promise<{ reaped: number; expired: number }> {
  const taken = await reapExpiredLeasesDetailed(farm);
  const reaped = taken.length;
  if (reaped > 0) log(`took back ${reaped} job(s) whose worker stopped renewing the lease: ${taken.map(reapedText).join('; ')}`);
  const expired = await expireQueuedJobs(farm);
  if (expired > 0) log(`expired ${expired} job(s) no worker took within ${durationText(farm.config.queueTimeoutSeconds)} (refunded)`);
  return { reaped, expired };
}

/** One job the reaper took back, for the log: "job 12 (worker gpu-1, attempt 1): queued again for attempt 2". */
function reapedText(job: ReapedJob): string {
  const what =
    job.outcome === 'retrying'
      ? `queued again for attempt ${job.attempt + 1}`
      : job.outcome === 'failed'
        ? 'failed on its last attempt, refunded in full'
        : 'settled elsewhere meanwhile, left as it was';
  return `job ${job.jobId} (worker ${job.workerId ?? 'unknown'}, attempt ${job.attempt}): ${what}`;
}

/** The retention rules once (one process at a time does the work); failures are logged, not thrown. */
export async function pruneOnce(farm: FarmContext, log: (line: string) => void): Promise<void> {
  try {
    const report = await pruneFarm(farm);
    // Also when nothing went but videos were kept for their files (this process cannot reach them, or removing them failed).
    if (report.ran && report.artifactsByAge + report.artifactsBySize + report.jobs + report.unrenderedInputs + report.keptFiles + report.filesFailed > 0) log(`retention: ${describePrune(report)}`);
  } catch (error) {
    log(`retention failed: ${loggableError(error)}`);
  }
}

/**
 * Calls `run` every `seconds` (never when 0 or less; a tick while a run is under way is skipped);
 * the returned function stops the timer and waits for a run under way.
 */
export function every(seconds: number, run: () => Promise<void>): () => Promise<void> {
  if (!(seconds > 0)) return async () => {};
  let running: Promise<void> | undefined;
  // However long (a monthly period is past the 24.8 days one Node timer takes: farm/timers.ts).
  const timer = startInterval(() => {
    running ??= run().finally(() => (running = undefined));
  }, seconds * 1000);
  return async () => {
    timer.clear();
    await running?.catch(() => {});
  };
}

export interface Housekeeping {
  /** Stops the timers and waits for a step under way. */
  stop(): Promise<void>;
}

/** Runs sweepQueue every heartbeatSeconds and pruneOnce every pruneIntervalSeconds, as workers do. */
export function startHousekeeping(farm: FarmContext, log: (line: string) => void): Housekeeping {
  const sweep = () =>
    sweepQueue(farm, log)
      .then(() => {})
      .catch((error: unknown) => {
        const why = dbFailureLine(error);
        if (why) log(`queue upkeep failed: ${why}`);
      });
  const stops = [every(farm.config.heartbeatSeconds, sweep), every(farm.config.pruneIntervalSeconds, () => pruneOnce(farm, log))];
  return {
    async stop() {
      await Promise.all(stops.map((stop) => stop()));
    },
  };
}
