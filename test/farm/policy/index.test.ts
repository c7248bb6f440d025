// The policy interface (farm/policy/): the charge rule, pricing, one admission for submissions
// and retries, and a FarmContext carrying a policy of its own (claim order, admission, settlement).
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../../db/client.ts';
import type { FarmContext } from '../../../farm/config.ts';
import { ActiveJobLimitError, BudgetExceededError } from '../../../farm/errors.ts';
import { parseJobParams } from '../../../farm/job-params.ts';
import { cancelJob, retryJob, submitJob } from '../../../farm/jobs.ts';
import { chargeFor, DEFAULT_POLICY_OPTIONS, defaultPolicy, estimateGpuSeconds, type FarmPolicy, policyOf } from '../../../farm/policy/index.ts';
import { auditBalance, getBudget, grantBudget } from '../../../farm/policy/budget.ts';
import { claimJob, completeJob } from '../../../farm/queue.ts';
import { queuePosition } from '../../../farm/status.ts';
import type { WorkerCapabilities } from '../../../farm/types.ts';
import { BACKENDS, CHEAP_BLEND, farmContext, GENEROUS_BUDGET } from '../../helpers/db.ts';
import { useTestFarm } from '../../helpers/farm.ts';

const only = (model: string): WorkerCapabilities => ({ models: [model], maxPixels: 10_000_000, executionProvider: 'test' });
const artifact = { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, data: Buffer.from('x') };

describe('policy rules', () => {
  it('charges the measured time of a finished job, the run time of a cancelled one, nothing for a failure, never more than reserved', () => {
    expect(chargeFor(5000, { kind: 'done', spentMs: 1234 })).toBe(1234);
    expect(chargeFor(5000, { kind: 'done', spentMs: 9000 })).toBe(5000);
    expect(chargeFor(5000, { kind: 'cancelled', ranMs: 1000.4 })).toBe(1000);
    expect(chargeFor(5000, { kind: 'cancelled', ranMs: null })).toBe(0);
    expect(chargeFor(5000, { kind: 'failed' })).toBe(0);
  });

  it('prices with the cost model, an extension as the whole movie it completes', () => {
    const policy = defaultPolicy(DEFAULT_POLICY_OPTIONS);
    const params = parseJobParams('extend', { prompts: ['next'] });
    expect(policy.price(params)).toBe(estimateGpuSeconds(params, DEFAULT_POLICY_OPTIONS.cost));
    expect(policy.price(params, 4)).toBe(estimateGpuSeconds({ ...params, prompts: ['a', 'b', 'c', 'next'] }, DEFAULT_POLICY_OPTIONS.cost));
    expect(policy.price(params, 4)).toBeGreaterThan(policy.price(params));
  });

  it('prices a movie for every transition it renders and decodes: 3 prompts cost twice what 2 do, past the overhead', () => {
    const cost = DEFAULT_POLICY_OPTIONS.cost;
    const movie = (prompts: string[]) => parseJobParams('movie', { prompts, width: 512, height: 512, durationSeconds: 2, fps: 10, steps: 10, maxBranches: 6 });
    const mp = (512 * 512) / 1e6;
    // Per transition: (maxBranches + 2) × steps UNet steps and durationSeconds × fps decoded frames.
    const perTransition = 8 * 10 * mp * cost.secondsPerMegapixelStep + 20 * mp * cost.secondsPerMegapixelFrame;
    expect(estimateGpuSeconds(movie(['a', 'b']), cost)).toBeCloseTo(cost.overheadSeconds + perTransition, 3);
    expect(estimateGpuSeconds(movie(['a', 'b', 'c']), cost)).toBeCloseTo(cost.overheadSeconds + 2 * perTransition, 3);
    expect(estimateGpuSeconds(movie(['a', 'b', 'c', 'd']), cost)).toBeCloseTo(cost.overheadSeconds + 3 * perTransition, 3);
  });

  it('is the default one unless the farm carries its own', () => {
    const config = { ...DEFAULT_POLICY_OPTIONS };
    const own: FarmPolicy = { ...defaultPolicy(config) };
    expect(policyOf({ config, policy: own })).toBe(own);
    expect(Object.keys(policyOf({ config })).sort()).toEqual(['admit', 'check', 'claimOrder', 'onClaim', 'onRelease', 'price', 'settle']);
  });
});

