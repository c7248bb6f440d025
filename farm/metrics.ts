// Prometheus metrics of the farm as a whole (prom-client). Two kinds:
//
// - Read at scrape time from the database (every process that registers them sees the same
//   numbers): queue depth by status and model, workers online, seconds since each worker's
//   last heartbeat, jobs per worker.
// - Counted from job events: wait (queued -> claimed) and render (claimed -> done) histograms by
//   job kind, finished jobs, GPU-seconds charged, failed attempts by cause. Every process
//   hears every event, so exactly ONE process per farm should count them (`countJobEvents`):
//   the bot (`npm start`) does; `npm run worker` does not (it exports its own engine timings).
//
// Submission refusals (budget, active-job limit, no capable worker, bad parameters) are counted
// in the process that submits (`countRefusals`, wired into submitJob, submitFollowUp and
// checkSubmission, whose refusal stands for the submission it spares).
//
// Labels are bounded: job kind, status, model id, worker id, cause, reason. Never a prompt, a
// user id or a job id.
import { inArray, sql } from 'drizzle-orm';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { queryRows } from '../db/client.ts';
import { JOB_KINDS, jobs } from '../db/schema.ts';
import type { FarmContext } from './config.ts';
import { FarmError } from './errors.ts';
import { type JobEvent, onJobEvent, type JobEventType } from './events.ts';
import { EXPIRED_ERROR_PREFIX, isLeaseLostError } from './failure.ts';
import { getJob } from './jobs.ts';
import { ACTIVE_STATUSES, type Job } from './types.ts';
import { monotonicNow } from './timers.ts';
import { workerOnline } from './worker-registry.ts';

/** Seconds: a queue can hold a job from a second to hours. */
export const WAIT_BUCKETS_SECONDS = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];
/** Seconds: draft renders take seconds, max-quality movies tens of minutes. */
export const RENDER_BUCKETS_SECONDS = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];

/**
 * Why a job failed, as a bounded label value: an attempt's lost lease or render error, or
 * (queue_timeout) no attempt at all, the job expired unclaimed in the queue (expireQueuedJobs).
 */
export type FailureCause = 'lease_expired' | 'render_error' | 'queue_timeout' | 'unknown';

/** The one rule mapping a job's error text to a cause label. */
export function failureCause(error: string | null | undefined): FailureCause {
  if (!error) return 'unknown';
  if (error.startsWith(EXPIRED_ERROR_PREFIX)) return 'queue_timeout';
  if (isLeaseLostError(error)) return 'lease_expired';
  return 'render_error';
}

// ---------------------------------------------------------------------------------------------
// Submission refusals: tallied in-process, exported by whichever registry registers the counter.

const refusals = new Map<string, number>();
const refusalListeners = new Set<(reason: string) => void>();

/** Counts a refused submission by its FarmError code (other errors are not refusals). */
export function countRefusal(error: unknown): void {
  if (!(error instanceof FarmError) || error.code === 'not_found' || error.code === 'invalid_state') return;
  refusals.set(error.code, (refusals.get(error.code) ?? 0) + 1);
  for (const listener of refusalListeners) listener(error.code);
}

/** Wraps a submit function so its refusals are counted; everything else passes through unchanged. */
export function countRefusals<A extends unknown[], R>(submit: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args: A) => {
    try {
      return await submit(...args);
    } catch (error) {
      countRefusal(error);
      throw error;
    }
  };
}

// ---------------------------------------------------------------------------------------------

/** What the event observer saw, for a structured log line per job event. */
export interface ObservedJobEvent {
  event: JobEventType;
  jobId: number;
  kind: Job['kind'];
  model: string;
  status: Job['status'];
  attempt: number;
  workerId: string | null;
  waitSeconds?: number;
  renderSeconds?: number;
  chargedGpuSeconds?: number;
  cause?: FailureCause;
  error?: string;
}

export interface FarmMetricsOptions {
  registry: Registry;
  /** Register the gauges read from the database at scrape time (default true; one process per farm is enough). */
  gauges?: boolean;
  /** Count wait/render/failure/charge metrics from job events (one process per farm). */
  countJobEvents?: boolean;
  /** Called once per counted job event (after the row was read): for structured logs. */
  onEvent?: (observed: ObservedJobEvent) => void;
  /** Errors while reading rows for an event (the event is then skipped). */
  onError?: (error: Error) => void;
}

