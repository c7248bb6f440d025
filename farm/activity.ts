// What the status page shows: the queue by model, workers with their device and current jobs,
// throughput and wait over the last hour, recent failures. Two views of one snapshot:
// - full (operators): prompts, user ids, error texts;
// - public (no login): no user ids, and prompts and failures as their owners are told them
//   (failureForOwner; a cancelled job: who cancelled it as owner, moderator or operator, never an id)
//   only of jobs from servers that made their jobs public (`setStatusPageVisibility`); every other job, including jobs
//   without a server (CLI, DMs), shows kind, model, status and progress only. Workers are shown as
//   "worker 1", "worker 2"… with their state, slots, jobs and GPU or CPU: no id, host or device
//   (the bot's /queue hides them too).
// The snapshot reads bounded sets only: the hour's buckets in one grouped query over the jobs that
// finished or started in the last hour, failures and recent jobs by finished_at (see the indexes
// noted at farmActivity). The HTTP server shares one snapshot among requests (apps/http/server.ts).
import { and, desc, eq, gt, inArray, isNotNull, isNull, sql } from 'drizzle-orm';
import { queryRows } from '../db/client.ts';
import { guilds, jobs } from '../db/schema.ts';
import type { FarmContext } from './config.ts';
import { cancelledByText, failureForOwner } from './failure.ts';
import { failureCause, type FailureCause } from './metrics.ts';
import { queuedInClaimOrder } from './status.ts';
import { ACTIVE_STATUSES, type Job, jobFromRow, type JobProgress, TERMINAL_STATUSES } from './types.ts';
import { listWorkers, providerKind } from './worker-registry.ts';

export interface ActivityJob {
  id: number;
  kind: Job['kind'];
  status: Job['status'];
  model: string;
  attempts: number;
  /** Full view: the worker's id; public view: its name in `workers` ("worker 2"), null if not listed. */
  workerId: string | null;
  /** 1-based claim order of queued jobs. */
  position?: number;
  progress: { stage: string; fraction: number; message?: string } | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** Present in the full view, and in the public view for public servers only. */
  prompts?: string[];
  /** Full view only. */
  userId?: string;
  guildId?: string | null;
  error?: string | null;
  /** Failures: always present (a bounded category, safe to show). */
  cause?: FailureCause;
  /** Whether the job's server shows its prompts publicly. */
  public: boolean;
}

export interface ActivityWorker {
  /** Full view: the worker's id; public view: "worker N", its place in this list. */
  name: string;
  /** Full view only. */
  id?: string;
  /** Full view only. */
  host?: string;
  online: boolean;
  /** Full view: the execution provider ('cuda', 'cpu', …); public view: its kind, 'GPU', 'CPU' or 'other'. */
  executionProvider: string;
  /** Full view only. */
  device?: string | null;
  slots: number;
  heartbeatAt: string;
  jobs: number[];
}

export interface ActivityBucket {
  /** ISO start of the bucket. */
  start: string;
  finished: number;
  failed: number;
  /** Mean seconds from submission to the claim of jobs claimed in this bucket; null if none. */
  meanWaitSeconds: number | null;
}

export interface FarmActivity {
  at: string;
  view: 'public' | 'full';
  queue: Array<{ model: string; queued: number; running: number }>;
  workers: ActivityWorker[];
  running: ActivityJob[];
  queued: ActivityJob[];
  /** Last hour in equal buckets, oldest first. */
  hour: ActivityBucket[];
  failures: ActivityJob[];
  recent: ActivityJob[];
}

const STATUS_PAGE_KEY = 'statusPage';

/** Lets a server's prompts appear on the public status page (or hides them again). Off by default. */
export async function setStatusPageVisibility(farm: FarmContext, guildId: string, visibility: 'public' | 'private'): Promise<void> {
  await farm.db.db
    .insert(guilds)
    .values({ id: guildId, settings: { [STATUS_PAGE_KEY]: visibility } })
    .onConflictDoUpdate({
      target: guilds.id,
      set: { settings: sql`${guilds.settings} || ${JSON.stringify({ [STATUS_PAGE_KEY]: visibility })}::jsonb`, updatedAt: sql`now()` },
    });
}

/**
 * A server's status-page visibility as stored by setStatusPageVisibility; `isDefault`: it never set
 * one (no row, or no visibility in its settings), so it is 'private', the default.
 */
