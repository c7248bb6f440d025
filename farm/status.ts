// A snapshot of the farm for operators (`farm status`) and the bot's /queue.
import { and, desc, gt, inArray, sql } from 'drizzle-orm';
import { jobs, JOB_STATUSES, type JobStatus, workers } from '../db/schema.ts';
import type { FarmContext } from './config.ts';
import { listJobs } from './jobs.ts';
import { queuedInClaimOrder } from './queue.ts';
import { type Job, jobFromRow } from './types.ts';
import { listWorkers, type WorkerInfo } from './worker-registry.ts';

export interface FarmStatus {
  database: string;
  counts: Record<JobStatus, number>;
  running: Job[];
  /** The first queued jobs in claim order (position 1 is claimed next). */
  queued: Array<Job & { position: number }>;
  /** Most recently finished jobs. */
  recent: Job[];
  /** Online workers, and offline ones seen in the last hour. */
  workers: WorkerInfo[];
}

export async function farmStatus(farm: FarmContext, options: { queuedLimit?: number; recentLimit?: number } = {}): Promise<FarmStatus> {
  const countRows = await farm.db.db
    .select({ status: jobs.status, count: sql<number>`count(*)::int` })
    .from(jobs)
    .groupBy(jobs.status);
  const counts = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
  for (const row of countRows) counts[row.status] = row.count;

  const running = await listJobs(farm, { statuses: ['running'], limit: 500 });
  const queued = (await queuedInClaimOrder(farm, options.queuedLimit ?? 50)).map(({ job, position }) => ({ ...jobFromRow(job), position }));
  const recentRows = await farm.db.db
    .select()
    .from(jobs)
    .where(inArray(jobs.status, ['done', 'failed', 'cancelled']))
    .orderBy(desc(jobs.finishedAt))
    .limit(options.recentLimit ?? 10);

  const recentlySeen = await farm.db.db
    .select({ id: workers.id })
    .from(workers)
    .where(and(gt(workers.heartbeatAt, sql`now() - interval '1 hour'`)));
  const seen = new Set(recentlySeen.map((w) => w.id));
  const allWorkers = (await listWorkers(farm)).filter((w) => w.online || seen.has(w.id));

  return { database: farm.db.location, counts, running, queued, recent: recentRows.map(jobFromRow), workers: allWorkers };
}
