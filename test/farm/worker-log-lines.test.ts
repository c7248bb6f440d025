// The worker's and the reaper's log lines say in words what happened to a render and to its job
// (farm/worker.ts, farm/housekeeping.ts): a render abandoned because the job was cancelled or its
// lease was lost, an attempt that failed and what became of the job, and the jobs the reaper took
// back, by id, with their workers and what became of each.
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { sweepQueue } from '../../farm/housekeeping.ts';
import { cancelJob, getJob, submitJob } from '../../farm/jobs.ts';
import { claimJob } from '../../farm/queue.ts';
import { registerWorker } from '../../farm/worker-registry.ts';
import { waitForJob } from '../../farm/wait.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { CHEAP_BLEND, expireLease, farmContext, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';
import { until } from '../helpers/until.ts';


describe('log lines in words (pglite)', () => {
  let db: FarmDb;
  let farm: FarmContext;
  useTestFarm('pglite', { budget: GENEROUS_BUDGET }, (t) => {
    ({ db, farm } = t);
  });

  function worker(model: string, lines: string[]): FarmWorker {
    return new FarmWorker({ farm, renderer: new FakeRenderer({ models: [model], steps: 200, stepMs: 20 }), id: `w-${model}`, log: (line) => lines.push(line) });
  }

  it('a cancelled job: "render abandoned: the job was cancelled"', async () => {
    const lines: string[] = [];
    const w = worker('log-cancel', lines);
    await w.start();
    try {
      const job = await submitJob(farm, { kind: 'movie', userId: 'log-a', params: { ...CHEAP_BLEND, model: 'log-cancel' } });
      await until(async () => (await getJob(farm, job.id))?.status === 'running');
      await cancelJob(farm, job.id, 'log-a');
      await until(() => lines.some((l) => l.startsWith(`job ${job.id}: render abandoned`)));
      expect(lines).toContain(`job ${job.id}: render abandoned: the job was cancelled (by its owner or the operator); nothing is stored`);
    } finally {
      await w.stop('release', 0);
    }
  });

  it('a lost lease: "render abandoned: its lease was lost (the farm gave the job to another worker or failed it)"', async () => {
    const lines: string[] = [];
    const w = worker('log-lease', lines);
    await w.start();
    try {
      const job = await submitJob(farm, { kind: 'movie', userId: 'log-b', params: { ...CHEAP_BLEND, model: 'log-lease' } });
      await until(async () => (await getJob(farm, job.id))?.status === 'running');
      // The farm gave the job to someone else: its lease token is no longer this worker's.
      await db.db.execute(sql`update jobs set lease_token = gen_random_uuid() where id = ${job.id}`);
      await until(() => lines.some((l) => l.startsWith(`job ${job.id}: render abandoned`)));
      expect(lines).toContain(`job ${job.id}: render abandoned: its lease was lost (the farm gave the job to another worker or failed it); its result could not be stored`);
    } finally {
      await w.stop('release', 0);
    }
  });

  it('a failed attempt says what became of the job: queued again, then failed on the last attempt', async () => {
    const lines: string[] = [];
    const w = new FarmWorker({ farm, renderer: new FakeRenderer({ models: ['log-fail'], steps: 2, stepMs: 5 }), id: 'w-log-fail', log: (line) => lines.push(line) });
    await w.start();
    try {
      const job = await submitJob(farm, { kind: 'movie', userId: 'log-c', params: { ...CHEAP_BLEND, prompts: ['[fake fail=9]', 'b'], model: 'log-fail' } });
      const done = await waitForJob(farm, job.id, { timeoutMs: 20_000 });
      expect(done.status).toBe('failed');
      expect(lines).toContain(`job ${job.id}: attempt 1 of ${done.maxAttempts} failed (fake failure on attempt 1): queued again for attempt 2 of ${done.maxAttempts}`);
      expect(lines).toContain(`job ${job.id}: attempt ${done.maxAttempts} of ${done.maxAttempts} failed (fake failure on attempt ${done.maxAttempts}): the job failed (that was its last attempt), refunded in full`);
    } finally {
      await w.stop('release', 0);
    }
  });

  it('the reaper names the jobs it took back, their workers and what became of each', async () => {
    const lines: string[] = [];
    const caps = { models: ['log-reap'], maxPixels: 1024 * 1024, executionProvider: 'fake' };
    await registerWorker(farm, { id: 'w-gone-1', host: 'h', pid: 1, capabilities: caps, concurrency: 1 });
    const again = await submitJob(farm, { kind: 'movie', userId: 'log-d', params: { ...CHEAP_BLEND, model: 'log-reap' } });
    expect((await claimJob(farm, 'w-gone-1', caps))?.id).toBe(again.id);
    const lastFarm = farmContext(db, { budget: GENEROUS_BUDGET, maxAttempts: 1, lastAttemptGraceSeconds: 0 });
    const last = await submitJob(lastFarm, { kind: 'movie', userId: 'log-e', params: { ...CHEAP_BLEND, model: 'log-reap' } });
    expect((await claimJob(lastFarm, 'w-gone-2', caps))?.id).toBe(last.id);
    await expireLease(db, again.id, 5);
    await expireLease(db, last.id, 5);
    const { reaped } = await sweepQueue(lastFarm, (line) => lines.push(line));
    expect(reaped).toBe(2);
    const line = lines.find((l) => l.startsWith('took back 2 job(s)'));
    expect(line, lines.join('\n')).toBeDefined();
    expect(line).toContain(`job ${again.id} (worker w-gone-1, attempt 1): queued again for attempt 2`);
    expect(line).toContain(`job ${last.id} (worker w-gone-2, attempt 1): failed on its last attempt, refunded in full`);
  });
});
