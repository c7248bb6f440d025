// The farm's Prometheus metrics (farm/metrics.ts), read straight from a prom-client registry on
// both back ends: the gauges read at scrape time (jobs by status and model, workers), the
// histograms and counters counted from job events (in seconds, by kind, cause and outcome), and
// the submission refusals.
import { sql } from 'drizzle-orm';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import { JOB_KINDS } from '../../db/schema.ts';
import type { FarmContext } from '../../farm/config.ts';
import { ActiveJobLimitError, BudgetExceededError, FarmError, InvalidJobStateError, JobNotFoundError } from '../../farm/errors.ts';
import { cancelJob, getJob, submitJob } from '../../farm/jobs.ts';
import { countRefusal, countRefusals, failureCause, type ObservedJobEvent, registerFarmMetrics, RENDER_BUCKETS_SECONDS, WAIT_BUCKETS_SECONDS } from '../../farm/metrics.ts';
import { claimJob, completeJob, expireQueuedJobs, failAttempt, reapExpiredLeases } from '../../farm/queue.ts';
import type { ClaimedJob, WorkerCapabilities } from '../../farm/types.ts';
import { markWorkerStopped, registerWorker } from '../../farm/worker-registry.ts';
import { BACKENDS, CHEAP_BLEND, expireLease, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';
import { until } from '../helpers/until.ts';

const only = (model: string): WorkerCapabilities => ({ models: [model], maxPixels: 10_000_000, executionProvider: 'test' });
const artifact = { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, data: Buffer.from('x') };

/** A sample's value: `name` as written in the exposition (…_count, …_bucket), with exactly these labels. Undefined when there is none. */
async function sample(registry: Registry, name: string, labels: Record<string, string | number> = {}): Promise<number | undefined> {
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const value of metric.values as Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>) {
      if ((value.metricName ?? metric.name) !== name) continue;
      const keys = Object.keys(value.labels);
      if (keys.length === Object.keys(labels).length && keys.every((k) => String(value.labels[k]) === String(labels[k]))) return value.value;
    }
  }
  return undefined;
}

/** Every label set `name` has samples for. */
async function labelSets(registry: Registry, name: string): Promise<Array<Record<string, string | number>>> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values ?? []).map((v) => v.labels as Record<string, string | number>);
}

describe('failureCause', () => {
  it('names a lost lease, a render error, an expired queue wait, and nothing known', () => {
    expect(failureCause('worker w-1 stopped renewing its lease during attempt 2 (it crashed, hung or lost its connection)')).toBe('lease_expired');
    expect(failureCause('CUDA out of memory')).toBe('render_error');
    expect(failureCause('Expired: no worker took this job within 1h of it becoming claimable')).toBe('queue_timeout');
    expect(failureCause(null)).toBe('unknown');
    expect(failureCause(undefined)).toBe('unknown');
    expect(failureCause('')).toBe('unknown');
  });
});

