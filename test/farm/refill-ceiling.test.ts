// A hostile-user review: the farm's ceiling (here 100 GPU-seconds, periods of at least an hour)
// capped one refill's amount, not what a member got per period. Each allowance had its own refill
// clock and a refill counted only for allowances up to its own, so any larger allowance was a
// fresh, full refill due at once: an admin raising the server's refill 90, 91, 92… while the member
// spent each, self-assignable roles with overrides 91, 92…, or servers giving different amounts,
// gave 90 + 91 + 92 + … within seconds (543 after six rounds, 5.4 times the ceiling).
//
// The rule now (budget.ts, largestRefillWithinMs): a refill to A with period P tops up at most A
// less the largest allowance the member was refilled to within the P before it. So within a period
// all refills together give at most the largest allowance among them: each raise gives exactly the
// difference to the allowance before (1 for 90 → 91), a smaller or equal one nothing, and only a
// new period gives the whole allowance again.
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { BudgetExceededError } from '../../farm/errors.ts';
import { updateGuildSettings } from '../../farm/guilds.ts';
import { submitJob } from '../../farm/jobs.ts';
import { auditBalance, getBudget } from '../../farm/policy/budget.ts';
import { claimJob, completeJob } from '../../farm/queue.ts';
import { BACKENDS, CHEAP_BLEND, HOURLY_REFILL_CEILING } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const HOUR = 3600;