export async function getStatusPageVisibility(farm: FarmContext, guildId: string): Promise<{ visibility: 'public' | 'private'; isDefault: boolean }> {
  const [row] = await farm.db.db
    .select({ value: sql<string | null>`${guilds.settings} ->> ${STATUS_PAGE_KEY}` })
    .from(guilds)
    .where(eq(guilds.id, guildId));
  const value = row?.value ?? null;
  return { visibility: value === 'public' ? 'public' : 'private', isDefault: value !== 'public' && value !== 'private' };
}

async function publicGuilds(farm: FarmContext, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await farm.db.db
    .select({ id: guilds.id })
    .from(guilds)
    .where(and(inArray(guilds.id, ids), eq(sql`${guilds.settings} ->> ${STATUS_PAGE_KEY}`, 'public')));
  return new Set(rows.map((r) => r.id));
}

function progressOf(p: JobProgress | null): ActivityJob['progress'] {
  return p ? { stage: p.stage, fraction: p.fraction, ...(p.message ? { message: p.message } : {}) } : null;
}

function toActivityJob(job: Job, isPublic: boolean, full: boolean, extra: Partial<ActivityJob> = {}): ActivityJob {
  const out: ActivityJob = {
    id: job.id,
    kind: job.kind,
    status: job.status,
    model: job.model,
    attempts: job.attempts,
    workerId: job.workerId,
    progress: progressOf(job.progress),
    createdAt: job.createdAt.toISOString(),
    startedAt: job.startedAt?.toISOString() ?? null,
    finishedAt: job.finishedAt?.toISOString() ?? null,
    public: isPublic,
    ...extra,
  };
  if (full || isPublic) out.prompts = [...job.params.prompts];
  if (full) {
    out.userId = job.userId;
    out.guildId = job.guildId;
  }
  // The operator sees the failure in full; a public page what the job's owner is told. A cancelled
  // job's reason is read again from its error (cancelledByText): rows cancelled before userError
  // left out the canceller's user id still name it there.
  if (job.error !== null && (full || isPublic)) out.error = full ? job.error : job.status === 'cancelled' ? cancelledByText(job) : failureForOwner(job);
  if (job.error !== null) out.cause = failureCause(job.error);
  return out;
}

/**
 * One snapshot for the status page; `full` only for a holder of the operator token.
 * Indexes that keep it off whole-table scans as the jobs table grows: jobs.finished_at (hour
 * buckets, failures, recent jobs) and jobs.started_at (the hour's waits); without them each of
 * those is one sequential scan, not one per bucket.
 */
