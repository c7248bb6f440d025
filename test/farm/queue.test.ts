// The queue's guarantees, on real Postgres and on PGlite: one job never goes to two workers, a
// lost lease means the result cannot be stored, attempts run out into a refunded failure, and
// the claim order is fair across users.
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { type FarmDb, queryRows } from '../../db/client.ts';
import { auditBalance } from '../../farm/policy/budget.ts';
import { DEFAULT_FARM_CONFIG, type FarmContext } from '../../farm/config.ts';
import { cancelJob, claimDelivery, getJob, listJobs, listUndelivered, markDelivered, releaseDelivery, retryJob, setJobMessage, submitJob } from '../../farm/jobs.ts';
import { claimJob, claimSpecificJob, completeJob, failAttempt, leaseStateOf, reapExpiredLeases, releaseJob, renewLeases, reportProgress } from '../../farm/queue.ts';
import { queuePosition } from '../../farm/status.ts';
import type { ClaimedJob, WorkerCapabilities } from '../../farm/types.ts';
import {
  allBalances,
  BACKENDS,
  CHEAP_BLEND,
  countRows,
  expireLease,
  GENEROUS_BUDGET,
  type TestDatabase,
} from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

// Each test uses its own model name, so leftovers of one test are invisible to the next.
const only = (model: string): WorkerCapabilities => ({ models: [model], maxPixels: 10_000_000, executionProvider: 'test' });
const blend = (model: string) => ({ ...CHEAP_BLEND, model });

const artifactOf = (text: string) => ({ format: 'mp4', mime: 'video/mp4', sizeBytes: Buffer.byteLength(text), meta: {}, data: Buffer.from(text) });