export interface FarmMetrics {
  /** Resolves when every event received so far has been counted (tests, shutdown). */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

export async function registerFarmMetrics(farm: FarmContext, options: FarmMetricsOptions): Promise<FarmMetrics> {
  const { registry } = options;
  // Models seen by this process stay listed at 0 once drained, as do the models online workers serve.
  const seenModels = new Set<string>();
  if (options.gauges !== false) registerGauges(farm, registry, seenModels);

  new Counter({
    name: 'blendfarm_submissions_refused_total',
    help: 'Submissions refused, by reason (budget_exceeded, too_many_active_jobs, too_many_pictures, no_capable_worker, invalid_params)',
    labelNames: ['reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, count] of refusals) this.inc({ reason }, count);
    },
  });

  if (!options.countJobEvents) return { settled: async () => {}, stop: async () => {} };
  return countJobEvents(farm, registry, options, seenModels);
}

function registerGauges(farm: FarmContext, registry: Registry, seenModels: Set<string>): void {
  const db = farm.db.db;
  new Gauge({
    name: 'blendfarm_jobs',
    help: 'Jobs waiting or rendering, by status (queued, running) and model',
    labelNames: ['status', 'model'] as const,
    registers: [registry],
    async collect() {
      const rows = await db
        .select({ status: jobs.status, model: jobs.model, count: sql<number>`count(*)::int` })
        .from(jobs)
        .where(inArray(jobs.status, [...ACTIVE_STATUSES]))
        .groupBy(jobs.status, jobs.model);
      const served = await queryRows<{ model: string }>(
        db,
        sql`select distinct jsonb_array_elements_text(capabilities -> 'models') as model from workers
            where ${workerOnline(farm)}`,
      );
      for (const row of [...rows, ...served]) if (row.model !== '*') seenModels.add(row.model);
      this.reset();
      for (const model of seenModels) for (const status of ACTIVE_STATUSES) this.set({ status, model }, 0);
      for (const row of rows) this.set({ status: row.status, model: row.model }, row.count);
    },
  });

  // One query serves the three worker gauges; each collect() reuses a result younger than a second.
  let workerRows: Promise<Array<{ id: string; online: boolean; age: number; running: number; concurrency: number }>> | undefined;
  let workerRowsAt = 0;
  const readWorkers = () => {
    if (!workerRows || monotonicNow() - workerRowsAt > 1000) {
      workerRowsAt = monotonicNow();
      workerRows = queryRows<{ id: string; online: boolean; age: number; running: number; concurrency: number }>(
        db,
        sql`select workers.id,
                   ${workerOnline(farm)} as online,
                   extract(epoch from now() - workers.heartbeat_at)::float8 as age,
                   (select count(*)::int from jobs j where j.worker_id = workers.id and j.status = 'running') as running,
                   workers.concurrency
            from workers
            where workers.stopped_at is null and workers.heartbeat_at > now() - interval '1 hour'
            order by workers.id`,
      ).catch((error: unknown) => {
        workerRows = undefined;
        throw error;
      });
    }
    return workerRows;
  };
  new Gauge({
    name: 'blendfarm_workers_online',
    help: 'Workers that heartbeated within one lease period and have not stopped',
    registers: [registry],
    async collect() {
      this.set((await readWorkers()).filter((w) => w.online).length);
    },
  });
  new Gauge({
    name: 'blendfarm_worker_heartbeat_age_seconds',
    help: 'Seconds since each running worker last heartbeated (workers not stopped, seen in the last hour)',
    labelNames: ['worker'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const w of await readWorkers()) this.set({ worker: w.id }, Number(w.age));
    },
  });
  new Gauge({
    name: 'blendfarm_worker_running_jobs',
    help: 'Jobs each worker is rendering now (compare with blendfarm_worker_slots for how busy it is)',
    labelNames: ['worker'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const w of await readWorkers()) this.set({ worker: w.id }, w.running);
    },
  });
  new Gauge({
    name: 'blendfarm_worker_slots',
    help: 'Concurrent render slots (GPUs) of each worker',
    labelNames: ['worker'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const w of await readWorkers()) this.set({ worker: w.id }, w.concurrency);
    },
  });
}