describe.each(BACKENDS)('policy on %s', (backend) => {
  let db: FarmDb;

  useTestFarm(backend, {}, (t) => ({ db } = t));

  it('admits retries by the same rule as submissions: the active-job cap and the balance', async () => {
    const farm = farmContext(db, { budget: { refillGpuSeconds: 100, maxActiveJobs: 1 }, cost: { overheadSeconds: 30 } });
    const first = await submitJob(farm, { kind: 'blend', userId: 'retrier', params: { ...CHEAP_BLEND, model: 'admit' } });
    await cancelJob(farm, first.id);
    const second = await submitJob(farm, { kind: 'blend', userId: 'retrier', params: { ...CHEAP_BLEND, model: 'admit' } });
    // One active job already: the retry is refused like a third submission would be.
    await expect(retryJob(farm, first.id)).rejects.toBeInstanceOf(ActiveJobLimitError);
    await expect(submitJob(farm, { kind: 'blend', userId: 'retrier', params: CHEAP_BLEND })).rejects.toBeInstanceOf(ActiveJobLimitError);
    await cancelJob(farm, second.id);

    // Take the balance down to one GPU-second: the retry is refused for the money, with the numbers.
    const { balanceGpuSeconds } = await getBudget(farm, 'retrier');
    await grantBudget(farm, 'retrier', 1 - balanceGpuSeconds, 'test');
    const refusal = await retryJob(farm, first.id).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(BudgetExceededError);
    expect((refusal as BudgetExceededError).costGpuSeconds).toBe(first.reservedGpuSeconds);
    expect((refusal as BudgetExceededError).balanceGpuSeconds).toBe(1);
    const audit = await auditBalance(db.db, 'retrier');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
  });

  it('charges a cancelled running job only until its lease ran out when its worker died (time nobody rendered is free)', async () => {
    // Reservations of about 100 GPU-seconds, so a few seconds of run time are charged as they are.
    const farm = farmContext(db, { budget: GENEROUS_BUDGET, cost: { overheadSeconds: 100 } });
    const stale = await submitJob(farm, { kind: 'blend', userId: 'stale', params: { ...CHEAP_BLEND, model: 'stale' } });
    expect((await claimJob(farm, 'w-dead', only('stale')))?.id).toBe(stale.id);
    // Its worker died 3 s into the attempt, an hour ago; no reaper has run since.
    await db.db.execute(sql`update jobs set started_at = now() - interval '1 hour', lease_expires_at = now() - interval '1 hour' + interval '3 seconds' where id = ${stale.id}`);
    const before = await auditBalance(db.db, 'stale');
    const cancelled = await cancelJob(farm, stale.id);
    expect(cancelled.job.chargedGpuSeconds).toBeCloseTo(3, 1);
    expect(cancelled.refundedGpuSeconds).toBeCloseTo(stale.reservedGpuSeconds - 3, 1);
    const after = await auditBalance(db.db, 'stale');
    expect(after.balanceMs - before.balanceMs).toBe(Math.round(cancelled.refundedGpuSeconds * 1000));
    expect(after.balanceMs).toBe(after.ledgerSumMs);

    // A live worker's lease lies ahead: the time until the cancel is charged.
    const live = await submitJob(farm, { kind: 'blend', userId: 'stale', params: { ...CHEAP_BLEND, model: 'stale' } });
    expect((await claimJob(farm, 'w-live', only('stale')))?.id).toBe(live.id);
    await db.db.execute(sql`update jobs set started_at = now() - interval '5 seconds' where id = ${live.id}`);
    const charged = (await cancelJob(farm, live.id)).job.chargedGpuSeconds!;
    expect(charged).toBeGreaterThanOrEqual(5);
    expect(charged).toBeLessThan(10);
  });

  it('runs under the policy its FarmContext carries', async () => {
    const base = farmContext(db, { budget: GENEROUS_BUDGET });
    const calls: string[] = [];
    const standard = defaultPolicy(base.config);
    const newestFirst: FarmPolicy = {
      ...standard,
      admit: (tx, request, queue) => {
        calls.push(`admit ${request.userId}`);
        return standard.admit(tx, request, queue);
      },
      settle: (tx, job, outcome) => {
        calls.push(`settle ${outcome.kind}`);
        return standard.settle(tx, job, outcome);
      },
      // Last in, first out: the newest queued job has the lowest virtual start.
      claimOrder: () => sql`fair as (select id, model, pixels, run_after, -id::float8 as virtual_start from jobs where status = 'queued')`,
      onClaim: () => sql`charged as (select 1)`,
    };
    const farm: FarmContext = { ...base, policy: newestFirst };
    const older = await submitJob(farm, { kind: 'blend', userId: 'lifo', params: { ...CHEAP_BLEND, model: 'lifo' } });
    const newer = await submitJob(farm, { kind: 'blend', userId: 'lifo', params: { ...CHEAP_BLEND, model: 'lifo' } });
    expect(await queuePosition(farm, newer.id)).toBeLessThan((await queuePosition(farm, older.id))!);
    const claimed = await claimJob(farm, 'w', only('lifo'));
    expect(claimed?.id).toBe(newer.id);
    await completeJob(farm, claimed!, { artifact, gpuSeconds: 0.5 });
    await cancelJob(farm, older.id);
    expect(calls).toEqual(['admit lifo', 'admit lifo', 'settle done', 'settle cancelled']);
  });
});
