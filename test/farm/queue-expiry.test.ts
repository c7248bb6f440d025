// Issue 9, item 8: a job no known worker can run is refused at submission (nothing stored), and
// a queued job nobody takes expires after BLENDFARM_QUEUE_TIMEOUT_SECONDS: failed with a message
// for the user, its reservation refunded in full.
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { queryRows, type FarmDb } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { NoCapableWorkerError } from '../../farm/errors.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { cancelJob, getJob, retryJob, submitJob } from '../../farm/jobs.ts';
import { auditBalance, getBudget } from '../../farm/policy/budget.ts';
import { claimJob, expireQueuedJobs, failAttempt } from '../../farm/queue.ts';
import { waitForJob } from '../../farm/wait.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { markWorkerStopped, registerWorker } from '../../farm/worker-registry.ts';
import { BACKENDS, CHEAP_BLEND, countRows } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

// For the operator: failed (not "cancelled"), and no claim that no worker can render it (nothing checks that).
const EXPIRED =
  'Expired: no worker took this job within 1m 30s of it becoming claimable, so it failed unrendered and the GPU-seconds it held were refunded in full. ' +
  'The workers that can render it were busy all that time, or none of them was running.';
// For its owner (failureForOwner): the bot adds the refund and what to do (bot/format.ts failedText).
const EXPIRED_FOR_OWNER = 'no render worker took this job within 1m 30s, so it was dropped';

describe.each(BACKENDS)('queued jobs nobody can run, on %s (item 8)', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;

  useTestFarm(backend, { budget: { refillGpuSeconds: 100, maxActiveJobs: 20 }, queueTimeoutSeconds: 90 }, (t) => ({ db, farm } = t));

  const ageQueued = (jobId: number) => db.db.execute(sql`update jobs set run_after = now() - interval '91 seconds' where id = ${jobId}`);

  it('queues when the farm knows no worker at all, then expires the job with a full refund', async () => {
    const job = await submitJob(farm, { kind: 'blend', userId: 'waiter', params: { ...CHEAP_BLEND, model: 'nobody-has-it' } });
    // The balance before it: what is left plus what it holds (the submission applied the first refill).
    const start = (await getBudget(farm, 'waiter')).balanceGpuSeconds + job.reservedGpuSeconds;
    expect(job.status).toBe('queued');
    // Not yet old enough.
    expect(await expireQueuedJobs(farm)).toBe(0);
    await ageQueued(job.id);
    expect(await expireQueuedJobs(farm)).toBe(1);
    const expired = await getJob(farm, job.id);
    expect(expired).toMatchObject({ status: 'failed', attempts: 0, error: EXPIRED, userError: EXPIRED_FOR_OWNER, chargedGpuSeconds: 0 });
    expect(expired?.finishedAt).toBeInstanceOf(Date);
    expect((await getBudget(farm, 'waiter')).balanceGpuSeconds).toBeCloseTo(start, 6);
    const [refund] = await queryRows<{ amount_ms: string | number }>(db.db, sql`select amount_ms from budget_ledger where job_id = ${job.id} and kind = 'refund'`);
    expect(Number(refund.amount_ms)).toBe(Math.round(job.reservedGpuSeconds * 1000));
    const events = await queryRows<{ type: string; data: Record<string, unknown> }>(db.db, sql`select type, data from job_events where job_id = ${job.id} order by id`);
    expect(events.map((e) => e.type)).toEqual(['queued', 'failed']);
    expect(events[1].data).toMatchObject({ expired: true });
    // Expiring again changes nothing.
    expect(await expireQueuedJobs(farm)).toBe(0);
    const audit = await auditBalance(db.db, 'waiter');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
  });

  it('refuses at submission a job no known worker can run, storing nothing', async () => {
    await registerWorker(farm, { id: 'w-known', host: 'test', pid: 1, concurrency: 1, capabilities: { models: ['known'], maxPixels: 256 * 256, executionProvider: 'test' } });
    const jobs = await countRows(db, 'jobs');
    const ledger = await countRows(db, 'budget_ledger');
    const wrongModel = await submitJob(farm, { kind: 'blend', userId: 'picky', params: { ...CHEAP_BLEND, model: 'unknown' } }).catch((e: unknown) => e);
    expect(wrongModel).toBeInstanceOf(NoCapableWorkerError);
    expect((wrongModel as NoCapableWorkerError).message).toBe('None of the 1 online worker can render model "unknown" at 4096 pixels per frame; pick another model or a smaller size.');
    const tooBig = await submitJob(farm, { kind: 'blend', userId: 'picky', params: { ...CHEAP_BLEND, model: 'known', width: 512, height: 512 } }).catch((e: unknown) => e);
    expect(tooBig).toBeInstanceOf(NoCapableWorkerError);
    expect(await countRows(db, 'jobs')).toBe(jobs);
    // The user row may be created by the budget lookup; no ledger entry, no reservation.
    expect(await countRows(db, 'budget_ledger')).toBe(ledger);
    const fits = await submitJob(farm, { kind: 'blend', userId: 'picky', params: { ...CHEAP_BLEND, model: 'known' } });
    expect(fits.status).toBe('queued');
  });

  it('refuses a retry no known worker can run, as a submission, changing nothing', async () => {
    const job = await submitJob(farm, { kind: 'blend', userId: 'retrier', params: { ...CHEAP_BLEND, model: 'known' } });
    await cancelJob(farm, job.id);
    // The model left every worker since.
    await db.db.execute(sql`update jobs set model = 'retired', params = jsonb_set(params, '{model}', '"retired"') where id = ${job.id}`);
    const ledger = await countRows(db, 'budget_ledger');
    const refused = await retryJob(farm, job.id).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NoCapableWorkerError);
    expect((refused as NoCapableWorkerError).message).toBe('None of the 1 online worker can render model "retired" at 4096 pixels per frame; pick another model or a smaller size.');
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'cancelled' });
    expect(await countRows(db, 'budget_ledger')).toBe(ledger);
  });

  it('has running workers expire what nobody took', async () => {
    const accepted = (await getJob(farm, (await queryRows<{ id: number }>(db.db, sql`select id::int from jobs where user_id = 'picky' and status = 'queued'`))[0].id))!;
    // A worker for another model: it cannot take the job, but its heartbeat expires it.
    const worker = new FarmWorker({ farm, renderer: new FakeRenderer({ models: ['other'] }), id: 'w-other', log: () => {} });
    await worker.start();
    await ageQueued(accepted.id);
    const failed = await waitForJob(farm, accepted.id, { timeoutMs: 20_000 });
    await worker.stop();
    expect(failed).toMatchObject({ status: 'failed', error: EXPIRED, userError: EXPIRED_FOR_OWNER });
    const audit = await auditBalance(db.db, 'picky');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
    expect(audit.balanceMs).toBe(100_000);
  });
});

