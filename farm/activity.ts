// What the status page shows: the queue by model, workers with their device and current jobs,
// throughput and wait over the last hour, recent failures. Two views of one snapshot:
// - full (operators): prompts, user ids, error texts;
// - public (no login): no user ids, and prompts and failures as their owners are told them
//   (failureForOwner) only of jobs from servers that made their jobs public (`setStatusPageVisibility`); every other job, including jobs
//   without a server (CLI, DMs), shows kind, model, status and progress only.
import { and, desc, eq, gt, inArray, sql } from 'drizzle-orm';
import { queryRows } from '../db/client.ts';
import { guilds, jobs } from '../db/schema.ts';
import type { FarmContext } from './config.ts';
import { failureForOwner } from './failure.ts';
import { failureCause, type FailureCause } from './metrics.ts';
import { queuedInClaimOrder } from './status.ts';
import { type Job, jobFromRow, type JobProgress, TERMINAL_STATUSES } from './types.ts';
import { listWorkers } from './worker-registry.ts';

export interface ActivityJob {
  id: number;
  kind: Job['kind'];
  status: Job['status'];
  model: string;
  attempts: number;
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
  id: string;
  host: string;
  online: boolean;
  executionProvider: string;
  device: string | null;
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
  // The operator sees the failure in full; a public page what the job's owner is told.
  if (job.error !== null && (full || isPublic)) out.error = full ? job.error : failureForOwner(job);
  if (job.error !== null) out.cause = failureCause(job.error);
  return out;
}

/** One snapshot for the status page; `full` only for a holder of the operator token. */
export async function farmActivity(farm: FarmContext, options: { full: boolean; bucketMinutes?: number }): Promise<FarmActivity> {
  const db = farm.db.db;
  const bucketMinutes = options.bucketMinutes ?? 5;
  const [queueRows, running, queuedRows, failedRows, recentRows, allWorkers, hourRows] = await Promise.all([
    db
      .select({ status: jobs.status, model: jobs.model, count: sql<number>`count(*)::int` })
      .from(jobs)
      .where(inArray(jobs.status, ['queued', 'running']))
      .groupBy(jobs.status, jobs.model),
    db.select().from(jobs).where(eq(jobs.status, 'running')).orderBy(jobs.id).limit(200),
    queuedInClaimOrder(farm, 20),
    // Failed jobs and jobs that are being retried after a failed attempt, newest first.
    db
      .select()
      .from(jobs)
      .where(and(sql`${jobs.error} is not null`, gt(sql`coalesce(${jobs.finishedAt}, ${jobs.runAfter}, ${jobs.createdAt})`, sql`now() - interval '1 day'`)))
      .orderBy(desc(sql`coalesce(${jobs.finishedAt}, ${jobs.runAfter}, ${jobs.createdAt})`))
      .limit(10),
    db.select().from(jobs).where(inArray(jobs.status, [...TERMINAL_STATUSES])).orderBy(desc(jobs.finishedAt)).limit(10),
    listWorkers(farm),
    queryRows<{ bucket: number; finished: number; failed: number; mean_wait: number | null }>(
      db,
      sql`with buckets as (select generate_series(0, ${60 / bucketMinutes - 1}) as bucket),
               span as (select now() - interval '1 hour' as since)
          select b.bucket,
                 (select count(*)::int from jobs j, span where j.status = 'done' and j.finished_at >= span.since + make_interval(mins => b.bucket * ${bucketMinutes})
                    and j.finished_at < span.since + make_interval(mins => (b.bucket + 1) * ${bucketMinutes})) as finished,
                 (select count(*)::int from jobs j, span where j.status = 'failed' and j.finished_at >= span.since + make_interval(mins => b.bucket * ${bucketMinutes})
                    and j.finished_at < span.since + make_interval(mins => (b.bucket + 1) * ${bucketMinutes})) as failed,
                 (select avg(extract(epoch from j.started_at - j.created_at))::float8 from jobs j, span
                   where j.attempts = 1 and j.started_at >= span.since + make_interval(mins => b.bucket * ${bucketMinutes})
                    and j.started_at < span.since + make_interval(mins => (b.bucket + 1) * ${bucketMinutes})) as mean_wait
          from buckets b order by b.bucket`,
    ),
  ]);
  const queuedJobs = queuedRows.map(({ job, position }) => ({ job: jobFromRow(job), position }));
  const runningJobs = running.map(jobFromRow);
  const failedJobs = failedRows.map(jobFromRow);
  const recentJobs = recentRows.map(jobFromRow);
  const guildIds = [...new Set([...runningJobs, ...queuedJobs.map((q) => q.job), ...failedJobs, ...recentJobs].map((j) => j.guildId).filter((g): g is string => !!g))];
  const publicSet = await publicGuilds(farm, guildIds);
  const view = (job: Job, extra?: Partial<ActivityJob>) => toActivityJob(job, job.guildId !== null && publicSet.has(job.guildId), options.full, extra);

  const byModel = new Map<string, { model: string; queued: number; running: number }>();
  for (const row of queueRows) {
    const entry = byModel.get(row.model) ?? { model: row.model, queued: 0, running: 0 };
    if (row.status === 'queued') entry.queued = row.count;
    else entry.running = row.count;
    byModel.set(row.model, entry);
  }
  const hourAgo = Date.now() - 3600_000;
  const seenRecently = (w: (typeof allWorkers)[number]) => w.online || w.heartbeatAt.getTime() > hourAgo;
  const now = new Date();
  return {
    at: now.toISOString(),
    view: options.full ? 'full' : 'public',
    queue: [...byModel.values()].sort((a, b) => a.model.localeCompare(b.model)),
    workers: allWorkers.filter(seenRecently).map((w) => ({
      id: w.id,
      host: w.host,
      online: w.online,
      executionProvider: w.capabilities.executionProvider,
      device: w.capabilities.device ?? null,
      slots: w.concurrency,
      heartbeatAt: w.heartbeatAt.toISOString(),
      jobs: runningJobs.filter((j) => j.workerId === w.id).map((j) => j.id),
    })),
    running: runningJobs.map((j) => view(j)),
    queued: queuedJobs.map(({ job, position }) => view(job, { position })),
    hour: hourRows.map((r) => ({
      start: new Date(now.getTime() - 3600_000 + r.bucket * bucketMinutes * 60_000).toISOString(),
      finished: r.finished,
      failed: r.failed,
      meanWaitSeconds: r.mean_wait === null ? null : Number(r.mean_wait),
    })),
    failures: failedJobs.map((j) => view(j)),
    recent: recentJobs.map((j) => view(j)),
  };
}
