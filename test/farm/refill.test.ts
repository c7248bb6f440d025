// Issue 9, item 10: a refill tops up balance plus held seconds. Seconds held by queued or
// running jobs across a refill come back when those jobs settle; counting them as spent made
// an allowance of 10 end two periods at a balance of 24.05.
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { submitJob } from '../../farm/jobs.ts';
import { applyDueRefill, auditBalance, getBudget, lockUser, resolveLimits } from '../../farm/policy/budget.ts';
import { claimJob, completeJob } from '../../farm/queue.ts';
import { BACKENDS, CHEAP_BLEND } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

describe.each(BACKENDS)('refills on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;

  // An allowance of 10 GPU-seconds; a cheap blend is priced at about 7 of them.
  useTestFarm(backend, { budget: { refillGpuSeconds: 10, refillPeriodSeconds: 3600, maxActiveJobs: 5 }, cost: { overheadSeconds: 7 } }, (t) => ({ db, farm } = t));

  const nextPeriod = (userId: string) => db.db.execute(sql`update users set last_refill_at = now() - interval '2 hours' where id = ${userId}`);
  /** What the user's next request outside any server does first (admission with complete limits): applies a due refill. */
  const refillAsARequestWould = (userId: string) =>
    db.db.transaction(async (tx) => applyDueRefill(tx, await lockUser(tx, userId), await resolveLimits(tx, farm.config)));

  /** Submits, lets a period pass while the job waits, then finishes it having used 0.05 GPU-seconds. */
  async function jobAcrossARefill(userId: string): Promise<{ afterRefill: { balance: number; held: number } }> {
    const job = await submitJob(farm, { kind: 'blend', userId, params: { ...CHEAP_BLEND, model: `refill-${userId}` } });
    expect(job.reservedGpuSeconds).toBeGreaterThan(7);
    await nextPeriod(userId);
    await refillAsARequestWould(userId);
    const budget = await getBudget(farm, userId);
    const claimed = await claimJob(farm, 'w-refill', { models: [`refill-${userId}`], maxPixels: 1 << 30, executionProvider: 'test' });
    expect(claimed?.id).toBe(job.id);
    expect(await completeJob(farm, claimed!, { artifact: { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, data: Buffer.from('x') }, gpuSeconds: 0.05 })).toBe(true);
    return { afterRefill: { balance: budget.balanceGpuSeconds, held: budget.heldGpuSeconds } };
  }

  it('does not give back held seconds on top of the allowance', async () => {
    await refillAsARequestWould('saver');
    expect((await getBudget(farm, 'saver')).balanceGpuSeconds).toBe(10);
    const first = await jobAcrossARefill('saver');
    // balance + held is the allowance after the refill, not the allowance plus what is held.
    expect(first.afterRefill.balance + first.afterRefill.held).toBeCloseTo(10, 6);
    expect((await getBudget(farm, 'saver')).balanceGpuSeconds).toBe(9.95);

    const second = await jobAcrossARefill('saver');
    // 9.95 was below the allowance: topped up by 0.05 to 10 (balance plus held).
    expect(second.afterRefill.balance + second.afterRefill.held).toBeCloseTo(10, 6);
    const end = await getBudget(farm, 'saver');
    expect(end.balanceGpuSeconds).toBe(9.95);
    expect(end.heldGpuSeconds).toBe(0);
    const audit = await auditBalance(db.db, 'saver');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
    const refills = end.ledger.filter((e) => e.kind === 'refill').map((e) => e.amountGpuSeconds);
    expect(refills).toEqual([0.05, 10]);
  });

  it('still tops up a user with nothing held to the allowance, and never takes seconds away', async () => {
    await refillAsARequestWould('rich');
    // Balances set during the period (a grant, then a debit), before the next refill fell due.
    await db.db.execute(sql`update users set balance_ms = 50000 where id = 'rich'`);
    await db.db.execute(sql`insert into budget_ledger (user_id, kind, amount_ms, balance_after_ms, note, created_at) values ('rich', 'grant', 40000, 50000, 'test', now() - interval '3 hours')`);
    await nextPeriod('rich');
    await refillAsARequestWould('rich');
    expect((await getBudget(farm, 'rich')).balanceGpuSeconds).toBe(50);
    await db.db.execute(sql`update users set balance_ms = 1000 where id = 'rich'`);
    await db.db.execute(sql`insert into budget_ledger (user_id, kind, amount_ms, balance_after_ms, note, created_at) values ('rich', 'grant', -49000, 1000, 'test', now() - interval '3 hours')`);
    await nextPeriod('rich');
    await refillAsARequestWould('rich');
    expect((await getBudget(farm, 'rich')).balanceGpuSeconds).toBe(10);
  });
});
