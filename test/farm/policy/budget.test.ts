// GPU-second budgets on both back ends: concurrent submissions cannot overspend, the balance
// always equals the ledger, refusals carry the numbers, refills follow guild and role settings.
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../../db/client.ts';
import { auditBalance, getBudget, grantBudget } from '../../../farm/policy/budget.ts';
import type { FarmContext } from '../../../farm/config.ts';
import { estimateGpuSeconds } from '../../../farm/policy/cost.ts';
import { updateGuildSettings } from '../../../farm/guilds.ts';
import { ActiveJobLimitError, BudgetExceededError, FarmError } from '../../../farm/errors.ts';
import { parseJobParams } from '../../../farm/job-params.ts';
import { submitJob } from '../../../farm/jobs.ts';
import { claimJob, completeJob } from '../../../farm/queue.ts';
import type { ClaimedJob } from '../../../farm/types.ts';
import { BACKENDS, CHEAP_BLEND, farmContext, type TestDatabase } from '../../helpers/db.ts';
import { useTestFarm } from '../../helpers/farm.ts';

describe.each(BACKENDS)('budgets on %s', (backend) => {
  let testDb: TestDatabase;
  let db: FarmDb;
  let farm: FarmContext;
  // The cost of one CHEAP_BLEND under the test cost model, in GPU-seconds.
  let cost: number;

  useTestFarm(backend, { budget: { refillGpuSeconds: 100, refillPeriodSeconds: 3600, maxActiveJobs: 50 }, cost: { overheadSeconds: 10 }, guildCeilings: { maxRefillGpuSeconds: 10_000, minRefillPeriodSeconds: 60, maxActiveJobs: 100 } }, async (t) => {
    ({ testDb, db, farm } = t);
    cost = estimateGpuSeconds(parseJobParams('blend', CHEAP_BLEND), farm.config.cost);
  });

  it('lets concurrent submissions spend each GPU-second only once', async () => {
    const user = 'spender';
    const affordable = Math.floor(100 / cost);
    expect(affordable).toBeGreaterThan(2);
    const attempts = affordable * 3;
    // On Postgres the submissions come through separate pools, like separate bot processes.
    const handles: FarmDb[] = backend === 'postgres' ? await Promise.all([1, 2, 3, 4].map(() => testDb.open({ migrate: false, poolSize: 3 }))) : [db];
    const results = await Promise.allSettled(
      Array.from({ length: attempts }, (_, i) => submitJob({ db: handles[i % handles.length], config: farm.config }, { kind: 'blend', userId: user, params: CHEAP_BLEND })),
    );
    const accepted = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(accepted).toHaveLength(affordable);
    expect(refused.every((r) => r.reason instanceof BudgetExceededError)).toBe(true);

    const audit = await auditBalance(db.db, user);
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
    expect(audit.balanceMs).toBeGreaterThanOrEqual(0);
    expect(audit.balanceMs).toBe(100_000 - affordable * Math.round(cost * 1000));
    const budget = await getBudget(farm, user);
    expect(budget.heldGpuSeconds).toBeCloseTo(affordable * cost, 3);
    expect(budget.activeJobs).toBe(affordable);
  });

  it('refuses a job that does not fit with its cost, the balance and the next refill', async () => {
    const user = 'poor';
    await submitJob(farm, { kind: 'blend', userId: user, params: CHEAP_BLEND });
    const big = { ...CHEAP_BLEND, width: 1024, height: 1024, steps: 50, maxBranches: 40 };
    const error = await submitJob(farm, { kind: 'blend', userId: user, params: big }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BudgetExceededError);
    const refusal = error as BudgetExceededError;
    expect(refusal.costGpuSeconds).toBe(estimateGpuSeconds(parseJobParams('blend', big), farm.config.cost));
    expect(refusal.balanceGpuSeconds).toBeCloseTo(100 - cost, 3);
    expect(refusal.refillGpuSeconds).toBe(100);
    const budget = await getBudget(farm, user);
    expect(refusal.nextRefillAt.getTime()).toBe(budget.nextRefillAt.getTime());
    expect(refusal.message).toContain(`only ${Math.round((100 - cost) * 10) / 10} are left`);
    // Nothing was written for the refused job.
    expect(budget.ledger.map((e) => e.kind)).toEqual(['reserve', 'refill']);
  });

  it('caps queued plus running jobs per user', async () => {
    const limited = farmContext(db, { budget: { refillGpuSeconds: 1000, maxActiveJobs: 2 } });
    const user = 'busy';
    const first = await submitJob(limited, { kind: 'blend', userId: user, params: { ...CHEAP_BLEND, model: 'cap' } });
    await submitJob(limited, { kind: 'blend', userId: user, params: { ...CHEAP_BLEND, model: 'cap' } });
    const claimed = (await claimJob(limited, 'w', { models: ['cap'], maxPixels: 1e7, executionProvider: 'test' })) as ClaimedJob;
    expect(claimed.id).toBe(first.id);
    const error = await submitJob(limited, { kind: 'blend', userId: user, params: CHEAP_BLEND }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ActiveJobLimitError);
    expect((error as ActiveJobLimitError).activeJobs).toBe(2);
    // Finishing one frees a slot.
    await completeJob(limited, claimed, { artifact: { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, data: Buffer.from('x') }, gpuSeconds: 0.1 });
    await expect(submitJob(limited, { kind: 'blend', userId: user, params: CHEAP_BLEND })).resolves.toMatchObject({ status: 'queued' });
  });

  it('tops the balance up once per period, with guild settings and the most generous role override', async () => {
    await updateGuildSettings(farm, 'guild-1', { refillGpuSeconds: 200, maxActiveJobs: 5 });
    await updateGuildSettings(farm, 'guild-1', { refillPeriodSeconds: 600, role: { roleId: 'patron', override: { refillGpuSeconds: 1000, maxActiveJobs: 20 } } });
    const updated = await updateGuildSettings(farm, 'guild-1', { role: { roleId: 'helper', override: { refillGpuSeconds: 300 } } });
    expect(updated).toMatchObject({ refillGpuSeconds: 200, refillPeriodSeconds: 600, maxActiveJobs: 5, roleOverrides: { patron: { refillGpuSeconds: 1000 }, helper: { refillGpuSeconds: 300 } } });
    // A read shows the limits and applies nothing; the first request applies the refill with them.
    const member = await getBudget(farm, 'member', { guildId: 'guild-1', roleIds: ['nobody-role'] });
    expect(member).toMatchObject({ balanceGpuSeconds: 0, refillDue: true, limitsComplete: true, refillGpuSeconds: 200, refillPeriodSeconds: 600, maxActiveJobs: 5 });
    const patron = await getBudget(farm, 'patron-user', { guildId: 'guild-1', roleIds: ['helper', 'patron'] });
    expect(patron).toMatchObject({ balanceGpuSeconds: 0, refillDue: true, refillGpuSeconds: 1000, maxActiveJobs: 20 });
    await submitJob(farm, { kind: 'blend', userId: 'patron-user', guildId: 'guild-1', roleIds: ['helper', 'patron'], params: CHEAP_BLEND });
    const patronAfter = await getBudget(farm, 'patron-user', { guildId: 'guild-1', roleIds: ['helper', 'patron'] });
    expect(patronAfter).toMatchObject({ refillDue: false, heldGpuSeconds: cost });
    expect(patronAfter.balanceGpuSeconds).toBeCloseTo(1000 - cost, 3);

    // Spend some, then let the period pass: the balance goes back up to the allowance, no further.
    const inGuild = { guildId: 'guild-1', roleIds: ['nobody-role'] };
    await submitJob(farm, { kind: 'blend', userId: 'member', ...inGuild, params: CHEAP_BLEND });
    expect((await getBudget(farm, 'member', inGuild)).balanceGpuSeconds).toBeCloseTo(200 - cost, 3);
    // 50 more seconds spent (an operator's debit); the job is still queued and holds its reservation,
    // so the top-up counts it: balance + held comes back to the allowance, not above it.
    await grantBudget(farm, 'member', -50, 'spent elsewhere');
    await db.db.execute(sql`update users set last_refill_at = now() - interval '11 minutes' where id = 'member'`);
    await db.db.execute(sql`update budget_ledger set created_at = created_at - interval '11 minutes' where user_id = 'member'`);
    const due = await getBudget(farm, 'member', inGuild);
    expect(due).toMatchObject({ refillDue: true });
    expect(due.balanceGpuSeconds).toBeCloseTo(150 - cost, 3);
    // The next request applies it, then reserves.
    await submitJob(farm, { kind: 'blend', userId: 'member', ...inGuild, params: CHEAP_BLEND });
    const refilled = await getBudget(farm, 'member', inGuild);
    expect(refilled.balanceGpuSeconds).toBeCloseTo(200 - 2 * cost, 3);
    expect(refilled.ledger.slice(0, 2)).toMatchObject([{ kind: 'reserve' }, { kind: 'refill', amountGpuSeconds: 50 }]);
    expect(refilled.refillDue).toBe(false);
    expect(refilled.nextRefillAt.getTime()).toBeGreaterThan(Date.now() + 500_000);
    // Within the period nothing more is added.
    await submitJob(farm, { kind: 'blend', userId: 'member', ...inGuild, params: CHEAP_BLEND });
    expect((await getBudget(farm, 'member', inGuild)).ledger.filter((e) => e.kind === 'refill')).toHaveLength(2);
    const audit = await auditBalance(db.db, 'member');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
  });

  it('grants seconds and refuses to take more than the balance; a grant never applies the refill, nor eats it', async () => {
    // A grant adds to the stored balance only (a new user has 0 and a refill due).
    expect(await grantBudget(farm, 'granted', 50, 'contest prize')).toBe(50);
    expect(await grantBudget(farm, 'granted', -20)).toBe(30);
    const refused = await grantBudget(farm, 'granted', -1000).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(FarmError);
    expect((refused as FarmError).message).toBe('Cannot take 1000 GPU-seconds from granted: the balance is only 30; take at most 30.');
    const budget = await getBudget(farm, 'granted');
    expect(budget).toMatchObject({ balanceGpuSeconds: 30, refillDue: true });
    expect(budget.ledger.map((e) => [e.kind, e.amountGpuSeconds])).toEqual([
      ['grant', -20],
      ['grant', 50],
    ]);
    // The first request applies the refill as if it had come before the grants: 100, then +50 −20.
    await submitJob(farm, { kind: 'blend', userId: 'granted', params: CHEAP_BLEND });
    const after = await getBudget(farm, 'granted');
    expect(after.balanceGpuSeconds + after.heldGpuSeconds).toBeCloseTo(130, 3);
    expect(after.ledger.map((e) => [e.kind, e.amountGpuSeconds]).slice(1)).toEqual([
      ['refill', 100],
      ['grant', -20],
      ['grant', 50],
    ]);
  });

  it('charges the measured GPU time, never more than was reserved', async () => {
    const user = 'measured';
    const caps = { models: ['measure'], maxPixels: 1e7, executionProvider: 'test' };
    const artifact = { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, data: Buffer.from('x') };
    await submitJob(farm, { kind: 'blend', userId: user, params: { ...CHEAP_BLEND, model: 'measure' } });
    await submitJob(farm, { kind: 'blend', userId: user, params: { ...CHEAP_BLEND, model: 'measure' } });
    const cheap = (await claimJob(farm, 'w', caps)) as ClaimedJob;
    await completeJob(farm, cheap, { artifact, gpuSeconds: 1.25 });
    const overrun = (await claimJob(farm, 'w', caps)) as ClaimedJob;
    await completeJob(farm, overrun, { artifact, gpuSeconds: cost * 10 });
    const audit = await auditBalance(db.db, user);
    expect(audit.balanceMs).toBe(100_000 - 1250 - Math.round(cost * 1000));
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
  });
});