async function countJobEvents(farm: FarmContext, registry: Registry, options: FarmMetricsOptions, seenModels: Set<string>): Promise<FarmMetrics> {
  const wait = new Histogram({
    name: 'blendfarm_job_wait_seconds',
    help: 'Time from queued (or put back) to claimed by a worker, per attempt, by job kind',
    labelNames: ['kind'] as const,
    buckets: WAIT_BUCKETS_SECONDS,
    registers: [registry],
  });
  const render = new Histogram({
    name: 'blendfarm_job_render_seconds',
    help: 'Time from claim to completion of successful attempts, by job kind',
    labelNames: ['kind'] as const,
    buckets: RENDER_BUCKETS_SECONDS,
    registers: [registry],
  });
  const finished = new Counter({
    name: 'blendfarm_jobs_finished_total',
    help: 'Jobs that reached a final status (done, failed, cancelled), by kind',
    labelNames: ['kind', 'status'] as const,
    registers: [registry],
  });
  const charged = new Counter({
    name: 'blendfarm_gpu_seconds_charged_total',
    help: 'GPU-seconds charged to users\' budgets (finished and cancelled jobs), by kind',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const failures = new Counter({
    name: 'blendfarm_job_attempt_failures_total',
    help: 'Failed attempts by cause (lease_expired, render_error) and outcome (retried, failed)',
    labelNames: ['kind', 'cause', 'outcome'] as const,
    registers: [registry],
  });
  // Pre-create the zero series so rate() and dashboards work before the first job.
  for (const kind of JOB_KINDS) {
    wait.zero({ kind });
    render.zero({ kind });
    charged.inc({ kind }, 0);
  }

  let chain: Promise<void> = Promise.resolve();
  const observe = async (event: JobEvent): Promise<void> => {
    const { type, jobId, attempt } = event;
    if (type !== 'claimed' && type !== 'done' && type !== 'failed' && type !== 'retrying' && type !== 'cancelled') return;
    const job = await getJob(farm, jobId);
    if (!job) return;
    // The job may have moved on since the event (claimed again, failed again): the worker and the
    // error are the event's own, as stored with it, and so is the status; the row only where the
    // event's row is gone.
    const stored = await storedEvent(farm, event);
    seenModels.add(job.model);
    const seen: ObservedJobEvent = { event: type, jobId, kind: job.kind, model: job.model, status: event.status, attempt, workerId: stored ? stored.workerId : job.workerId };
    if (type === 'claimed') {
      const waitSeconds = await waitBeforeClaim(farm, jobId, event.at);
      if (waitSeconds !== undefined) {
        wait.observe({ kind: job.kind }, waitSeconds);
        seen.waitSeconds = waitSeconds;
      }
    } else if (type === 'done') {
      if (job.startedAt && job.finishedAt) {
        seen.renderSeconds = Math.max(0, (job.finishedAt.getTime() - job.startedAt.getTime()) / 1000);
        render.observe({ kind: job.kind }, seen.renderSeconds);
      }
      finished.inc({ kind: job.kind, status: 'done' });
      seen.chargedGpuSeconds = job.chargedGpuSeconds ?? 0;
      charged.inc({ kind: job.kind }, seen.chargedGpuSeconds);
    } else if (type === 'retrying' || type === 'failed') {
      const error = stored ? stored.error : job.error;
      seen.cause = failureCause(error);
      seen.error = error ?? undefined;
      // A job that expired in the queue failed without an attempt: no failed attempt to count.
      if (seen.cause !== 'queue_timeout') failures.inc({ kind: job.kind, cause: seen.cause, outcome: type === 'failed' ? 'failed' : 'retried' });
      if (type === 'failed') finished.inc({ kind: job.kind, status: 'failed' });
    } else if (type === 'cancelled') {
      finished.inc({ kind: job.kind, status: 'cancelled' });
      seen.chargedGpuSeconds = job.chargedGpuSeconds ?? 0;
      charged.inc({ kind: job.kind }, seen.chargedGpuSeconds);
    }
    options.onEvent?.(seen);
  };
  const unsubscribe = await onJobEvent(farm.db, (event) => {
    // In order, one at a time: a job's claimed and done are counted in the order they happened.
    chain = chain.then(() => observe(event)).catch((error: unknown) => options.onError?.(error as Error));
  });
  return {
    settled: () => chain,
    async stop() {
      await unsubscribe();
      await chain;
    },
  };
}

/** The worker and error stored with an event (job_events.data), found by its job, type and time; undefined when its row is gone. */
async function storedEvent(farm: FarmContext, event: JobEvent): Promise<{ workerId: string | null; error: string | null } | undefined> {
  if (!event.at) return undefined;
  const [row] = await queryRows<{ worker_id: string | null; error: string | null }>(
    farm.db.db,
    sql`select data ->> 'workerId' as worker_id, data ->> 'error' as error from job_events
        where job_id = ${event.jobId} and type = ${event.type} and created_at = ${event.at}::timestamptz
        order by id desc limit 1`,
  );
  return row ? { workerId: row.worker_id, error: row.error } : undefined;
}

/**
 * Seconds an attempt waited: from the job's last (re)queueing event (submitted, retried, handed
 * back) before its claim at `claimedAt` (the claimed event's time; default the job's latest claim)
 * to that claim. Both times come from the database clock.
 */
async function waitBeforeClaim(farm: FarmContext, jobId: number, claimedAt?: string): Promise<number | undefined> {
  const claim = claimedAt ? sql`${claimedAt}::timestamptz` : sql`j.started_at`;
  const [row] = await queryRows<{ wait: number | null }>(
    farm.db.db,
    sql`select extract(epoch from ${claim} - coalesce(
               (select max(e.created_at) from job_events e
                 where e.job_id = j.id and e.type in ('queued', 'retrying', 'released') and e.created_at <= ${claim}),
               j.created_at))::float8 as wait
        from jobs j where j.id = ${jobId} and ${claim} is not null`,
  );
  return row?.wait === null || row?.wait === undefined ? undefined : Math.max(0, Number(row.wait));
}
