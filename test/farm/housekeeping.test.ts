// A process without workers (`npm start` with BLENDFARM_LOCAL_WORKERS=0) runs the same upkeep as
// workers, on the same intervals (startHousekeeping): queued jobs nobody took expire with a full
// refund, and the retention rules delete old jobs.
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { startHousekeeping } from '../../farm/index.ts';
import { every } from '../../farm/housekeeping.ts';
import { getJob, submitJob } from '../../farm/jobs.ts';
import { auditBalance, getBudget } from '../../farm/policy/budget.ts';
import { claimJob, completeJob } from '../../farm/queue.ts';
import { waitForJob } from '../../farm/wait.ts';
import { BACKENDS, CHEAP_BLEND } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

describe.each(BACKENDS)('housekeeping without workers on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;

  useTestFarm(
    backend,
    { budget: { refillGpuSeconds: 100, maxActiveJobs: 20 }, queueTimeoutSeconds: 90, pruneIntervalSeconds: 0.2, retention: { artifactDays: 0, jobDays: 1, maxArtifactBytes: 0 } },
    (t) => ({ db, farm } = t),
  );

  it('expires queued jobs nobody took and prunes old jobs, until stopped', async () => {
    // A job finished two days ago (jobDays is 1).
    const old = await submitJob(farm, { kind: 'blend', userId: 'keeper', params: { ...CHEAP_BLEND, model: 'hk-old' } });
    const claimed = await claimJob(farm, 'w-gone', { models: ['hk-old'], maxPixels: 1 << 30, executionProvider: 'test' });
    expect(await completeJob(farm, claimed!, { artifact: { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, data: Buffer.from('x') }, gpuSeconds: 0.5 })).toBe(true);
    await db.db.execute(sql`update jobs set finished_at = now() - interval '2 days' where id = ${old.id}`);
    // A job queued longer than queueTimeoutSeconds.
    const waiting = await submitJob(farm, { kind: 'blend', userId: 'waiter', params: { ...CHEAP_BLEND, model: 'hk-wait' } });
    // The balance before it: what is left plus what it holds (the submission applied the first refill).
    const start = (await getBudget(farm, 'waiter')).balanceGpuSeconds + waiting.reservedGpuSeconds;
    await db.db.execute(sql`update jobs set run_after = now() - interval '91 seconds' where id = ${waiting.id}`);

    const lines: string[] = [];
    const housekeeping = startHousekeeping(farm, (line) => lines.push(line));
    try {
      const expired = await waitForJob(farm, waiting.id, { timeoutMs: 20_000 });
      expect(expired).toMatchObject({ status: 'failed', chargedGpuSeconds: 0 });
      expect(expired.error).toMatch(/^Expired: no worker took this job within 1m 30s of it becoming claimable, so it failed unrendered/);
      for (let i = 0; i < 200 && (await getJob(farm, old.id)); i++) await sleep(50);
      expect(await getJob(farm, old.id)).toBeUndefined();
    } finally {
      await housekeeping.stop();
    }
    expect((await getBudget(farm, 'waiter')).balanceGpuSeconds).toBeCloseTo(start, 6);
    const audit = await auditBalance(db.db, 'waiter');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
    expect(lines).toContain('expired 1 job(s) no worker took within 1m 30s (refunded)');
    expect(lines.some((l) => l.startsWith('retention: '))).toBe(true);

    // Stopped: a job that ages now stays queued.
    const later = await submitJob(farm, { kind: 'blend', userId: 'waiter', params: { ...CHEAP_BLEND, model: 'hk-later' } });
    await db.db.execute(sql`update jobs set run_after = now() - interval '91 seconds' where id = ${later.id}`);
    await sleep(600);
    expect((await getJob(farm, later.id))?.status).toBe('queued');
  });
});

describe('every (the timers of housekeeping and worker retention)', () => {
  it('skips ticks while a run is under way, and its stop waits for that run', async () => {
    let runs = 0;
    let finished = 0;
    const stop = every(0.02, async () => {
      runs++;
      await sleep(150);
      finished++;
    });
    while (runs === 0) await sleep(5);
    await sleep(60); // a few ticks fall inside the run
    await stop();
    expect([runs, finished]).toEqual([1, 1]);
    await sleep(60);
    expect(runs).toBe(1); // stopped: no tick after
  });
});