describe.each(BACKENDS)('queue on %s', (backend) => {
  let testDb: TestDatabase;
  let db: FarmDb;
  let farm: FarmContext;

  useTestFarm(backend, { budget: GENEROUS_BUDGET }, (t) => ({ testDb, db, farm } = t));

  it('never hands one job to two racing workers', async () => {
    const jobCount = backend === 'postgres' ? 100 : 40;
    const workerCount = 8;
    const users = ['race-1', 'race-2', 'race-3', 'race-4'];
    for (let i = 0; i < jobCount; i++) await submitJob(farm, { kind: 'blend', userId: users[i % users.length], params: blend('race') });

    // On Postgres every worker gets its own connection pool, as separate processes would.
    const handles: FarmDb[] = backend === 'postgres' ? await Promise.all(Array.from({ length: workerCount }, () => testDb.open({ migrate: false, poolSize: 2 }))) : Array(workerCount).fill(db);
    const claimedBy = new Map<number, string[]>();
    await Promise.all(
      handles.map(async (handle, n) => {
        const workerFarm = { db: handle, config: farm.config };
        const workerId = `racer-${n}`;
        for (;;) {
          const job = await claimJob(workerFarm, workerId, only('race'));
          if (!job) return;
          claimedBy.set(job.id, [...(claimedBy.get(job.id) ?? []), workerId]);
          expect(await completeJob(workerFarm, job, { artifact: artifactOf(`job ${job.id} by ${workerId}`), gpuSeconds: 0.01 })).toBe(true);
        }
      }),
    );

    expect(claimedBy.size).toBe(jobCount);
    expect([...claimedBy.values()].every((workers) => workers.length === 1)).toBe(true);
    // More than one worker took part, or the test raced nothing.
    expect(new Set([...claimedBy.values()].flat()).size).toBeGreaterThan(1);
    const done = await listJobs(farm, { statuses: ['done'], limit: 1000 });
    expect(done.filter((job) => job.userId.startsWith('race-'))).toHaveLength(jobCount);
    expect(await countRows(db, 'artifacts')).toBe(jobCount);
    expect(await countRows(db, 'job_events', sql`type = 'claimed'`)).toBe(jobCount);
    for (const balance of await allBalances(db)) expect(balance.balanceMs).toBe(balance.ledgerSumMs);
  });

  it('takes a job back from a worker that stopped heartbeating; the stale worker cannot store a result', async () => {
    const job = await submitJob(farm, { kind: 'blend', userId: 'lease-user', params: blend('lease') });
    const stale = (await claimJob(farm, 'stale-worker', only('lease'))) as ClaimedJob;
    expect(stale.id).toBe(job.id);
    expect(await reportProgress(farm, stale, { stage: 'branches', fraction: 0.5 })).toBe(true);

    // Still within its lease: the reaper leaves it alone.
    expect(await reapExpiredLeases(farm)).toBe(0);
    await expireLease(db, job.id);
    expect(await reapExpiredLeases(farm)).toBe(1);
    const requeued = await getJob(farm, job.id);
    expect(requeued?.status).toBe('queued');
    expect(requeued?.error).toMatch(/stale-worker stopped renewing its lease/);

    const fresh = (await claimJob(farm, 'fresh-worker', only('lease'))) as ClaimedJob;
    expect(fresh.id).toBe(job.id);
    expect(fresh.attempt).toBe(2);
    expect(fresh.leaseToken).not.toBe(stale.leaseToken);

    // The stale worker wakes up: its heartbeat, progress and completion all bounce.
    expect((await renewLeases(farm, 'stale-worker', [stale.leaseToken])).size).toBe(0);
    expect(await reportProgress(farm, stale, { stage: 'branches', fraction: 0.9 })).toBe(false);
    expect(await completeJob(farm, stale, { artifact: artifactOf('stale'), gpuSeconds: 1 })).toBe(false);
    expect(await failAttempt(farm, stale, 'late error')).toBe('lost');

    expect(await completeJob(farm, fresh, { artifact: artifactOf('fresh'), gpuSeconds: 1 })).toBe(true);
    expect(await completeJob(farm, fresh, { artifact: artifactOf('again'), gpuSeconds: 1 })).toBe(false);
    const finished = await getJob(farm, job.id);
    expect(finished?.status).toBe('done');
    expect(finished?.attempts).toBe(2);
    expect(await countRows(db, 'artifacts', sql`job_id = ${job.id}`)).toBe(1);
    expect(await countRows(db, 'job_events', sql`job_id = ${job.id} and type = 'done'`)).toBe(1);
  });

  it('fails a job after three failed attempts with the last error, and refunds it', async () => {
    const job = await submitJob(farm, { kind: 'blend', userId: 'fail-user', params: blend('fail') });
    const before = await auditBalance(db.db, 'fail-user');
    for (let attempt = 1; attempt <= 3; attempt++) {
      const claimed = (await claimJob(farm, 'w', only('fail'))) as ClaimedJob;
      expect(claimed.id).toBe(job.id);
      expect(claimed.attempt).toBe(attempt);
      expect(await failAttempt(farm, claimed, `boom ${attempt}`)).toBe(attempt < 3 ? 'retrying' : 'failed');
    }
    const failed = await getJob(farm, job.id);
    expect(failed?.status).toBe('failed');
    expect(failed?.error).toBe('boom 3');
    expect(failed?.chargedGpuSeconds).toBe(0);
    expect(await claimJob(farm, 'w', only('fail'))).toBeUndefined();

    const after = await auditBalance(db.db, 'fail-user');
    expect(after.balanceMs - before.balanceMs).toBe(Math.round(job.reservedGpuSeconds * 1000));
    expect(after.balanceMs).toBe(after.ledgerSumMs);

    // A retry reserves again and starts counting attempts from scratch.
    const retried = await retryJob(farm, job.id);
    // Only once: a queued (or running) job is refused, saying what to do instead.
    expect((await retryJob(farm, job.id).catch((e: unknown) => e)) as Error).toMatchObject({
      code: 'invalid_state',
      message: `Job ${job.id} is queued; only failed or cancelled jobs can be retried: wait for it to finish, or cancel it and then retry it.`,
    });
    expect(retried.status).toBe('queued');
    expect(retried.attempts).toBe(0);
    expect((await auditBalance(db.db, 'fail-user')).balanceMs).toBe(before.balanceMs);
    expect((await claimJob(farm, 'w', only('fail')))?.attempt).toBe(1);
  });

  it('fails at once on a permanent error, and after three expired leases (the last one past the last-attempt grace)', async () => {
    const permanent = await submitJob(farm, { kind: 'blend', userId: 'perm-user', params: blend('perm') });
    const claimed = (await claimJob(farm, 'w', only('perm'))) as ClaimedJob;
    expect(claimed.id).toBe(permanent.id);
    expect(await failAttempt(farm, claimed, 'model missing', { permanent: true })).toBe('failed');
    expect((await getJob(farm, permanent.id))?.attempts).toBe(1);

    const abandoned = await submitJob(farm, { kind: 'blend', userId: 'perm-user', params: blend('perm') });
    for (let attempt = 1; attempt <= 3; attempt++) {
      const next = (await claimJob(farm, `crashy-${attempt}`, only('perm'))) as ClaimedJob;
      expect(next.id).toBe(abandoned.id);
      await expireLease(db, abandoned.id, attempt < 3 ? 1 : farm.config.lastAttemptGraceSeconds + 1);
      expect(await reapExpiredLeases(farm)).toBe(1);
    }
    const failed = await getJob(farm, abandoned.id);
    expect(failed?.status).toBe('failed');
    expect(failed?.error).toMatch(/crashy-3 stopped renewing its lease during attempt 3/);
    // Its owner is not told the worker's name.
    expect(failed?.userError).toBe('the worker rendering it stopped answering (it crashed or lost its connection)');
    const audit = await auditBalance(db.db, 'perm-user');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
    expect(audit.balanceMs).toBe(GENEROUS_BUDGET.refillGpuSeconds * 1000);
  });

  it('gives three users with 10, 2 and 1 queued jobs their first job before anyone gets a third', async () => {
    const plan: Array<[string, number]> = [
      ['fair-a', 10],
      ['fair-b', 2],
      ['fair-c', 1],
    ];
    // The heavy user submits everything first, the worst case for a FIFO queue.
    for (const [user, count] of plan) for (let i = 0; i < count; i++) await submitJob(farm, { kind: 'blend', userId: user, params: blend('fair') });

    const [cJob] = await listJobs(farm, { userId: 'fair-c', statuses: ['queued'] });
    expect(await queuePosition(farm, cJob.id)).toBe(3);

    const order: string[] = [];
    for (;;) {
      const job = await claimJob(farm, 'fair-worker', only('fair'));
      if (!job) break;
      order.push(job.userId);
    }
    expect(order).toHaveLength(13);
    const nth = (user: string, n: number) => order.findIndex((u, i) => u === user && order.slice(0, i + 1).filter((x) => x === user).length === n);
    const lastFirstJob = Math.max(nth('fair-a', 1), nth('fair-b', 1), nth('fair-c', 1));
    const firstThirdJob = Math.min(...['fair-a', 'fair-b', 'fair-c'].map((u) => nth(u, 3)).filter((i) => i >= 0));
    expect(lastFirstJob).toBeLessThan(firstThirdJob);
    // And nobody waits behind the whole burst: the first three claims go to three users.
    expect(new Set(order.slice(0, 3)).size).toBe(3);
  });

  it('counts a claim once in the claim order: a job handed back at shutdown keeps its place, a spooled render claimed again is not booked again', async () => {
    const usageOf = async (userId: string) => Number((await queryRows<{ usage: number }>(db.db, sql`select usage_ms::float8 as usage from users where id = ${userId}`))[0].usage);
    const first = await submitJob(farm, { kind: 'blend', userId: 'once-a', params: blend('once') });
    const second = await submitJob(farm, { kind: 'blend', userId: 'once-b', params: blend('once') });
    const reservedMs = Math.round(first.reservedGpuSeconds * 1000);
    const claimed = (await claimJob(farm, 'w-once', only('once'))) as ClaimedJob;
    expect(claimed.id).toBe(first.id);
    expect(await usageOf('once-a')).toBeCloseTo(reservedMs, -1);
    // The worker shuts down before rendering it: the job is handed back, and goes first again.
    expect(await releaseJob(farm, claimed)).toBe(true);
    expect(await usageOf('once-a')).toBeCloseTo(0, -1);
    const again = (await claimJob(farm, 'w-once', only('once'))) as ClaimedJob;
    expect(again.id).toBe(first.id);
    expect(await usageOf('once-a')).toBeCloseTo(reservedMs, -1);
    expect((await claimJob(farm, 'w-once', only('once')))?.id).toBe(second.id);

    // Its worker dies after rendering it; the reaper takes it back and a worker with the spooled
    // render claims it again (claimSpecificJob): the render was booked by the claim that made it.
    await expireLease(db, first.id, 1);
    expect(await reapExpiredLeases(farm)).toBeGreaterThanOrEqual(1);
    expect((await claimSpecificJob(farm, 'w-spool', first.id, only('once')))?.id).toBe(first.id);
    expect(await usageOf('once-a')).toBeCloseTo(reservedMs, -1);
  });

  it('only claims jobs that fit the worker (model and size)', async () => {
    const big = await submitJob(farm, { kind: 'blend', userId: 'fit-user', params: { ...blend('fit'), width: 1024, height: 1024, model: 'sdxl' } });
    const small: WorkerCapabilities = { models: ['sdxl'], maxPixels: 512 * 512, executionProvider: 'test' };
    const otherModel: WorkerCapabilities = { models: ['demo'], maxPixels: 4096 * 4096, executionProvider: 'test' };
    expect(await claimJob(farm, 'small', small)).toBeUndefined();
    expect(await claimJob(farm, 'other', otherModel)).toBeUndefined();
    const fits = await claimJob(farm, 'fits', { models: ['demo', 'sdxl'], maxPixels: 1024 * 1024, executionProvider: 'test' });
    expect(fits?.id).toBe(big.id);
  });

  it('cancels a queued job with a full refund and a running one charging only the time used', async () => {
    const user = 'cancel-user';
    const queued = await submitJob(farm, { kind: 'blend', userId: user, params: blend('cancel') });
    const start = await auditBalance(db.db, user);
    const cancelled = await cancelJob(farm, queued.id);
    expect(cancelled.cancelled).toBe(true);
    expect(cancelled.job.status).toBe('cancelled');
    expect(cancelled.refundedGpuSeconds).toBe(queued.reservedGpuSeconds);
    expect((await auditBalance(db.db, user)).balanceMs - start.balanceMs).toBe(Math.round(queued.reservedGpuSeconds * 1000));
    expect((await cancelJob(farm, queued.id)).cancelled).toBe(false);

    // A running job: pretend it started 1 s ago so the charge is measurable.
    const beforeRunning = await auditBalance(db.db, user);
    const expensive = await submitJob(farm, { kind: 'movie', userId: user, params: { ...blend('cancel'), prompts: ['a', 'b', 'c'], steps: 50, maxBranches: 50 } });
    const running = (await claimJob(farm, 'w', only('cancel'))) as ClaimedJob;
    expect(running.id).toBe(expensive.id);
    await db.db.execute(sql`update jobs set started_at = now() - interval '1 second' where id = ${running.id}`);
    const result = await cancelJob(farm, running.id);
    expect(result.job.chargedGpuSeconds).toBeGreaterThanOrEqual(1);
    expect(result.job.chargedGpuSeconds).toBeLessThan(expensive.reservedGpuSeconds);
    expect(result.refundedGpuSeconds).toBeCloseTo(expensive.reservedGpuSeconds - (result.job.chargedGpuSeconds ?? 0), 3);
    // The worker can no longer store its render.
    expect(await completeJob(farm, running, { artifact: artifactOf('late'), gpuSeconds: 1 })).toBe(false);
    const audit = await auditBalance(db.db, user);
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
    expect(beforeRunning.balanceMs - audit.balanceMs).toBe(Math.round((result.job.chargedGpuSeconds ?? 0) * 1000));
  });

  it('lets exactly one of several racing deliverers post a result', async () => {
    const job = await submitJob(farm, { kind: 'blend', userId: 'deliver-user', params: blend('deliver') });
    expect(await markDelivered(farm, job.id)).toBe(false); // not finished yet
    const claimed = (await claimJob(farm, 'w', only('deliver'))) as ClaimedJob;
    await completeJob(farm, claimed, { artifact: artifactOf('x'), gpuSeconds: 0.5 });

    await setJobMessage(farm, job.id, { channelId: 'chan-1', messageId: 'msg-1', interactionToken: 'tok', interactionExpiresAt: new Date(Date.now() + 900_000) });
    const undelivered = await listUndelivered(farm, 1000);
    expect(undelivered.find((j) => j.id === job.id)).toMatchObject({ channelId: 'chan-1', messageId: 'msg-1', interactionToken: 'tok' });

    expect(await claimDelivery(farm, job.id, 'shard-1', 60)).toBe(true);
    expect(await claimDelivery(farm, job.id, 'shard-2', 60)).toBe(false);
    expect(await claimDelivery(farm, job.id, 'shard-1', 60)).toBe(true);

    const results = await Promise.all(Array.from({ length: 5 }, () => markDelivered(farm, job.id)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect((await getJob(farm, job.id))?.deliveredAt).toBeInstanceOf(Date);
    expect((await listUndelivered(farm, 1000)).some((j) => j.id === job.id)).toBe(false);
    expect(await claimDelivery(farm, job.id, 'shard-2', 60)).toBe(false);
  });

  it('releases a delivery claim only for its claimant, and never once delivered', async () => {
    const job = await submitJob(farm, { kind: 'blend', userId: 'release-user', params: blend('release') });
    const claimed = (await claimJob(farm, 'w', only('release'))) as ClaimedJob;
    await completeJob(farm, claimed, { artifact: artifactOf('x'), gpuSeconds: 0.5 });

    expect(await releaseDelivery(farm, job.id, 'shard-1')).toBe(false); // nobody holds it
    expect(await claimDelivery(farm, job.id, 'shard-1', 600)).toBe(true);
    expect(await releaseDelivery(farm, job.id, 'shard-2')).toBe(false); // not shard-2's to release
    expect(await claimDelivery(farm, job.id, 'shard-2', 600)).toBe(false);
    expect(await releaseDelivery(farm, job.id, 'shard-1')).toBe(true);
    // Released: another claimant takes it at once, long before the 600 s claim would have run out.
    expect(await claimDelivery(farm, job.id, 'shard-2', 600)).toBe(true);
    expect(await markDelivered(farm, job.id)).toBe(true);
    expect(await releaseDelivery(farm, job.id, 'shard-2')).toBe(false);
    expect(await releaseDelivery(farm, 0, 'shard-2')).toBe(false);
  });

  it('records a job message only if none is, when asked, atomically', async () => {
    const job = await submitJob(farm, { kind: 'blend', userId: 'message-user', params: blend('message') });
    // Racing recorders (a late reply against delivery's own post): exactly one wins.
    const results = await Promise.all(['111', '222', '333'].map((id) => setJobMessage(farm, job.id, { channelId: 'chan-1', messageId: `msg-${id}` }, { onlyIfUnset: true })));
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = (await getJob(farm, job.id))!.messageId;
    expect(winner).toBe(`msg-${['111', '222', '333'][results.indexOf(true)]}`);
    expect(await setJobMessage(farm, job.id, { channelId: 'chan-1', messageId: 'msg-late' }, { onlyIfUnset: true })).toBe(false);
    expect((await getJob(farm, job.id))!.messageId).toBe(winner);
    // Without the option it is recorded whatever was there (delivery's own new message).
    expect(await setJobMessage(farm, job.id, { channelId: 'chan-1', messageId: 'msg-posted' })).toBe(true);
    expect((await getJob(farm, job.id))!.messageId).toBe('msg-posted');
    await expect(setJobMessage(farm, 2_000_000_000, { messageId: 'msg-x' }, { onlyIfUnset: true })).rejects.toThrow();
  });
});

// A job on its last attempt stays running under its expired lease for lastAttemptGraceSeconds, so
// a render its worker finished and spooled can still be stored under that lease (farm/spool.ts;
// the spool's side is in spool.test.ts). Its own database: the reaper's counts are exact.
describe.each(BACKENDS)('the last-attempt grace on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;

  useTestFarm(backend, { budget: GENEROUS_BUDGET }, (t) => ({ db, farm } = t));

  it('re-queues a job with attempts left as soon as its lease expires, but fails one on its last attempt only lastAttemptGraceSeconds later', async () => {
    const grace = farm.config.lastAttemptGraceSeconds;
    expect(grace).toBe(DEFAULT_FARM_CONFIG.lastAttemptGraceSeconds);
    // Attempts left: no grace.
    const retried = await submitJob(farm, { kind: 'blend', userId: 'grace-user', params: blend('grace') });
    const first = (await claimJob(farm, 'grace-worker', only('grace'))) as ClaimedJob;
    expect(first.id).toBe(retried.id);
    await expireLease(db, retried.id, 1);
    expect(await reapExpiredLeases(farm)).toBe(1);
    expect(await getJob(farm, retried.id)).toMatchObject({ status: 'queued', attempts: 1, workerId: null });

    // The last attempt: within the grace nothing takes it, and its worker keeps it.
    const lastAttempt: FarmContext = { db, config: { ...farm.config, maxAttempts: 1 } };
    const job = await submitJob(lastAttempt, { kind: 'blend', userId: 'grace-last', params: blend('grace-last') });
    const claimed = (await claimJob(farm, 'grace-worker', only('grace-last'))) as ClaimedJob;
    expect(claimed).toMatchObject({ id: job.id, attempt: 1, maxAttempts: 1 });
    await expireLease(db, job.id, grace - 10);
    expect(await reapExpiredLeases(farm)).toBe(0);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'running', attempts: 1, workerId: 'grace-worker', error: null });
    expect(await claimSpecificJob(farm, 'other-worker', job.id, only('grace-last'))).toBeUndefined();
    expect(await claimJob(farm, 'other-worker', only('grace-last'))).toBeUndefined();
    // Its worker comes back within the grace: renewing the expired lease is what heartbeats do.
    expect([...(await renewLeases(farm, 'grace-worker', [claimed.leaseToken]))]).toEqual([claimed.leaseToken]);
    expect((await leaseStateOf(farm, job.id))?.leaseLive).toBe(true);
    expect(await reapExpiredLeases(farm)).toBe(0);

    // Past the grace it is failed and refunded in full, as without one. The stale worker can no
    // longer renew it (its render stops), report progress or fail it.
    await expireLease(db, job.id, grace + 1);
    expect(await reapExpiredLeases(farm)).toBe(1);
    const failed = await getJob(farm, job.id);
    expect(failed).toMatchObject({ status: 'failed', attempts: 1, chargedGpuSeconds: 0 });
    expect(failed?.error).toMatch(/grace-worker stopped renewing its lease during attempt 1/);
    const after = await auditBalance(db.db, 'grace-last');
    expect(after.balanceMs).toBe(GENEROUS_BUDGET.refillGpuSeconds * 1000);
    expect(after.balanceMs).toBe(after.ledgerSumMs);
    const [refund] = await queryRows<{ amount_ms: string | number }>(db.db, sql`select amount_ms from budget_ledger where job_id = ${job.id} and kind = 'refund'`);
    expect(Number(refund.amount_ms)).toBe(Math.round(job.reservedGpuSeconds * 1000));
    expect(await countRows(db, 'job_events', sql`job_id = ${job.id} and type = 'failed'`)).toBe(1);
    expect([...(await renewLeases(farm, 'grace-worker', [claimed.leaseToken]))]).toEqual([]);
    expect(await reportProgress(farm, claimed, { stage: 'x', fraction: 0.5 })).toBe(false);
    expect(await failAttempt(farm, claimed, 'late error')).toBe('lost');
    expect(await releaseJob(farm, claimed)).toBe(false);
    // A render it finished under that lease is still stored (a spooled one, after a long outage:
    // farm/spool.ts): done after all, the GPU-seconds charged again.
    expect(await completeJob(farm, claimed, { artifact: artifactOf('stored late'), gpuSeconds: 1 })).toBe(true);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'done', error: null, chargedGpuSeconds: 1 });
    // Done now: not retried, and the refusal says what gives another render.
    expect((await retryJob(farm, job.id).catch((e: unknown) => e)) as Error).toMatchObject({
      code: 'invalid_state',
      message: `Job ${job.id} is done; only failed or cancelled jobs can be retried: re-roll it for a new render.`,
    });
    const charged = await auditBalance(db.db, 'grace-last');
    expect(charged.balanceMs).toBe(GENEROUS_BUDGET.refillGpuSeconds * 1000 - 1000);
    expect(charged.balanceMs).toBe(charged.ledgerSumMs);
    // Once: a second completion under that lease stores nothing.
    expect(await completeJob(farm, claimed, { artifact: artifactOf('again'), gpuSeconds: 1 })).toBe(false);

    // 0 turns the grace off: a last attempt is failed as soon as its lease expires.
    const noGrace: FarmContext = { db, config: { ...farm.config, maxAttempts: 1, lastAttemptGraceSeconds: 0 } };
    const quick = await submitJob(noGrace, { kind: 'blend', userId: 'grace-last', params: blend('grace-off') });
    expect((await claimJob(noGrace, 'grace-worker', only('grace-off')))?.id).toBe(quick.id);
    await expireLease(db, quick.id, 1);
    expect(await reapExpiredLeases(farm)).toBe(0);
    expect(await reapExpiredLeases(noGrace)).toBe(1);
    expect(await getJob(farm, quick.id)).toMatchObject({ status: 'failed', chargedGpuSeconds: 0 });
  });

  it('cancels a last-attempt job whose lease expired within the grace like any running job', async () => {
    const lastAttempt: FarmContext = { db, config: { ...farm.config, maxAttempts: 1 } };
    const job = await submitJob(lastAttempt, { kind: 'blend', userId: 'grace-cancel', params: blend('grace-cancel') });
    const claimed = (await claimJob(farm, 'grace-worker', only('grace-cancel'))) as ClaimedJob;
    await expireLease(db, job.id, 5);
    expect(await reapExpiredLeases(farm)).toBe(0);
    const result = await cancelJob(farm, job.id);
    expect(result.cancelled).toBe(true);
    expect(result.job.status).toBe('cancelled');
    expect(await completeJob(farm, claimed, { artifact: artifactOf('cancelled'), gpuSeconds: 1 })).toBe(false);
    const audit = await auditBalance(db.db, 'grace-cancel');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
  });
});