describe.each(BACKENDS)('refills within the farm’s ceiling per period, on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;

  // Servers may give at most 100 GPU-seconds per period of at least an hour; a job costs exactly 1.
  useTestFarm(
    backend,
    HOURLY_REFILL_CEILING,
    (t) => ({ db, farm } = t),
  );

  type Where = { guildId: string; roleIds: string[] };

  /** The member renders in `where` until refused for want of seconds, each job using all it reserved; returns the GPU-seconds used. */
  async function spendAll(userId: string, where: Where): Promise<number> {
    const model = `m-${userId}`;
    let used = 0;
    for (let i = 0; i < 1000; i++) {
      const job = await submitJob(farm, { kind: 'blend', userId, ...where, params: { ...CHEAP_BLEND, model } }).catch((e: unknown) => {
        if (e instanceof BudgetExceededError) return undefined;
        throw e;
      });
      if (!job) return used;
      expect(job.reservedGpuSeconds).toBe(1);
      const claimed = await claimJob(farm, `w-${userId}`, { models: [model], maxPixels: 1 << 30, executionProvider: 'test' });
      expect(claimed?.id).toBe(job.id);
      expect(await completeJob(farm, claimed!, { artifact: { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, data: Buffer.from('x') }, gpuSeconds: 1 })).toBe(true);
      used += 1;
    }
    throw new Error('spent more than 1000 GPU-seconds');
  }

  /** The refills booked for the user, oldest first (GPU-seconds). */
  async function refills(userId: string): Promise<number[]> {
    const budget = await getBudget(farm, userId, {}, 1000);
    return budget.ledger.filter((e) => e.kind === 'refill').map((e) => e.amountGpuSeconds).reverse();
  }

  /** A period passes: the clocks and everything booked move `seconds` back. */
  async function timePasses(userId: string, seconds: number) {
    await db.db.execute(sql`update users set last_refill_at = last_refill_at - make_interval(secs => ${seconds}) where id = ${userId}`);
    await db.db.execute(sql`update budget_ledger set created_at = created_at - make_interval(secs => ${seconds}) where user_id = ${userId}`);
  }

  async function expectAudited(userId: string) {
    const audit = await auditBalance(db.db, userId);
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
  }

  it('the reviewer’s case: an admin raising the refill 90, 91, … 100 (and past the ceiling) within a period gives the member 100 in all, one more each time, not 90 + 91 + … (1045)', async () => {
    const here = { guildId: 'g-esc', roleIds: [] };
    await updateGuildSettings(farm, 'g-esc', { refillGpuSeconds: 90 });
    expect(await spendAll('esc', here)).toBe(90);
    let used = 90;
    for (let allowance = 91; allowance <= 100; allowance++) {
      await updateGuildSettings(farm, 'g-esc', { refillGpuSeconds: allowance });
      // The raise tops up only the difference to what the period gave already: allowance − (allowance − 1).
      expect(await spendAll('esc', here)).toBe(1);
      used += 1;
    }
    // Past the ceiling: stored (and applied) as 100, which the period gave already.
    expect((await updateGuildSettings(farm, 'g-esc', { refillGpuSeconds: 150 })).clamped).toHaveLength(1);
    expect(await spendAll('esc', here)).toBe(0);
    expect(used).toBe(100);
    expect(await refills('esc')).toEqual([90, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    const seen = await getBudget(farm, 'esc', here);
    expect(seen).toMatchObject({ balanceGpuSeconds: 0, refillDue: false, refillGpuSeconds: 100 });
    expect(seen.ledger.find((e) => e.kind === 'refill')?.note).toMatch(/^top-up to 100 GPU-seconds \(0 held by active jobs; at most 1 more: refilled to 99 within the period\)$/);
    await expectAudited('esc');

    // The next period gives the whole 100 again, once.
    await timePasses('esc', HOUR);
    expect((await getBudget(farm, 'esc', here)).refillDue).toBe(true);
    expect(await spendAll('esc', here)).toBe(100);
    expect(await spendAll('esc', here)).toBe(0);
    expect(await refills('esc')).toEqual([90, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 100]);
    await expectAudited('esc');
  });

  it('switching between self-assignable roles with overrides 91, 92, … 96 tops up one more each time; back to a smaller role or none, nothing', async () => {
    await updateGuildSettings(farm, 'g-roles', { refillGpuSeconds: 50 });
    for (let allowance = 91; allowance <= 96; allowance++) {
      await updateGuildSettings(farm, 'g-roles', { role: { roleId: `r${allowance}`, override: { refillGpuSeconds: allowance } } });
    }
    let used = await spendAll('hopper', { guildId: 'g-roles', roleIds: ['r91'] });
    expect(used).toBe(91);
    for (let allowance = 92; allowance <= 96; allowance++) {
      const gave = await spendAll('hopper', { guildId: 'g-roles', roleIds: [`r${allowance}`] });
      expect(gave).toBe(1);
      used += gave;
    }
    // A smaller role, no role, all of them at once: the period gave 96 already.
    for (const roleIds of [['r93'], [], ['r91', 'r92', 'r93', 'r94', 'r95', 'r96']]) {
      used += await spendAll('hopper', { guildId: 'g-roles', roleIds });
    }
    // 96 in all: the largest allowance, once (the old rule gave 91 + 92 + … + 96 = 561).
    expect(used).toBe(96);
    expect(await refills('hopper')).toEqual([91, 1, 1, 1, 1, 1]);
    await expectAudited('hopper');
  });

  it('a member of servers giving 60, 100 and 80 an hour gets 100 an hour in all, not 60 + 100', async () => {
    await updateGuildSettings(farm, 'g-60', { refillGpuSeconds: 60 });
    await updateGuildSettings(farm, 'g-100', { refillGpuSeconds: 100 });
    await updateGuildSettings(farm, 'g-80', { refillGpuSeconds: 80 });
    const where = (guildId: string) => ({ guildId, roleIds: [] });
    expect(await spendAll('joiner', where('g-60'))).toBe(60);
    // The larger server tops up the difference: 100 − 60.
    expect(await spendAll('joiner', where('g-100'))).toBe(40);
    expect(await spendAll('joiner', where('g-80'))).toBe(0);
    expect(await spendAll('joiner', where('g-60'))).toBe(0);
    expect(await refills('joiner')).toEqual([60, 40]);

    // A period after the 100: each server's allowance is due again, and the first request decides
    // it. 80 first, then 100 gives the difference again.
    await timePasses('joiner', HOUR);
    expect(await spendAll('joiner', where('g-80'))).toBe(80);
    expect(await spendAll('joiner', where('g-60'))).toBe(0);
    expect(await spendAll('joiner', where('g-100'))).toBe(20);
    expect(await refills('joiner')).toEqual([60, 40, 80, 20]);
    await expectAudited('joiner');
  });

  it('a smaller refill gives nothing new; a larger one set mid-period gives only the difference; the refill at the end of the period tops up to the whole allowance', async () => {
    const here = { guildId: 'g-mid', roleIds: [] };
    await updateGuildSettings(farm, 'g-mid', { refillGpuSeconds: 90 });
    // The member uses 50 of the 90.
    for (let i = 0; i < 50; i++) {
      const job = await submitJob(farm, { kind: 'blend', userId: 'mid', ...here, params: { ...CHEAP_BLEND, model: 'm-mid' } });
      const claimed = await claimJob(farm, 'w-mid', { models: ['m-mid'], maxPixels: 1 << 30, executionProvider: 'test' });
      expect(claimed?.id).toBe(job.id);
      await completeJob(farm, claimed!, { artifact: { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, data: Buffer.from('x') }, gpuSeconds: 1 });
    }
    expect((await getBudget(farm, 'mid', here)).balanceGpuSeconds).toBe(40);

    // Lowered to 80: no refill due, nothing added.
    await updateGuildSettings(farm, 'g-mid', { refillGpuSeconds: 80 });
    expect((await getBudget(farm, 'mid', here)).refillDue).toBe(false);
    await submitJob(farm, { kind: 'blend', userId: 'mid', ...here, params: { ...CHEAP_BLEND, model: 'm-mid' } });
    expect(await getBudget(farm, 'mid', here)).toMatchObject({ balanceGpuSeconds: 39, heldGpuSeconds: 1 });
    expect(await refills('mid')).toEqual([90]);

    // Raised to 100 mid-period: due at once, but it adds only 100 − 90 = 10 (the old rule topped
    // 39 + 1 held up to 100: 60), and starts a new period for allowances up to 100.
    await updateGuildSettings(farm, 'g-mid', { refillGpuSeconds: 100 });
    expect((await getBudget(farm, 'mid', here)).refillDue).toBe(true);
    await submitJob(farm, { kind: 'blend', userId: 'mid', ...here, params: { ...CHEAP_BLEND, model: 'm-mid' } });
    const raised = await getBudget(farm, 'mid', here);
    expect(raised).toMatchObject({ balanceGpuSeconds: 48, heldGpuSeconds: 2, refillDue: false });
    expect(await refills('mid')).toEqual([90, 10]);
    expect(raised.nextRefillAt.getTime()).toBeGreaterThan(Date.now() + (HOUR - 60) * 1000);

    // The period ends: balance plus held topped up to the whole 100 (the held 2 come back when
    // those jobs settle).
    await timePasses('mid', HOUR);
    await submitJob(farm, { kind: 'blend', userId: 'mid', ...here, params: { ...CHEAP_BLEND, model: 'm-mid' } });
    const next = await getBudget(farm, 'mid', here);
    expect(next.balanceGpuSeconds + next.heldGpuSeconds).toBe(100);
    expect(await refills('mid')).toEqual([90, 10, 50]);
    await expectAudited('mid');
  });

  it('concurrent requests in two servers (60 and 100) top up to 100 in all, whichever comes first', async () => {
    await updateGuildSettings(farm, 'g-c60', { refillGpuSeconds: 60 });
    await updateGuildSettings(farm, 'g-c100', { refillGpuSeconds: 100 });
    const requests = Array.from({ length: 8 }, (_, i) =>
      submitJob(farm, { kind: 'blend', userId: 'racer', guildId: i % 2 ? 'g-c60' : 'g-c100', roleIds: [], params: { ...CHEAP_BLEND, model: 'm-racer' } }),
    );
    const results = await Promise.allSettled(requests);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    const budget = await getBudget(farm, 'racer');
    expect(budget.balanceGpuSeconds + budget.heldGpuSeconds).toBe(100);
    expect((await refills('racer')).reduce((a, b) => a + b, 0)).toBe(100);
    await expectAudited('racer');
  });
});
