// getBudget says what a due refill adds (refillAddsGpuSeconds), by the rule admission applies
// (dueRefill): within a period a refill to a larger allowance adds only the difference
// (refill-ceiling.test.ts), so "a refill to 91 is due" after a refill to 90 and some spending adds
// 1, not the top-up to 91 that /budget and `farm budget` used to promise. refilledWithinPeriod
// names the allowance that caps it, only when the cap decides.
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { updateGuildSettings } from '../../farm/guilds.ts';
import { submitJob } from '../../farm/jobs.ts';
import { getBudget } from '../../farm/policy/budget.ts';
import { claimJob, completeJob } from '../../farm/queue.ts';
import { BACKENDS, CHEAP_BLEND, HOURLY_REFILL_CEILING } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const HOUR = 3600;

describe.each(BACKENDS)('what a due refill adds, on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;

  // A job costs exactly 1 GPU-second.
  useTestFarm(
    backend,
    HOURLY_REFILL_CEILING,
    (t) => ({ db, farm } = t),
  );

  /** The member renders `n` jobs in `where`, each using the 1 GPU-second it reserved. */
  async function spend(userId: string, where: { guildId: string; roleIds: string[] }, n: number) {
    const model = `m-${userId}`;
    for (let i = 0; i < n; i++) {
      const job = await submitJob(farm, { kind: 'blend', userId, ...where, params: { ...CHEAP_BLEND, model } });
      const claimed = await claimJob(farm, `w-${userId}`, { models: [model], maxPixels: 1 << 30, executionProvider: 'test' });
      expect(claimed?.id).toBe(job.id);
      await completeJob(farm, claimed!, { artifact: { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, data: Buffer.from('x') }, gpuSeconds: 1 });
    }
  }

  it('refilled to 90, spent 30, the server’s refill raised to 91: the due refill adds 1 (refilled to 90 within the period), and the next request adds exactly that', async () => {
    const here = { guildId: 'g-raise', roleIds: [] };
    await updateGuildSettings(farm, 'g-raise', { refillGpuSeconds: 90 });
    await spend('raised', here, 30);
    expect(await getBudget(farm, 'raised', here)).toMatchObject({ balanceGpuSeconds: 60, refillDue: false, refillAddsGpuSeconds: null, refilledWithinPeriodGpuSeconds: null });

    await updateGuildSettings(farm, 'g-raise', { refillGpuSeconds: 91 });
    const due = await getBudget(farm, 'raised', here);
    expect(due).toMatchObject({ balanceGpuSeconds: 60, refillDue: true, refillGpuSeconds: 91, refillAddsGpuSeconds: 1, refilledWithinPeriodGpuSeconds: 90 });
    // The farm's own 10 outside servers: the period gave 90 already, nothing due.
    expect(await getBudget(farm, 'raised')).toMatchObject({ refillDue: false, refillAddsGpuSeconds: null });

    await spend('raised', here, 1);
    const after = await getBudget(farm, 'raised', here, 1000);
    expect(after).toMatchObject({ balanceGpuSeconds: 60, refillDue: false, refillAddsGpuSeconds: null });
    expect(after.ledger.filter((e) => e.kind === 'refill').map((e) => e.amountGpuSeconds)).toEqual([1, 90]);
  });

  it('an ordinary due refill (a new period) adds the top-up to the allowance and names no cap', async () => {
    const here = { guildId: 'g-plain', roleIds: [] };
    await updateGuildSettings(farm, 'g-plain', { refillGpuSeconds: 50 });
    await spend('plain', here, 20);
    await db.db.execute(sql`update users set last_refill_at = last_refill_at - make_interval(secs => ${HOUR}) where id = 'plain'`);
    await db.db.execute(sql`update budget_ledger set created_at = created_at - make_interval(secs => ${HOUR}) where user_id = 'plain'`);
    expect(await getBudget(farm, 'plain', here)).toMatchObject({ balanceGpuSeconds: 30, refillDue: true, refillAddsGpuSeconds: 20, refilledWithinPeriodGpuSeconds: null });
    // Never seen: the first refill is the whole allowance.
    expect(await getBudget(farm, 'nobody', here)).toMatchObject({ balanceGpuSeconds: 0, refillDue: true, refillAddsGpuSeconds: 50, refilledWithinPeriodGpuSeconds: null });
  });
});