describe.each(BACKENDS)('refusals counting stopped workers, on %s', (backend) => {
  let farm: FarmContext;

  useTestFarm(backend, { budget: { refillGpuSeconds: 100, maxActiveJobs: 20 }, queueTimeoutSeconds: 90 }, (t) => ({ farm } = t));

  it('says "known workers", and how many are online, when some of them have stopped', async () => {
    const capabilities = { models: ['known'], maxPixels: 256 * 256, executionProvider: 'test' };
    await registerWorker(farm, { id: 'w-up', host: 'test', pid: 1, concurrency: 1, capabilities });
    await registerWorker(farm, { id: 'w-down', host: 'test', pid: 2, concurrency: 1, capabilities });
    await markWorkerStopped(farm, 'w-down');
    const refused = await submitJob(farm, { kind: 'blend', userId: 'picky', params: { ...CHEAP_BLEND, model: 'unknown' } }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NoCapableWorkerError);
    expect((refused as NoCapableWorkerError).message).toBe(
      'None of the 2 known workers (1 online now) can render model "unknown" at 4096 pixels per frame; pick another model or a smaller size.',
    );
    expect((refused as NoCapableWorkerError).details()).toMatchObject({ workersOnline: 1, workersKnown: 2 });
  });
});

describe.each(BACKENDS)('a retry checked against the workers, on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;

  useTestFarm(backend, { budget: { refillGpuSeconds: 100, maxActiveJobs: 20 }, queueTimeoutSeconds: 90 }, (t) => ({ db, farm } = t));

  it('checks a retry against the job as its transaction locked it, reading nothing outside it: a job failed while the retry was asked for is refused too', async () => {
    await registerWorker(farm, { id: 'w-known', host: 'test', pid: 1, concurrency: 1, capabilities: { models: ['known'], maxPixels: 256 * 256, executionProvider: 'test' } });
    const job = await submitJob(farm, { kind: 'blend', userId: 'racer', params: { ...CHEAP_BLEND, model: 'known' } });
    const lease = (await claimJob(farm, 'w-known', { models: ['known'], maxPixels: 256 * 256, executionProvider: 'test' }))!;
    expect(lease.id).toBe(job.id);
    // Between the retry being asked for and its transaction: the job fails for good, and its model
    // has left every worker (as a stale read outside the transaction would not see).
    const outside: string[] = [];
    let hookRan = false;
    let ledger = 0;
    const racing = new Proxy(db.db, {
      get(target, prop) {
        if (prop === 'transaction') {
          return async (fn: (tx: unknown) => Promise<unknown>) => {
            if (!hookRan) {
              hookRan = true;
              expect(await failAttempt(farm, lease, 'model file gone', { permanent: true })).toBe('failed');
              await db.db.execute(sql`update jobs set model = 'retired', params = jsonb_set(params, '{model}', '"retired"') where id = ${job.id}`);
              ledger = await countRows(db, 'budget_ledger');
            }
            return target.transaction(fn);
          };
        }
        if (typeof prop === 'string' && ['select', 'execute', 'insert', 'update', 'delete'].includes(prop)) outside.push(prop);
        const value = Reflect.get(target, prop) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const refused = await retryJob({ ...farm, db: { ...db, db: racing } }, job.id).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NoCapableWorkerError);
    expect(outside).toEqual([]);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'failed', error: 'model file gone' });
    // Nothing booked by the retry: the failure's refund is the last entry.
    expect(ledger).toBeGreaterThan(0);
    expect(await countRows(db, 'budget_ledger')).toBe(ledger);
    const events = await queryRows<{ type: string }>(db.db, sql`select type from job_events where job_id = ${job.id} order by id`);
    expect(events.map((e) => e.type)).toEqual(['queued', 'claimed', 'failed']);
  });
});
