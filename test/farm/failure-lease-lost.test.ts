// One rule, one place: the error a reaped job gets (reapExpiredLeases, farm/queue.ts) and the rule
// that counts a failure as a lost lease (failureCause, farm/metrics.ts) share LEASE_LOST_ERROR_MARK
// (farm/failure.ts), so rewording one cannot turn lost leases into render errors in the metrics.
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { holderEndedError, isLeaseLostError, LEASE_LOST_ERROR_MARK, LEASE_LOST_TEXT, leaseLostError } from '../../farm/failure.ts';
import { getJob, submitJob } from '../../farm/jobs.ts';
import { failureCause } from '../../farm/metrics.ts';
import { claimJob, failAttempt, reapExpiredLeases, takeBackJobsOf } from '../../farm/queue.ts';
import { BACKENDS, CHEAP_BLEND, expireLease, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

describe('the lost-lease error', () => {
  it('names the worker and the attempt, and only it is recognised as a lost lease', () => {
    expect(leaseLostError('gpu-3', 2)).toBe(`worker gpu-3 ${LEASE_LOST_ERROR_MARK} 2 (it crashed, hung or lost its connection)`);
    expect(leaseLostError(null, 1)).toMatch(/^worker \? /);
    expect(isLeaseLostError(leaseLostError('gpu-3', 2))).toBe(true);
    expect(failureCause(leaseLostError('gpu-3', 2))).toBe('lease_expired');
    expect(isLeaseLostError('CUDA out of memory')).toBe(false);
    expect(isLeaseLostError(null)).toBe(false);
    expect(failureCause('CUDA out of memory')).toBe('render_error');
    // A job taken back from a worker id whose process ended (a new process took the id over) lost its lease too.
    expect(failureCause(holderEndedError('the process that held worker id gpu-3 (pid 7 on h)', 1))).toBe('lease_expired');
  });
});

describe.each(BACKENDS)('a reaped job on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;
  useTestFarm(backend, { budget: GENEROUS_BUDGET, maxAttempts: 1, lastAttemptGraceSeconds: 0 }, (t) => ({ db, farm } = t));

  it('is failed with the lost-lease error, which the metrics count as a lost lease, not a render error', async () => {
    const job = await submitJob(farm, { kind: 'blend', userId: 'reaped', params: { ...CHEAP_BLEND, model: 'lease-lost' } });
    const lease = await claimJob(farm, 'w-gone', { models: ['lease-lost'], maxPixels: 1 << 30, executionProvider: 'test' });
    expect(lease?.id).toBe(job.id);
    await expireLease(db, job.id);
    expect(await reapExpiredLeases(farm)).toBe(1);
    const failed = await getJob(farm, job.id);
    expect(failed).toMatchObject({ status: 'failed', error: leaseLostError('w-gone', 1), userError: LEASE_LOST_TEXT });
    expect(failureCause(failed?.error)).toBe('lease_expired');

    // A render error on the same farm is not a lost lease.
    const other = await submitJob(farm, { kind: 'blend', userId: 'reaped', params: { ...CHEAP_BLEND, model: 'lease-kept' } });
    const held = await claimJob(farm, 'w-here', { models: ['lease-kept'], maxPixels: 1 << 30, executionProvider: 'test' });
    expect(held?.id).toBe(other.id);
    expect(await failAttempt(farm, held!, 'the VAE ran out of memory')).toBe('failed');
    expect(failureCause((await getJob(farm, other.id))?.error)).toBe('render_error');
  });

  it('a job taken back from a worker id whose process ended carries the same kind of error: a lost lease, not a render error', async () => {
    const job = await submitJob(farm, { kind: 'blend', userId: 'taken', params: { ...CHEAP_BLEND, model: 'taken-back' } });
    const lease = await claimJob(farm, 'w-replaced', { models: ['taken-back'], maxPixels: 1 << 30, executionProvider: 'test' });
    expect(lease?.id).toBe(job.id);
    // maxAttempts is 1 here: a job on its last attempt is left to the reaper, so allow a second one.
    await db.db.execute(sql`update jobs set max_attempts = 2 where id = ${job.id}`);
    expect(await takeBackJobsOf(farm, 'w-replaced', 'the process that held worker id w-replaced (pid 7 on h)')).toBe(1);
    const back = await getJob(farm, job.id);
    expect(back).toMatchObject({ status: 'queued', error: holderEndedError('the process that held worker id w-replaced (pid 7 on h)', 1) });
    expect(failureCause(back?.error)).toBe('lease_expired');
  });
});