describe.each(BACKENDS)('farm metrics on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;

  // Reservations of about 100 GPU-seconds, so what a job ran or measured is charged as it is.
  useTestFarm(backend, { budget: GENEROUS_BUDGET, cost: { overheadSeconds: 100 }, maxAttempts: 2, lastAttemptGraceSeconds: 0, queueTimeoutSeconds: 3600 }, (t) => ({ db, farm } = t));

  const submit = (model: string, kind: 'blend' | 'movie' = 'blend') => submitJob(farm, { kind, userId: `user-${model}`, params: { ...CHEAP_BLEND, model } });
  const claim = async (model: string) => (await claimJob(farm, `w-${model}`, only(model))) as ClaimedJob;

  /** A registry counting job events, the events it saw, and a wait for those of one job. */
  async function counting() {
    const registry = new Registry();
    const seen: ObservedJobEvent[] = [];
    const metrics = await registerFarmMetrics(farm, { registry, gauges: false, countJobEvents: true, onEvent: (e) => seen.push(e) });
    const events = (jobId: number) => seen.filter((e) => e.jobId === jobId).map((e) => e.event);
    const heard = async (jobId: number, ...expected: string[]) => {
      await until(() => events(jobId).length >= expected.length, 15_000, `events ${expected.join(', ')} of job ${jobId}`);
      await metrics.settled();
      expect(events(jobId)).toEqual(expected);
    };
    return { registry, seen, metrics, heard };
  }

  it('starts every job kind at zero, so rates work before the first job', async () => {
    const { registry, metrics } = await counting();
    try {
      for (const kind of JOB_KINDS) {
        expect(await sample(registry, 'blendfarm_job_wait_seconds_count', { kind })).toBe(0);
        expect(await sample(registry, 'blendfarm_job_render_seconds_count', { kind })).toBe(0);
        expect(await sample(registry, 'blendfarm_gpu_seconds_charged_total', { kind })).toBe(0);
      }
      expect(await sample(registry, 'blendfarm_job_wait_seconds_bucket', { kind: 'blend', le: WAIT_BUCKETS_SECONDS.at(-1)! })).toBe(0);
      expect(await sample(registry, 'blendfarm_job_render_seconds_bucket', { kind: 'blend', le: RENDER_BUCKETS_SECONDS.at(-1)! })).toBe(0);
    } finally {
      await metrics.stop();
    }
  });

  it('times the wait from queued to claimed and the render from claim to done, in seconds, and counts the charge', async () => {
    const { registry, seen, metrics, heard } = await counting();
    try {
      const job = await submit('timed');
      // Queued 42 s ago by the database's clock.
      await db.db.execute(sql`update job_events set created_at = created_at - interval '42 seconds' where job_id = ${job.id} and type = 'queued'`);
      const lease = await claim('timed');
      await heard(job.id, 'claimed');
      const wait = seen.find((e) => e.jobId === job.id && e.event === 'claimed')!.waitSeconds!;
      expect(wait).toBeGreaterThanOrEqual(42);
      expect(wait).toBeLessThan(60);
      expect(await sample(registry, 'blendfarm_job_wait_seconds_count', { kind: 'blend' })).toBe(1);
      expect(await sample(registry, 'blendfarm_job_wait_seconds_bucket', { kind: 'blend', le: 30 })).toBe(0);
      expect(await sample(registry, 'blendfarm_job_wait_seconds_bucket', { kind: 'blend', le: 60 })).toBe(1);

      // It started 7 s ago, and its worker measured 3 GPU-seconds.
      await db.db.execute(sql`update jobs set started_at = started_at - interval '7 seconds' where id = ${job.id}`);
      expect(await completeJob(farm, lease, { artifact, gpuSeconds: 3 })).toBe(true);
      await heard(job.id, 'claimed', 'done');
      const done = seen.find((e) => e.jobId === job.id && e.event === 'done')!;
      expect(done.renderSeconds).toBeGreaterThanOrEqual(7);
      expect(done.renderSeconds).toBeLessThan(10);
      expect(done).toMatchObject({ kind: 'blend', model: 'timed', status: 'done', chargedGpuSeconds: 3 });
      expect(await sample(registry, 'blendfarm_job_render_seconds_bucket', { kind: 'blend', le: 5 })).toBe(0);
      expect(await sample(registry, 'blendfarm_job_render_seconds_bucket', { kind: 'blend', le: 10 })).toBe(1);
      expect(await sample(registry, 'blendfarm_job_render_seconds_sum', { kind: 'blend' })).toBeCloseTo(done.renderSeconds!, 6);
      expect(await sample(registry, 'blendfarm_jobs_finished_total', { kind: 'blend', status: 'done' })).toBe(1);
      expect(await sample(registry, 'blendfarm_gpu_seconds_charged_total', { kind: 'blend' })).toBe((await getJob(farm, job.id))!.chargedGpuSeconds);
      expect(await sample(registry, 'blendfarm_gpu_seconds_charged_total', { kind: 'blend' })).toBe(3);
      // Other kinds untouched.
      expect(await sample(registry, 'blendfarm_job_wait_seconds_count', { kind: 'movie' })).toBe(0);
    } finally {
      await metrics.stop();
    }
  });

  it('counts each failed attempt by cause and outcome, and the job failed once when its attempts run out', async () => {
    const { registry, seen, metrics, heard } = await counting();
    try {
      const job = await submit('flaky', 'movie');
      // Attempt 1: its worker stops renewing the lease; the reaper puts it back.
      await claim('flaky');
      await expireLease(db, job.id);
      expect(await reapExpiredLeases(farm)).toBeGreaterThanOrEqual(1);
      await heard(job.id, 'claimed', 'retrying');
      // Attempt 2, the last: the render fails.
      const second = await claim('flaky');
      expect(await failAttempt(farm, second, 'the VAE ran out of memory')).toBe('failed');
      await heard(job.id, 'claimed', 'retrying', 'claimed', 'failed');
      expect(await sample(registry, 'blendfarm_job_attempt_failures_total', { kind: 'movie', cause: 'lease_expired', outcome: 'retried' })).toBe(1);
      expect(await sample(registry, 'blendfarm_job_attempt_failures_total', { kind: 'movie', cause: 'render_error', outcome: 'failed' })).toBe(1);
      expect(await labelSets(registry, 'blendfarm_job_attempt_failures_total')).toHaveLength(2);
      expect(await sample(registry, 'blendfarm_jobs_finished_total', { kind: 'movie', status: 'failed' })).toBe(1);
      expect(await sample(registry, 'blendfarm_job_wait_seconds_count', { kind: 'movie' })).toBe(2);
      // A failure refunds everything: nothing charged.
      expect(await sample(registry, 'blendfarm_gpu_seconds_charged_total', { kind: 'movie' })).toBe(0);
      const failed = seen.find((e) => e.jobId === job.id && e.event === 'failed')!;
      expect(failed).toMatchObject({ cause: 'render_error', error: 'the VAE ran out of memory', attempt: 2, status: 'failed' });
      expect(seen.find((e) => e.jobId === job.id && e.event === 'retrying')).toMatchObject({ cause: 'lease_expired', attempt: 1, status: 'queued' });
    } finally {
      await metrics.stop();
    }
  });

  it('counts each event as it happened when it is read after the job moved on (events arrive late)', async () => {
    // The metrics hear of the events only once the job has been retried, claimed again and failed.
    let holding = true;
    const held: Array<() => void> = [];
    const lateDb: FarmDb = {
      kind: db.kind,
      db: db.db,
      location: db.location,
      close: async () => {},
      listen: (channel, handler) => db.listen(channel, (payload) => (holding ? held.push(() => handler(payload)) : handler(payload))),
    };
    const registry = new Registry();
    const seen: ObservedJobEvent[] = [];
    const metrics = await registerFarmMetrics({ ...farm, db: lateDb }, { registry, gauges: false, countJobEvents: true, onEvent: (e) => seen.push(e) });
    try {
      const job = await submit('late', 'movie');
      await db.db.execute(sql`update job_events set created_at = created_at - interval '42 seconds' where job_id = ${job.id} and type = 'queued'`);
      await claimJob(farm, 'w-late-1', only('late'));
      await expireLease(db, job.id);
      expect(await reapExpiredLeases(farm)).toBeGreaterThanOrEqual(1);
      const second = (await claimJob(farm, 'w-late-2', only('late'))) as ClaimedJob;
      expect(second.id).toBe(job.id);
      expect(await failAttempt(farm, second, 'the VAE ran out of memory')).toBe('failed');
      await until(() => held.length >= 4, 15_000, 'the four events held back');
      holding = false;
      for (const deliver of held.splice(0)) deliver();
      await until(() => seen.filter((e) => e.jobId === job.id).length === 4, 15_000, 'the four events counted');
      await metrics.settled();

      const [claimed1, retrying, claimed2, failed] = seen.filter((e) => e.jobId === job.id);
      // The first attempt waited the 42 s since it was queued, the second next to nothing.
      expect(claimed1).toMatchObject({ event: 'claimed', attempt: 1, workerId: 'w-late-1' });
      expect(claimed1.waitSeconds).toBeGreaterThanOrEqual(42);
      expect(claimed1.waitSeconds).toBeLessThan(60);
      expect(claimed2).toMatchObject({ event: 'claimed', attempt: 2, workerId: 'w-late-2' });
      expect(claimed2.waitSeconds).toBeLessThan(30);
      // The retry was for the lost lease of the first worker, though the job's error is now the second attempt's.
      expect(retrying).toMatchObject({ event: 'retrying', attempt: 1, status: 'queued', workerId: 'w-late-1', cause: 'lease_expired' });
      expect(failed).toMatchObject({ event: 'failed', attempt: 2, status: 'failed', workerId: 'w-late-2', cause: 'render_error', error: 'the VAE ran out of memory' });
      expect(await sample(registry, 'blendfarm_job_attempt_failures_total', { kind: 'movie', cause: 'lease_expired', outcome: 'retried' })).toBe(1);
      expect(await sample(registry, 'blendfarm_job_attempt_failures_total', { kind: 'movie', cause: 'render_error', outcome: 'failed' })).toBe(1);
      expect(await labelSets(registry, 'blendfarm_job_attempt_failures_total')).toHaveLength(2);
      expect(await sample(registry, 'blendfarm_job_wait_seconds_bucket', { kind: 'movie', le: 30 })).toBe(1);
      expect(await sample(registry, 'blendfarm_job_wait_seconds_bucket', { kind: 'movie', le: 60 })).toBe(2);
    } finally {
      holding = false;
      await metrics.stop();
    }
  });

  it('counts a job that expired unclaimed in the queue as failed, but no attempt as failed (none ran)', async () => {
    const { registry, seen, metrics, heard } = await counting();
    try {
      const job = await submit('nobody-has-it');
      await db.db.execute(sql`update jobs set run_after = now() - interval '2 hours' where id = ${job.id}`);
      expect(await expireQueuedJobs(farm)).toBeGreaterThanOrEqual(1);
      await heard(job.id, 'failed');
      expect(await sample(registry, 'blendfarm_jobs_finished_total', { kind: 'blend', status: 'failed' })).toBe(1);
      expect(await labelSets(registry, 'blendfarm_job_attempt_failures_total')).toEqual([]);
      expect(seen.find((e) => e.jobId === job.id)).toMatchObject({ event: 'failed', cause: 'queue_timeout', attempt: 0 });
    } finally {
      await metrics.stop();
    }
  });

  it('counts cancelled jobs and charges the time a running one ran; a queued one costs nothing', async () => {
    const { registry, metrics, heard } = await counting();
    try {
      const queued = await submit('cancel-me', 'movie');
      await cancelJob(farm, queued.id);
      await heard(queued.id, 'cancelled');
      expect(await sample(registry, 'blendfarm_jobs_finished_total', { kind: 'movie', status: 'cancelled' })).toBe(1);
      expect(await sample(registry, 'blendfarm_gpu_seconds_charged_total', { kind: 'movie' })).toBe(0);

      const running = await submit('cancel-me', 'movie');
      await claim('cancel-me');
      await heard(running.id, 'claimed');
      await db.db.execute(sql`update jobs set started_at = now() - interval '4 seconds' where id = ${running.id}`);
      const { job } = await cancelJob(farm, running.id);
      await heard(running.id, 'claimed', 'cancelled');
      expect(job.chargedGpuSeconds).toBeGreaterThanOrEqual(4);
      expect(await sample(registry, 'blendfarm_jobs_finished_total', { kind: 'movie', status: 'cancelled' })).toBe(2);
      expect(await sample(registry, 'blendfarm_gpu_seconds_charged_total', { kind: 'movie' })).toBe(job.chargedGpuSeconds);
    } finally {
      await metrics.stop();
    }
  });

  it('reads jobs and workers at scrape time: by status and model, online workers, heartbeat age in seconds, running jobs and slots', async () => {
    const registry = new Registry();
    const metrics = await registerFarmMetrics(farm, { registry });
    try {
      const register = (id: string, models: string[], concurrency = 1, leaseSeconds?: number) =>
        registerWorker(farm, { id, host: 'h', pid: 1, capabilities: { models, maxPixels: 10_000_000, executionProvider: 'test' }, concurrency, leaseSeconds });
      await register('g-online', ['gauge-served'], 2);
      await register('g-any', ['*']);
      await register('g-quiet', ['gauge-quiet']);
      await register('g-stopped', ['gauge-stopped']);
      await register('g-gone', ['gauge-gone']);
      // A worker on a machine with an hour's lease, quiet for 10 minutes: online by its own lease.
      await register('g-long', ['gauge-long'], 1, 3600);
      await db.db.execute(sql`update workers set heartbeat_at = now() - interval '10 minutes' where id in ('g-quiet', 'g-long')`);
      await db.db.execute(sql`update workers set heartbeat_at = now() - interval '2 hours' where id = 'g-gone'`);
      await markWorkerStopped(farm, 'g-stopped');

      const waiting = [await submit('gauge-waiting'), await submit('gauge-waiting')];
      await submit('gauge-served');
      expect((await claimJob(farm, 'g-online', only('gauge-served')))?.model).toBe('gauge-served');

      expect(await sample(registry, 'blendfarm_jobs', { status: 'queued', model: 'gauge-waiting' })).toBe(2);
      expect(await sample(registry, 'blendfarm_jobs', { status: 'running', model: 'gauge-waiting' })).toBe(0);
      expect(await sample(registry, 'blendfarm_jobs', { status: 'running', model: 'gauge-served' })).toBe(1);
      expect(await sample(registry, 'blendfarm_jobs', { status: 'queued', model: 'gauge-served' })).toBe(0);
      const models = new Set((await labelSets(registry, 'blendfarm_jobs')).map((l) => l.model));
      // A worker serving any model is no model; quiet and stopped workers' models are not listed.
      expect(models.has('*')).toBe(false);
      expect(models.has('gauge-quiet')).toBe(false);
      expect(models.has('gauge-stopped')).toBe(false);
      expect(models.has('gauge-long')).toBe(true);

      expect(await sample(registry, 'blendfarm_workers_online')).toBe(3);
      const workers = (await labelSets(registry, 'blendfarm_worker_heartbeat_age_seconds')).map((l) => l.worker).sort();
      expect(workers).toEqual(['g-any', 'g-long', 'g-online', 'g-quiet']);
      const quietAge = (await sample(registry, 'blendfarm_worker_heartbeat_age_seconds', { worker: 'g-quiet' }))!;
      expect(quietAge).toBeGreaterThanOrEqual(600);
      expect(quietAge).toBeLessThan(660);
      expect(await sample(registry, 'blendfarm_worker_heartbeat_age_seconds', { worker: 'g-online' })).toBeLessThan(60);
      expect(await sample(registry, 'blendfarm_worker_running_jobs', { worker: 'g-online' })).toBe(1);
      expect(await sample(registry, 'blendfarm_worker_running_jobs', { worker: 'g-quiet' })).toBe(0);
      expect(await sample(registry, 'blendfarm_worker_slots', { worker: 'g-online' })).toBe(2);
      expect(await sample(registry, 'blendfarm_worker_slots', { worker: 'g-quiet' })).toBe(1);

      // Drained, a model seen before stays listed at 0.
      for (const job of waiting) await cancelJob(farm, job.id);
      expect(await sample(registry, 'blendfarm_jobs', { status: 'queued', model: 'gauge-waiting' })).toBe(0);
    } finally {
      await metrics.stop();
    }
  });

  it('counts refused submissions by reason; a missing job, a wrong state or another error is no refusal', async () => {
    const registry = new Registry();
    const other = new Registry();
    const metrics = [await registerFarmMetrics(farm, { registry, gauges: false }), await registerFarmMetrics(farm, { registry: other, gauges: false })];
    try {
      const refused = async (reason: string) => (await sample(registry, 'blendfarm_submissions_refused_total', { reason })) ?? 0;
      const before = { budget: await refused('budget_exceeded'), active: await refused('too_many_active_jobs'), params: await refused('invalid_params') };

      const budget = new BudgetExceededError(5, 1, new Date(), 100);
      const submitPoor = countRefusals(async (n: number) => {
        if (n > 1) throw budget;
        return `ok ${n}`;
      });
      expect(await submitPoor(1)).toBe('ok 1');
      await expect(submitPoor(2)).rejects.toBe(budget);
      await expect(submitPoor(3)).rejects.toBe(budget);
      countRefusal(new ActiveJobLimitError(3, 3));
      countRefusal(new FarmError('invalid_params', 'width must be a multiple of 8'));
      for (const notARefusal of [new JobNotFoundError(7), new InvalidJobStateError('already done'), new TypeError('bug'), 'text', undefined]) countRefusal(notARefusal);

      expect(await refused('budget_exceeded')).toBe(before.budget + 2);
      expect(await refused('too_many_active_jobs')).toBe(before.active + 1);
      expect(await refused('invalid_params')).toBe(before.params + 1);
      const reasons = (await labelSets(registry, 'blendfarm_submissions_refused_total')).map((l) => l.reason);
      expect(reasons).not.toContain('not_found');
      expect(reasons).not.toContain('invalid_state');
      // Every registry that registers the counter exports the same tally.
      expect(await sample(other, 'blendfarm_submissions_refused_total', { reason: 'budget_exceeded' })).toBe(before.budget + 2);
    } finally {
      for (const m of metrics) await m.stop();
    }
  });
});
