// Server and role values stored before the operator's ceilings existed (or before a ceiling was
// lowered) must not give more than the ceilings at admission: resolveLimits applies them within
// guildSettingRanges(config.guildCeilings), not only /settings when it stores them.
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { ActiveJobLimitError, BudgetExceededError } from '../../farm/errors.ts';
import { submitJob } from '../../farm/jobs.ts';
import { getBudget } from '../../farm/policy/budget.ts';
import { BACKENDS, CHEAP_BLEND, farmContext } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

describe.each(BACKENDS)('guild values past the ceilings on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;

  useTestFarm(backend, {
    budget: { refillGpuSeconds: 5, refillPeriodSeconds: 86_400, maxActiveJobs: 1 },
    guildCeilings: { maxRefillGpuSeconds: 20, minRefillPeriodSeconds: 7200, maxActiveJobs: 2 },
    cost: { overheadSeconds: 7 },
  }, async (t) => {
    ({ db, farm } = t);
    // Written directly, as rows saved before the ceilings existed: past every ceiling (the server
    // refill at the top of its integer column, a role's refill of 1e15 in the jsonb overrides).
    await db.db.execute(sql`insert into guilds (id, refill_gpu_seconds, refill_period_seconds, max_active_jobs, role_overrides)
      values ('old-guild', 2000000000, 60, 1000, ${JSON.stringify({ whale: { refillGpuSeconds: 1e15, maxActiveJobs: 1_000_000 } })}::jsonb)`);
  });

  it('gives a member at most the ceilings', async () => {
    const member = await getBudget(farm, 'member', { guildId: 'old-guild', roleIds: [] });
    expect(member.refillGpuSeconds).toBe(20);
    expect(member.refillPeriodSeconds).toBe(7200);
    expect(member.maxActiveJobs).toBe(2);
    // The refill a request applies is the ceiling's too.
    await submitJob(farm, { kind: 'blend', userId: 'member', guildId: 'old-guild', roleIds: [], params: { ...CHEAP_BLEND, model: 'ceil-m' } });
    const after = await getBudget(farm, 'member', { guildId: 'old-guild', roleIds: [] });
    expect(after.balanceGpuSeconds + after.heldGpuSeconds).toBeCloseTo(20, 6);
  });

  it('gives a role with a refill of 1e15 at most the ceiling', async () => {
    const whale = await getBudget(farm, 'whale-member', { guildId: 'old-guild', roleIds: ['whale'] });
    expect(whale.refillGpuSeconds).toBe(20);
    expect(whale.maxActiveJobs).toBe(2);
    await submitJob(farm, { kind: 'blend', userId: 'whale-member', guildId: 'old-guild', roleIds: ['whale'], params: { ...CHEAP_BLEND, model: 'ceil-w' } });
    const after = await getBudget(farm, 'whale-member', { guildId: 'old-guild', roleIds: ['whale'] });
    expect(after.balanceGpuSeconds + after.heldGpuSeconds).toBeCloseTo(20, 6);
  });

  it('admits jobs within the ceilings only', async () => {
    const submit = (model: string) =>
      submitJob(farm, { kind: 'blend', userId: 'admitted', guildId: 'old-guild', roleIds: ['whale'], params: { ...CHEAP_BLEND, model } });
    // A blend is priced at a little over 7 GPU-seconds: two fit in the ceiling's 20, and the
    // ceiling's job limit of 2 stops the third before the balance does.
    await submit('ceil-a');
    await submit('ceil-b');
    await expect(submit('ceil-c')).rejects.toBeInstanceOf(ActiveJobLimitError);
    const budget = await getBudget(farm, 'admitted', { guildId: 'old-guild', roleIds: ['whale'] });
    expect(budget.balanceGpuSeconds + budget.heldGpuSeconds).toBeCloseTo(20, 6);
  });

  it('refuses a job the capped refill does not cover', async () => {
    const big = farmContext(db, {
      budget: { refillGpuSeconds: 5, refillPeriodSeconds: 86_400, maxActiveJobs: 1 },
      guildCeilings: { maxRefillGpuSeconds: 6, minRefillPeriodSeconds: 7200, maxActiveJobs: 2 },
      cost: { overheadSeconds: 7 },
    });
    await expect(
      submitJob(big, { kind: 'blend', userId: 'capped', guildId: 'old-guild', roleIds: ['whale'], params: { ...CHEAP_BLEND, model: 'ceil-d' } }),
    ).rejects.toBeInstanceOf(BudgetExceededError);
  });
});
