// checkSubmission: submitJob's refusals that need no pictures (budget, active jobs, a capable
// worker), asked before a front end does costly work (the bot's download of a command's
// pictures). The same errors with the same numbers as submitJob's, a due refill counted as
// admission would apply it, and nothing written.
import { readFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { type FarmDb, queryRows } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { ActiveJobLimitError, BudgetExceededError, NoCapableWorkerError } from '../../farm/errors.ts';
import { checkSubmission, defaultPolicy, submitJob } from '../../farm/index.ts';
import { type SubmitJobInput } from '../../farm/jobs.ts';
import { applyDueRefill, getBudget, grantBudget, lockUser, resolveLimits } from '../../farm/policy/budget.ts';
import { BACKENDS, CHEAP_BLEND, countRows } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const PHOTO = new Uint8Array(readFileSync(new URL('../fixtures/photos/coffee.png', import.meta.url)));
/** A blend from a picture that costs more than the allowance of 100 GPU-seconds. */
const BIG_FROM_PICTURE = { ...CHEAP_BLEND, width: 1024, height: 1024, steps: 50, maxBranches: 40, images: [{ index: 0 }] };

const refusalOf = (promise: Promise<unknown>): Promise<unknown> => promise.then(() => undefined, (error: unknown) => error);

describe.each(BACKENDS)('checkSubmission on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;

  useTestFarm(backend, { budget: { refillGpuSeconds: 100, refillPeriodSeconds: 3600, maxActiveJobs: 2 }, cost: { overheadSeconds: 10 } }, (t) => ({ db, farm } = t));

  const userRows = async (userId: string) => (await queryRows(db.db, sql`select 1 from users where id = ${userId}`)).length;

  it('a budget that does not cover the price: the refusal submitJob makes with the pictures, with the same numbers, and nothing written', async () => {
    const input: SubmitJobInput = { kind: 'blend', userId: 'newcomer', params: BIG_FROM_PICTURE };
    const forecast = await refusalOf(checkSubmission(farm, input));
    expect(await userRows('newcomer')).toBe(0);
    expect(await countRows(db, 'budget_ledger', sql`user_id = 'newcomer'`)).toBe(0);
    const refusal = await refusalOf(submitJob(farm, { ...input, inputs: { 'image-1': PHOTO } }));
    expect(forecast).toBeInstanceOf(BudgetExceededError);
    expect(refusal).toBeInstanceOf(BudgetExceededError);
    const [f, r] = [forecast as BudgetExceededError, refusal as BudgetExceededError];
    // The newcomer's first refill counts as admission applies it: 100 left, the next one an hour on.
    expect([f.costGpuSeconds, f.balanceGpuSeconds, f.refillGpuSeconds]).toEqual([r.costGpuSeconds, r.balanceGpuSeconds, r.refillGpuSeconds]);
    expect(f.balanceGpuSeconds).toBe(100);
    expect(Math.abs(f.nextRefillAt.getTime() - r.nextRefillAt.getTime())).toBeLessThan(5000);
  });

  it('a job that fits passes without its pictures; a due refill is counted, not applied', async () => {
    const userId = 'drained';
    await db.db.transaction(async (tx) => applyDueRefill(tx, await lockUser(tx, userId), await resolveLimits(tx, farm.config)));
    await grantBudget(farm, userId, -100, 'spent');
    const cheapFromPicture = { kind: 'blend' as const, userId, params: { ...CHEAP_BLEND, images: [{ index: 0 }] } };
    expect(await refusalOf(checkSubmission(farm, cheapFromPicture))).toBeInstanceOf(BudgetExceededError);
    // A period later (the grant made before the refill fell due): admission would top up to 100.
    await db.db.execute(sql`update users set last_refill_at = now() - interval '2 hours' where id = ${userId}`);
    await db.db.execute(sql`update budget_ledger set created_at = now() - interval '3 hours' where user_id = ${userId}`);
    const ledgerBefore = await countRows(db, 'budget_ledger', sql`user_id = ${userId}`);
    await checkSubmission(farm, cheapFromPicture);
    const budget = await getBudget(farm, userId);
    expect([budget.balanceGpuSeconds, budget.refillDue]).toEqual([0, true]);
    expect(await countRows(db, 'budget_ledger', sql`user_id = ${userId}`)).toBe(ledgerBefore);
    const job = await submitJob(farm, { ...cheapFromPicture, inputs: { 'image-1': PHOTO } });
    expect(job.status).toBe('queued');
  });

  it('too many active jobs, and no worker able to run it: the same refusals as submitJob', async () => {
    const userId = 'busy';
    for (let i = 0; i < 2; i++) await submitJob(farm, { kind: 'blend', userId, params: CHEAP_BLEND });
    const input: SubmitJobInput = { kind: 'blend', userId, params: { ...CHEAP_BLEND, images: [{ index: 0 }] } };
    const busy = await refusalOf(checkSubmission(farm, input));
    expect(busy).toBeInstanceOf(ActiveJobLimitError);
    expect((busy as Error).message).toBe(((await refusalOf(submitJob(farm, { ...input, inputs: { 'image-1': PHOTO } }))) as Error).message);
    // A policy of a farm's own without `check`: nothing is refused before its admit.
    await checkSubmission({ ...farm, policy: { ...defaultPolicy(farm.config), check: undefined } }, input);

    // No worker has ever registered on this farm: with requireCapableWorker, none is online.
    const anyone: SubmitJobInput = { ...input, userId: 'someone', requireCapableWorker: true };
    const noWorker = await refusalOf(checkSubmission(farm, anyone));
    expect(noWorker).toBeInstanceOf(NoCapableWorkerError);
    expect((noWorker as Error).message).toBe(((await refusalOf(submitJob(farm, { ...anyone, inputs: { 'image-1': PHOTO } }))) as Error).message);
  });
});
