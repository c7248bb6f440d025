// A snapshot of the farm for operators (`farm status`) and the bot's /queue, and where a queued
// job stands in the policy's claim order.
import { and, desc, gt, inArray, sql } from 'drizzle-orm';
import { type Database, queryRows } from '../db/client.ts';
import { jobs, JOB_STATUSES, type JobStatus, workers } from '../db/schema.ts';
import type { FarmContext } from './config.ts';
import { isJobId } from './ids.ts';
import { listJobs } from './jobs.ts';
import { policyOf } from './policy/index.ts';
import { type Job, jobFromRow, jobRowFromJson, TERMINAL_STATUSES } from './types.ts';
import { listWorkers, type WorkerInfo } from './worker-registry.ts';

/**
 * 1-based place of a queued job in the claim order (ignoring which workers can run it); undefined
 * when the job is not queued. Claims take jobs in this same order, so it is what actually happens.
 */
export async function queuePosition(farm: FarmContext, jobId: number): Promise<number | undefined> {
  if (!isJobId(jobId)) return undefined;
  const [row] = await queryRows<{ position: number }>(
    farm.db.db,
    sql`with ${policyOf(farm).claimOrder()}
        select position from (
          select id, (row_number() over (order by virtual_start asc, id asc))::int as position from fair
        ) ranked where id = ${jobId}`,
  );
  return row?.position;
}

/** Queued jobs in the order they will be claimed (ignoring which workers can run them). */
export async function queuedInClaimOrder(farm: FarmContext, limit = 50): Promise<Array<{ job: typeof jobs.$inferSelect; position: number }>> {
  const rows = await queryRows<{ job: Record<string, unknown>; position: number }>(
    farm.db.db,
    sql`with ${policyOf(farm).claimOrder()}
        select row_to_json(j) as job, ranked.position
        from (select id, (row_number() over (order by virtual_start asc, id asc))::int as position from fair) ranked
        join jobs j on j.id = ranked.id
        order by ranked.position
        limit ${limit}`,
  );
  return rows.map((row) => ({ job: jobRowFromJson(row.job), position: row.position }));
}

export interface FarmStatus {
  database: string;
  /** Every job by status, from the same snapshot as the lists: a list shorter than its count was cut at its limit. */
  counts: Record<JobStatus, number>;
  /** Running jobs (at most 500). */
  running: Job[];
  /** The first queued jobs in claim order (position 1 is claimed next). */
  queued: Array<Job & { position: number }>;
  /** Most recently finished jobs. */
  recent: Job[];
  /** Online workers, and offline ones seen in the last hour. */
  workers: WorkerInfo[];
}

/**
 * The counts and the lists are read in one read-only REPEATABLE READ transaction (one snapshot, on
 * Postgres and PGlite alike): a job that changes meanwhile is counted and listed as it was, never
 * counted as queued and listed as running.
 */
export async function farmStatus(farm: FarmContext, options: { queuedLimit?: number; recentLimit?: number; runningLimit?: number } = {}): Promise<FarmStatus> {
  return farm.db.db.transaction(
    (tx) => statusIn({ ...farm, db: { ...farm.db, db: tx as unknown as Database } }, options),
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}

/** How many jobs have each of `statuses` now (the others: 0), in one query. */
export async function countJobs(farm: FarmContext, statuses: readonly JobStatus[] = JOB_STATUSES): Promise<Record<JobStatus, number>> {
  const countRows = await farm.db.db
    .select({ status: jobs.status, count: sql<number>`count(*)::int` })
    .from(jobs)
    .where(inArray(jobs.status, [...statuses]))
    .groupBy(jobs.status);
  const counts = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
  for (const row of countRows) counts[row.status] = row.count;
  return counts;
}

/** farmStatus's reads, on `farm` whose database handle is the snapshot's transaction. */
async function statusIn(farm: FarmContext, options: { queuedLimit?: number; recentLimit?: number; runningLimit?: number }): Promise<FarmStatus> {
  const counts = await countJobs(farm);

  const running = await listJobs(farm, { statuses: ['running'], limit: options.runningLimit ?? 500 });
  const queued = (await queuedInClaimOrder(farm, options.queuedLimit ?? 50)).map(({ job, position }) => ({ ...jobFromRow(job), position }));
  const recentRows = await farm.db.db
    .select()
    .from(jobs)
    .where(inArray(jobs.status, [...TERMINAL_STATUSES]))
    .orderBy(desc(jobs.finishedAt))
    .limit(options.recentLimit ?? 10);

  const recentlySeen = await farm.db.db
    .select({ id: workers.id })
    .from(workers)
    .where(and(gt(workers.heartbeatAt, sql`now() - interval '1 hour'`)));
  const seen = new Set(recentlySeen.map((w) => w.id));
  const allWorkers = (await listWorkers(farm, { q: farm.db.db })).filter((w) => w.online || seen.has(w.id));

  return { database: farm.db.location, counts, running, queued, recent: recentRows.map(jobFromRow), workers: allWorkers };
}
