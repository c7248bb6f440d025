// The fair claim order's SQL (farm/policy/fair-order.ts), read directly on both back ends: each
// queued job's virtual start (its owner's decayed usage plus the reservations of that owner's
// queued jobs ahead of it, in milliseconds), what a claim books and what a hand-back takes off.
import { type SQL, sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { type FarmDb, queryRows } from '../../../db/client.ts';
import type { FarmContext } from '../../../farm/config.ts';
import { submitJob } from '../../../farm/jobs.ts';
import { chargeClaim, fairQueue, unbookClaim } from '../../../farm/policy/fair-order.ts';
import { claimJob, releaseJob } from '../../../farm/queue.ts';
import type { ClaimedJob, WorkerCapabilities } from '../../../farm/types.ts';
import { BACKENDS, CHEAP_BLEND, GENEROUS_BUDGET } from '../../helpers/db.ts';
import { useTestFarm } from '../../helpers/farm.ts';

/** One hour: usage halves in an hour. */
const HALF_LIFE = 3600;
// Every job costs 10 GPU-seconds: 10,000 ms reserved.
const COST = { overheadSeconds: 10, secondsPerMegapixelStep: 0, secondsPerMegapixelFrame: 0 };
const RESERVED_MS = 10_000;

// Each test uses its own model and users, so other tests' jobs are invisible to it.
const only = (model: string): WorkerCapabilities => ({ models: [model], maxPixels: 10_000_000, executionProvider: 'test' });

/**
 * Usage keeps decaying while a test runs (with a one-hour half-life, 50 s of usage loses about
 * 10 ms a second), so a value read later may be a little below the one booked, never above it.
 */
function expectAbout(actual: number, expected: number): void {
  expect(actual).toBeLessThanOrEqual(expected + 1);
  expect(actual).toBeGreaterThanOrEqual(expected * 0.995 - 1);
}

describe.each(BACKENDS)('fair claim order on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;

  useTestFarm(backend, { budget: GENEROUS_BUDGET, cost: COST, fairnessHalfLifeSeconds: HALF_LIFE }, (t) => ({ db, farm } = t));

  const submit = async (userId: string, model: string) => (await submitJob(farm, { kind: 'blend', userId, params: { ...CHEAP_BLEND, model } })).id;

  /** The queued jobs of `model` as fairQueue ranks them: [job id, virtual start in ms]. */
  const fairOrder = async (model: string, halfLife = HALF_LIFE): Promise<Array<[number, number]>> => {
    const rows = await queryRows<{ id: number; vs: number }>(
      db.db,
      sql`with ${fairQueue(halfLife)} select id, virtual_start::float8 as vs from fair where model = ${model} order by virtual_start asc, id asc`,
    );
    return rows.map((r) => [Number(r.id), Number(r.vs)]);
  };

  const setUsage = (userId: string, usageMs: number, secondsAgo: number | null) =>
    db.db.execute(
      sql`update users set usage_ms = ${usageMs}, usage_at = ${secondsAgo === null ? sql`null` : sql`now() - make_interval(secs => ${secondsAgo}::float8)`} where id = ${userId}`,
    );
  const usageOf = async (userId: string) => Number((await queryRows<{ usage: number }>(db.db, sql`select usage_ms::float8 as usage from users where id = ${userId}`))[0].usage);
  const setReserved = (jobId: number, ms: number) => db.db.execute(sql`update jobs set reserved_ms = ${ms} where id = ${jobId}`);

  /** Runs one of the claim CTEs on its own, with `source` (jobs.* of one job) as CTE `name`. */
  const runCte = (name: 'claimed' | 'released', jobId: number, cte: SQL) => db.db.execute(sql`with ${sql.raw(name)} as (select * from jobs where id = ${jobId}), ${cte} select 1`);

  it('gives users with no history a start of 0, each of their later jobs the reservations ahead of it, in ms; ties go to the oldest job', async () => {
    const a1 = await submit('new-a', 'fresh');
    const a2 = await submit('new-a', 'fresh');
    const b1 = await submit('new-b', 'fresh');
    const a3 = await submit('new-a', 'fresh');
    expect(await fairOrder('fresh')).toEqual([
      [a1, 0],
      [b1, 0],
      [a2, RESERVED_MS],
      [a3, 2 * RESERVED_MS],
    ]);
  });

  it('adds up the reservations ahead by size: one heavy job puts its owner behind three light jobs of someone else', async () => {
    const heavy1 = await submit('heavy', 'weights');
    const heavy2 = await submit('heavy', 'weights');
    const light = [await submit('light', 'weights'), await submit('light', 'weights'), await submit('light', 'weights')];
    await setReserved(heavy1, 50_000);
    expect(await fairOrder('weights')).toEqual([
      [heavy1, 0],
      [light[0], 0],
      [light[1], RESERVED_MS],
      [light[2], 2 * RESERVED_MS],
      [heavy2, 50_000],
    ]);
  });

  it('counts only queued jobs ahead: a running or cancelled job of the same owner adds nothing', async () => {
    const first = await submit('only-queued', 'statuses');
    const second = await submit('only-queued', 'statuses');
    const third = await submit('only-queued', 'statuses');
    await db.db.execute(sql`update jobs set status = 'cancelled' where id = ${second}`);
    expect(await fairOrder('statuses')).toEqual([
      [first, 0],
      [third, RESERVED_MS],
    ]);
  });

  it('decays usage with the half-life: 8 s used two half-lives ago counts 2 s, used just now 8 s, with no time recorded as it stands', async () => {
    const old = await submit('decayed', 'decay');
    const recent = await submit('recent', 'decay');
    const unknown = await submit('no-time', 'decay');
    await setUsage('decayed', 8000, 2 * HALF_LIFE);
    await setUsage('recent', 8000, 0);
    await setUsage('no-time', 3000, null);
    const order = await fairOrder('decay');
    expect(order.map(([id]) => id)).toEqual([old, unknown, recent]);
    expectAbout(order[0][1], 2000);
    expect(order[1][1]).toBe(3000);
    expectAbout(order[2][1], 8000);
    // The half-life is the one given: with 2 hours, two hours is one half-life.
    const slower = await fairOrder('decay', 2 * HALF_LIFE);
    expectAbout(slower.find(([id]) => id === old)?.[1] ?? Number.NaN, 4000);
  });

  it('lets a newcomer in after the flooder’s first job, and a recent heavy user wait behind them', async () => {
    const flood = [];
    for (let i = 0; i < 5; i++) flood.push(await submit('flooder', 'flood'));
    const newcomer = await submit('newcomer', 'flood');
    const worker = only('flood');
    const claims: number[] = [];
    for (let job = await claimJob(farm, 'w-flood', worker); job; job = await claimJob(farm, 'w-flood', worker)) claims.push(job.id);
    // Both start at 0, the flooder's job is older; then the newcomer (0) before the flooder's second (10 s).
    expect(claims).toEqual([flood[0], newcomer, ...flood.slice(1)]);
    // Every claim was booked once: five 10 s jobs, one 10 s job.
    expectAbout(await usageOf('flooder'), 5 * RESERVED_MS);
    expectAbout(await usageOf('newcomer'), RESERVED_MS);

    // Now the flooder's next job waits behind a user with no history, though it was queued first.
    const next = await submit('flooder', 'flood');
    const other = await submit('later-user', 'flood');
    const order = await fairOrder('flood');
    expect(order.map(([id]) => id)).toEqual([other, next]);
    expectAbout(order[1][1], 5 * RESERVED_MS);
  });

  it('books a claim as the decayed usage plus the job’s reservation, stamped now', async () => {
    const job = await submit('charged', 'charge');
    await setUsage('charged', 4000, HALF_LIFE);
    await runCte('claimed', job, chargeClaim(HALF_LIFE));
    expectAbout(await usageOf('charged'), 2000 + RESERVED_MS);
    // Stamped now: reading the order at once decays nothing more.
    const next = await submit('charged', 'charge');
    const [[id, start]] = (await fairOrder('charge')).filter(([id]) => id === next);
    expect(id).toBe(next);
    // Ahead of it in the queue: the first job, still queued here (only the CTE ran).
    expectAbout(start, 2000 + RESERVED_MS + RESERVED_MS);
  });

  it('takes a hand-back off as much of the claim as has not decayed since the claim, never below zero', async () => {
    const job = await submit('unbook', 'unbook');
    // The claim was an hour ago, on top of 6 s used before: usage then was 16 s, now 8 s, of which
    // the claim's part is 5 s.
    await setUsage('unbook', 6000 + RESERVED_MS, HALF_LIFE);
    await db.db.execute(sql`update jobs set started_at = now() - make_interval(secs => ${HALF_LIFE}::float8) where id = ${job}`);
    await runCte('released', job, unbookClaim(HALF_LIFE));
    expectAbout(await usageOf('unbook'), 3000);

    // With other usage on top, only the claim's part goes: 6 s used besides a claim made just now.
    await setUsage('unbook', 6000 + RESERVED_MS, 0);
    await db.db.execute(sql`update jobs set started_at = now() where id = ${job}`);
    await runCte('released', job, unbookClaim(HALF_LIFE));
    expectAbout(await usageOf('unbook'), 6000);

    // Less usage left than the claim (an operator reset it): zero, not negative.
    await setUsage('unbook', 1000, 0);
    await runCte('released', job, unbookClaim(HALF_LIFE));
    expect(await usageOf('unbook')).toBe(0);

    // A job with no claim time (never started) is taken off in full.
    await setUsage('unbook', 15_000, 0);
    await db.db.execute(sql`update jobs set started_at = null where id = ${job}`);
    await runCte('released', job, unbookClaim(HALF_LIFE));
    expectAbout(await usageOf('unbook'), 5000);
  });

  it('undoes a claim handed back through releaseJob, so the job keeps its place', async () => {
    const mine = await submit('released-a', 'release');
    const theirs = await submit('released-b', 'release');
    const claimed = (await claimJob(farm, 'w-release', only('release'))) as ClaimedJob;
    expect(claimed.id).toBe(mine);
    expectAbout(await usageOf('released-a'), RESERVED_MS);
    expect(await releaseJob(farm, claimed)).toBe(true);
    expectAbout(await usageOf('released-a'), 0);
    expect((await fairOrder('release')).map(([id]) => id)).toEqual([mine, theirs]);
  });

  it('has nothing to rank when nothing is queued', async () => {
    expect(await fairOrder('nothing-queued')).toEqual([]);
  });
});
