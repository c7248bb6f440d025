// One balance per user, allowances per server and role, one refill clock per allowance (a refill in a
// server with a smaller allowance and a shorter period used to put off the larger one's by a whole
// period at every top-up): a due refill is applied only by a
// request that carries the member's complete limits. An operator's look (CLI, no server), a look
// from another place (/budget in a DM, the CLI with --guild but no roles), a grant, a retry from
// the CLI (no roles) and a request in a server without the member's roles (what a reaction did)
// used to apply it with less than the member's allowance and start a new period: a member of a
// 3600 GPU-second server with 100 left had 600 after an operator merely looked, until the next day.
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { type FarmDb, queryRows } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { ActiveJobLimitError, BudgetExceededError } from '../../farm/errors.ts';
import { updateGuildSettings } from '../../farm/guilds.ts';
import { cancelJob, retryJob, submitJob } from '../../farm/jobs.ts';
import { auditBalance, getBudget, grantBudget } from '../../farm/policy/budget.ts';
import { BACKENDS, CHEAP_BLEND } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const DAY = 86_400;

describe.each(BACKENDS)('who applies a due refill, on %s', (backend) => {
  let db: FarmDb;
  let farm: FarmContext;

  // Farm default 600 a day; servers may give up to 3600 (the default ceiling).
  useTestFarm(backend, { budget: { refillGpuSeconds: 600, refillPeriodSeconds: DAY, maxActiveJobs: 10 } }, async (t) => {
    ({ db, farm } = t);
    await updateGuildSettings(farm, 'g-big', { refillGpuSeconds: 3600 });
    await updateGuildSettings(farm, 'g-roles', { refillGpuSeconds: 1200, maxActiveJobs: 2, role: { roleId: 'patron', override: { refillGpuSeconds: 3600, maxActiveJobs: 5 } } });
  });

  const blend = (model: string) => ({ ...CHEAP_BLEND, model });

  /** What a touch must leave alone: balance, refill clock, ledger. */
  async function snapshot(userId: string) {
    const [row] = await queryRows<{ balance_ms: string | number; last_refill_at: string | null; entries: number; refills: number }>(
      db.db,
      sql`select u.balance_ms, u.last_refill_at::text as last_refill_at,
                 (select count(*)::int from budget_ledger l where l.user_id = u.id) as entries,
                 (select count(*)::int from budget_ledger l where l.user_id = u.id and l.kind = 'refill') as refills
          from users u where u.id = ${userId}`,
    );
    return { balanceMs: Number(row.balance_ms), lastRefillAt: row.last_refill_at, entries: row.entries, refills: row.refills };
  }

  /** The member got their first refill in `context` and spent all but `left` of it; then the period ended. */
  async function memberWithRefillDue(userId: string, context: { guildId?: string; roleIds?: string[] }, left: number): Promise<number> {
    const first = await submitJob(farm, { kind: 'blend', userId, ...context, params: blend(`m-${userId}`) });
    await cancelJob(farm, first.id);
    const { balanceGpuSeconds } = await getBudget(farm, userId, context);
    if (left !== balanceGpuSeconds) await grantBudget(farm, userId, left - balanceGpuSeconds, 'spent');
    // A period passes: the clock and everything booked in that period move two days back.
    await db.db.execute(sql`update users set last_refill_at = last_refill_at - interval '2 days' where id = ${userId}`);
    await db.db.execute(sql`update budget_ledger set created_at = created_at - interval '2 days' where user_id = ${userId}`);
    return first.id;
  }

  it('the reviewer’s case: an operator’s look from the CLI (no server) changes nothing; the next request in the server refills to its 3600', async () => {
    await memberWithRefillDue('u', { guildId: 'g-big', roleIds: [] }, 100);
    const before = await snapshot('u');
    const seen = await getBudget(farm, 'u');
    expect(seen).toMatchObject({ balanceGpuSeconds: 100, refillDue: true, refillGpuSeconds: 600 });
    expect(Math.abs(seen.nextRefillAt.getTime() - Date.now())).toBeLessThan(60_000);
    expect(await snapshot('u')).toEqual(before);

    const job = await submitJob(farm, { kind: 'blend', userId: 'u', guildId: 'g-big', roleIds: [], params: blend('m-u') });
    const after = await getBudget(farm, 'u', { guildId: 'g-big', roleIds: [] });
    expect(after.balanceGpuSeconds).toBeCloseTo(3600 - job.reservedGpuSeconds, 3);
    expect(after).toMatchObject({ refillDue: false, refillGpuSeconds: 3600 });
    expect(after.nextRefillAt.getTime()).toBeGreaterThan(Date.now() + (DAY - 60) * 1000);
    expect(after.ledger[1]).toMatchObject({ kind: 'refill', amountGpuSeconds: 3500 });
  });

  it('reads from anywhere, a grant, a CLI retry and a request without roles leave the clock alone; the member’s next request with their roles refills with the role’s allowance', async () => {
    const patron = { guildId: 'g-roles', roleIds: ['patron'] };
    const cancelled = await memberWithRefillDue('m', patron, 100);
    const start = await snapshot('m');

    // Reads: the operator (no server), the CLI with --guild but no roles, /budget in a DM, /budget in the server.
    const reads = [
      [{}, { refillGpuSeconds: 600, limitsComplete: true }],
      [{ guildId: 'g-roles' }, { refillGpuSeconds: 1200, maxActiveJobs: 2, limitsComplete: false }],
      [{ guildId: null, roleIds: [] }, { refillGpuSeconds: 600, limitsComplete: true }],
      [patron, { refillGpuSeconds: 3600, maxActiveJobs: 5, limitsComplete: true }],
    ] as const;
    for (const [context, limits] of reads) {
      expect(await getBudget(farm, 'm', context)).toMatchObject({ balanceGpuSeconds: 100, refillDue: true, ...limits });
      expect(await snapshot('m')).toEqual(start);
    }

    // An operator's grant adds to the stored balance only.
    expect(await grantBudget(farm, 'm', 50, 'prize')).toBe(150);
    expect(await snapshot('m')).toEqual({ ...start, balanceMs: 150_000, entries: start.entries + 1 });

    // A CLI retry (the job's server, no roles) and a request in the server without roles: paid
    // from the stored balance, no refill, the clock unchanged.
    const retried = await retryJob(farm, cancelled);
    const roleless = await submitJob(farm, { kind: 'blend', userId: 'm', guildId: 'g-roles', params: blend('m-m') });
    const held = retried.reservedGpuSeconds + roleless.reservedGpuSeconds;
    const paid = await snapshot('m');
    expect(paid).toMatchObject({ lastRefillAt: start.lastRefillAt, refills: start.refills, entries: start.entries + 3 });
    expect(paid.balanceMs / 1000).toBeCloseTo(150 - held, 3);
    // Without the roles the server's job limit (2) is all it knows: a third is refused…
    await expect(submitJob(farm, { kind: 'blend', userId: 'm', guildId: 'g-roles', params: blend('m-m') })).rejects.toBeInstanceOf(ActiveJobLimitError);

    // …with them (5) it is admitted, and the due refill is applied first with the role's 3600. The
    // grant made while it was due counts as coming after it: 3600 + 50 in all.
    const third = await submitJob(farm, { kind: 'blend', userId: 'm', ...patron, params: blend('m-m') });
    const after = await getBudget(farm, 'm', patron);
    expect(after.balanceGpuSeconds + after.heldGpuSeconds).toBeCloseTo(3650, 3);
    expect(after.heldGpuSeconds).toBeCloseTo(held + third.reservedGpuSeconds, 3);
    expect(after.refillDue).toBe(false);
    expect(after.ledger[1]).toMatchObject({ kind: 'refill' });
    expect(after.ledger[1].note).toMatch(/^top-up to 3600 GPU-seconds .*50 granted since it fell due/);
    const end = await snapshot('m');
    expect(end.lastRefillAt).not.toBe(start.lastRefillAt);
    expect(end.refills).toBe(start.refills + 1);
    const audit = await auditBalance(db.db, 'm');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
  });

  it('a request refused for want of a refill it could not apply says the refill is due now', async () => {
    await memberWithRefillDue('poor', { guildId: 'g-roles', roleIds: ['patron'] }, 0.5);
    const refusal = await submitJob(farm, { kind: 'blend', userId: 'poor', guildId: 'g-roles', params: blend('m-poor') }).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(BudgetExceededError);
    expect((refusal as BudgetExceededError).balanceGpuSeconds).toBe(0.5);
    expect(Math.abs((refusal as BudgetExceededError).nextRefillAt.getTime() - Date.now())).toBeLessThan(60_000);
    expect((await snapshot('poor')).balanceMs).toBe(500);
  });

  it('a request in a server without role overrides needs no roles to refill', async () => {
    await memberWithRefillDue('plain', { guildId: 'g-big', roleIds: [] }, 10);
    const job = await submitJob(farm, { kind: 'blend', userId: 'plain', guildId: 'g-big', params: blend('m-plain') });
    const after = await getBudget(farm, 'plain', { guildId: 'g-big' });
    expect(after).toMatchObject({ refillDue: false, limitsComplete: true });
    expect(after.balanceGpuSeconds).toBeCloseTo(3600 - job.reservedGpuSeconds, 3);
  });

  it('a request outside any server refills with the farm’s defaults (its own limits)', async () => {
    await memberWithRefillDue('dm', {}, 10);
    const job = await submitJob(farm, { kind: 'blend', userId: 'dm', guildId: null, roleIds: [], params: blend('m-dm') });
    const after = await getBudget(farm, 'dm');
    expect(after.balanceGpuSeconds).toBeCloseTo(600 - job.reservedGpuSeconds, 3);
  });

  it('a member of two servers: refills in a server with a smaller allowance and a shorter period do not put off the larger one’s', async () => {
    await updateGuildSettings(farm, 'g-hourly', { refillGpuSeconds: 100, refillPeriodSeconds: 3600 });
    const big = { guildId: 'g-big', roleIds: [] };
    const hourly = { guildId: 'g-hourly', roleIds: [] };
    const hoursPass = async (hours: number) => {
      await db.db.execute(sql`update users set last_refill_at = last_refill_at - make_interval(hours => ${hours}) where id = 'two'`);
      await db.db.execute(sql`update budget_ledger set created_at = created_at - make_interval(hours => ${hours}) where user_id = 'two'`);
    };
    // The daily 3600 of g-big, nearly all spent.
    await cancelJob(farm, (await submitJob(farm, { kind: 'blend', userId: 'two', ...big, params: blend('m-two') })).id);
    await grantBudget(farm, 'two', 50 - (await getBudget(farm, 'two', big)).balanceGpuSeconds, 'spent');
    // Every hour or two the member renders in g-hourly, which tops them up to its 100 each time.
    for (let i = 0; i < 12; i++) {
      await hoursPass(2);
      await cancelJob(farm, (await submitJob(farm, { kind: 'blend', userId: 'two', ...hourly, params: blend('m-two') })).id);
      expect((await getBudget(farm, 'two', hourly)).balanceGpuSeconds).toBe(100);
    }
    // A day after g-big's refill, its next one is due in g-big whatever g-hourly did meanwhile.
    await hoursPass(1);
    const seen = await getBudget(farm, 'two', big);
    expect(seen).toMatchObject({ balanceGpuSeconds: 100, refillDue: true, refillGpuSeconds: 3600 });
    expect(Math.abs(seen.nextRefillAt.getTime() - Date.now())).toBeLessThan(60_000);
    const job = await submitJob(farm, { kind: 'blend', userId: 'two', ...big, params: blend('m-two') });
    const after = await getBudget(farm, 'two', big);
    expect(after.balanceGpuSeconds).toBeCloseTo(3600 - job.reservedGpuSeconds, 3);
    expect(after.refillDue).toBe(false);
    expect(after.nextRefillAt.getTime()).toBeGreaterThan(Date.now() + (DAY - 60) * 1000);
    // …which in turn counts as g-hourly's refill too (it gave at least its 100): none is due there for an hour.
    expect((await getBudget(farm, 'two', hourly)).refillDue).toBe(false);
    await hoursPass(1);
    expect((await getBudget(farm, 'two', hourly)).refillDue).toBe(true);
    expect((await getBudget(farm, 'two', big)).refillDue).toBe(false);
    const audit = await auditBalance(db.db, 'two');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
  });

  it('a user refilled before the clocks per allowance existed: that refill counts for every allowance until the next one', async () => {
    await updateGuildSettings(farm, 'g-hourly', { refillGpuSeconds: 100, refillPeriodSeconds: 3600 });
    await cancelJob(farm, (await submitJob(farm, { kind: 'blend', userId: 'old', guildId: 'g-hourly', roleIds: [], params: blend('m-old') })).id);
    // As the older version left the row: one clock, no levels.
    await db.db.execute(sql`update users set refill_levels = null, last_refill_at = now() - interval '2 hours' where id = 'old'`);
    expect((await getBudget(farm, 'old', { guildId: 'g-big', roleIds: [] })).refillDue).toBe(false);
    expect((await getBudget(farm, 'old', { guildId: 'g-hourly', roleIds: [] })).refillDue).toBe(true);
    await cancelJob(farm, (await submitJob(farm, { kind: 'blend', userId: 'old', guildId: 'g-hourly', roleIds: [], params: blend('m-old') })).id);
    // The new refill (100) counts up to 100; the 3600's clock is still the old refill's.
    const [row] = await queryRows<{ levels: unknown }>(db.db, sql`select refill_levels as levels from users where id = 'old'`);
    const levels = (typeof row.levels === 'string' ? JSON.parse(row.levels) : row.levels) as Array<{ allowanceMs: number; beforeMs: number }>;
    expect(levels.map((l) => l.allowanceMs)).toEqual([Number.MAX_SAFE_INTEGER, 100_000]);
    expect(levels[0].beforeMs).toBeGreaterThan(2 * 3600_000 - 60_000);
    expect((await getBudget(farm, 'old', { guildId: 'g-big', roleIds: [] })).nextRefillAt.getTime()).toBeCloseTo(Date.now() + (DAY - 2 * 3600) * 1000, -5);
  });

  it('a debit made while the refill was due is not undone by it', async () => {
    await memberWithRefillDue('debited', {}, 600);
    expect(await grantBudget(farm, 'debited', -100, 'misuse')).toBe(500);
    const job = await submitJob(farm, { kind: 'blend', userId: 'debited', params: blend('m-debited') });
    const after = await getBudget(farm, 'debited');
    // The refill, had it come when due, topped 600 up to 600; the debit then left 500.
    expect(after.balanceGpuSeconds + after.heldGpuSeconds).toBeCloseTo(500, 3);
    expect(after.balanceGpuSeconds).toBeCloseTo(500 - job.reservedGpuSeconds, 3);
    expect(after.refillDue).toBe(false);
  });
});