export async function farmActivity(farm: FarmContext, options: { full: boolean; bucketMinutes?: number }): Promise<FarmActivity> {
  const db = farm.db.db;
  const bucketMinutes = options.bucketMinutes ?? 5;
  const [queueRows, running, queuedRows, finishedFailedRows, retriedRows, recentRows, allWorkers, hourRows, [clock]] = await Promise.all([
    db
      .select({ status: jobs.status, model: jobs.model, count: sql<number>`count(*)::int` })
      .from(jobs)
      .where(inArray(jobs.status, [...ACTIVE_STATUSES]))
      .groupBy(jobs.status, jobs.model),
    db.select().from(jobs).where(eq(jobs.status, 'running')).orderBy(jobs.id).limit(200),
    queuedInClaimOrder(farm, 20),
    // Failed jobs and jobs that are being retried after a failed attempt, newest first, by
    // coalesce(finished_at, run_after, created_at) within the last day: finished ones by finished_at
    // (an index range), the rest (queued or running again, never finished) apart; merged below.
    db
      .select()
      .from(jobs)
      .where(and(isNotNull(jobs.error), gt(jobs.finishedAt, sql`now() - interval '1 day'`)))
      .orderBy(desc(jobs.finishedAt))
      .limit(10),
    db
      .select()
      .from(jobs)
      .where(and(inArray(jobs.status, [...ACTIVE_STATUSES]), isNotNull(jobs.error), isNull(jobs.finishedAt), gt(sql`coalesce(${jobs.runAfter}, ${jobs.createdAt})`, sql`now() - interval '1 day'`)))
      .orderBy(desc(sql`coalesce(${jobs.runAfter}, ${jobs.createdAt})`))
      .limit(10),
    db.select().from(jobs).where(and(inArray(jobs.status, [...TERMINAL_STATUSES]), isNotNull(jobs.finishedAt))).orderBy(desc(jobs.finishedAt)).limit(10),
    listWorkers(farm),
    // The hour in buckets, in one pass over the jobs that finished or were first claimed in it
    // ([now - 1 hour, now): bucket b is [since + b·m, since + (b+1)·m)); empty buckets are filled in below.
    queryRows<{ bucket: number; finished: number; failed: number; mean_wait: number | null }>(
      db,
      sql`with span as (select now() - interval '1 hour' as since, now() as until),
               events as (
                 select j.status, j.finished_at as at, null::float8 as wait from jobs j, span
                  where j.status in ('done', 'failed') and j.finished_at >= span.since and j.finished_at < span.until
                 union all
                 select 'claimed', j.started_at, extract(epoch from j.started_at - j.created_at)::float8 from jobs j, span
                  where j.attempts = 1 and j.started_at >= span.since and j.started_at < span.until)
          select floor(extract(epoch from (e.at - span.since)) / ${bucketMinutes * 60})::int as bucket,
                 (count(*) filter (where e.status = 'done'))::int as finished,
                 (count(*) filter (where e.status = 'failed'))::int as failed,
                 (avg(e.wait) filter (where e.status = 'claimed'))::float8 as mean_wait
          from events e, span group by 1 order by 1`,
    ),
    queryRows<{ now_ms: number }>(db, sql`select (extract(epoch from now()) * 1000)::float8 as now_ms`),
  ]);
  const queuedJobs = queuedRows.map(({ job, position }) => ({ job: jobFromRow(job), position }));
  const runningJobs = running.map(jobFromRow);
  const failureTime = (r: (typeof retriedRows)[number]) => (r.finishedAt ?? r.runAfter ?? r.createdAt).getTime();
  const failedJobs = [...finishedFailedRows, ...retriedRows]
    .sort((a, b) => failureTime(b) - failureTime(a))
    .slice(0, 10)
    .map(jobFromRow);
  const recentJobs = recentRows.map(jobFromRow);
  const guildIds = [...new Set([...runningJobs, ...queuedJobs.map((q) => q.job), ...failedJobs, ...recentJobs].map((j) => j.guildId).filter((g): g is string => !!g))];
  const publicSet = await publicGuilds(farm, guildIds);
  // The database's clock, as every time here (heartbeats, the hour's buckets) is: this machine's may be off.
  const now = new Date(Number(clock.now_ms));
  const hourAgo = now.getTime() - 3600_000;
  const shownWorkers = allWorkers.filter((w) => w.online || w.heartbeatAt.getTime() > hourAgo);
  // The public view names a worker by its place in the list; the full view by its id.
  const workerName = new Map(shownWorkers.map((w, i) => [w.id, options.full ? w.id : `worker ${i + 1}`]));
  const view = (job: Job, extra?: Partial<ActivityJob>) =>
    toActivityJob(job, job.guildId !== null && publicSet.has(job.guildId), options.full, {
      ...(options.full ? {} : { workerId: job.workerId === null ? null : (workerName.get(job.workerId) ?? null) }),
      ...extra,
    });

  const byModel = new Map<string, { model: string; queued: number; running: number }>();
  for (const row of queueRows) {
    const entry = byModel.get(row.model) ?? { model: row.model, queued: 0, running: 0 };
    if (row.status === 'queued') entry.queued = row.count;
    else entry.running = row.count;
    byModel.set(row.model, entry);
  }
  const buckets = new Map(hourRows.map((r) => [Number(r.bucket), r]));
  return {
    at: now.toISOString(),
    view: options.full ? 'full' : 'public',
    queue: [...byModel.values()].sort((a, b) => a.model.localeCompare(b.model)),
    workers: shownWorkers.map((w) => ({
      name: workerName.get(w.id) ?? w.id,
      ...(options.full ? { id: w.id, host: w.host } : {}),
      online: w.online,
      executionProvider: options.full ? w.capabilities.executionProvider : providerKind(w.capabilities.executionProvider),
      ...(options.full ? { device: w.capabilities.device ?? null } : {}),
      slots: w.concurrency,
      heartbeatAt: w.heartbeatAt.toISOString(),
      jobs: runningJobs.filter((j) => j.workerId === w.id).map((j) => j.id),
    })),
    running: runningJobs.map((j) => view(j)),
    queued: queuedJobs.map(({ job, position }) => view(job, { position })),
    hour: Array.from({ length: Math.floor(60 / bucketMinutes) }, (_, bucket) => {
      const r = buckets.get(bucket);
      return {
        start: new Date(now.getTime() - 3600_000 + bucket * bucketMinutes * 60_000).toISOString(),
        finished: r?.finished ?? 0,
        failed: r?.failed ?? 0,
        meanWaitSeconds: r?.mean_wait == null ? null : Number(r.mean_wait),
      };
    }),
    failures: failedJobs.map((j) => view(j)),
    recent: recentJobs.map((j) => view(j)),
  };
}
