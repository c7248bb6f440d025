// GPU-second budgets: the accounts that admission (admission.ts) and settlement (settlement.ts)
// book against. Every change is a ledger entry written in the same transaction as the cached
// users.balance_ms, under the user's row lock (SELECT ... FOR UPDATE), so concurrent submissions
// by one user are serialised: they can never spend the same seconds, and the balance always equals
// the sum of the ledger. A CHECK constraint (balance >= 0) backs this up.
//
// Refill policy: once per period (guild setting, per-role override, farm default) the balance plus
// the seconds held by the user's queued and running jobs is topped up to the period's allowance;
// unused seconds do not pile up. The refill is applied
// lazily the next time the user's budget is touched.
import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import { type FarmDb, type Queryable, type Transaction, queryRows } from '../../db/client.ts';
import { budgetLedger, guilds, jobs, type LedgerKind } from '../../db/schema.ts';
import { FarmError } from '../errors.ts';
import { type GuildSettingName, guildSettingRanges } from '../limits.ts';
import { checkId } from '../ids.ts';
import { unstorableTextIssue } from '../text.ts';
import { ACTIVE_STATUSES } from '../types.ts';
import type { BudgetDefaults, PolicyOptions } from './options.ts';

/** What the budget functions need of a FarmContext. */
export interface BudgetFarm {
  db: FarmDb;
  config: PolicyOptions;
}

export interface BudgetContext {
  /** The server the request came from (its settings pick the refill and limits). */
  guildId?: string | null;
  /** The member's roles there; the most generous role override applies. */
  roleIds?: readonly string[];
}

/** The budget rules for one user in one place: the farm's defaults after guild and role overrides. */
export type BudgetLimits = BudgetDefaults;

export interface LockedUser {
  id: string;
  balanceMs: number;
  lastRefillMs: number;
  /** Database clock at the transaction start (ms since epoch). */
  nowMs: number;
}

export interface LedgerEntry {
  id: number;
  kind: LedgerKind;
  amountGpuSeconds: number;
  balanceAfterGpuSeconds: number;
  jobId: number | null;
  note: string | null;
  createdAt: Date;
}

export interface BudgetStatus {
  userId: string;
  balanceGpuSeconds: number;
  /** Seconds reserved by this user's queued and running jobs (already taken from the balance). */
  heldGpuSeconds: number;
  refillGpuSeconds: number;
  refillPeriodSeconds: number;
  nextRefillAt: Date;
  activeJobs: number;
  maxActiveJobs: number;
  /** Newest first. */
  ledger: LedgerEntry[];
}

/**
 * The farm's budget defaults, overridden by the guild's settings and the member's most generous
 * role. Stored server and role values are applied within the operator's ceilings
 * (guildSettingRanges): a value saved before a ceiling existed or was lowered gives at most the
 * ceiling. The farm's own defaults are the operator's and are not clamped.
 */
export async function resolveLimits(q: Queryable, options: Pick<PolicyOptions, 'budget' | 'guildCeilings'>, context: BudgetContext = {}): Promise<BudgetLimits> {
  const limits: BudgetLimits = { ...options.budget };
  if (!context.guildId) return limits;
  const [guild] = await q.select().from(guilds).where(eq(guilds.id, context.guildId));
  if (!guild) return limits;
  const ranges = guildSettingRanges(options.guildCeilings);
  const within = (setting: GuildSettingName, value: number): number => Math.min(Math.max(value, ranges[setting].min), ranges[setting].max);
  if (guild.refillGpuSeconds !== null) limits.refillGpuSeconds = within('refillGpuSeconds', guild.refillGpuSeconds);
  if (guild.refillPeriodSeconds !== null) limits.refillPeriodSeconds = within('refillPeriodSeconds', guild.refillPeriodSeconds);
  if (guild.maxActiveJobs !== null) limits.maxActiveJobs = within('maxActiveJobs', guild.maxActiveJobs);
  for (const roleId of context.roleIds ?? []) {
    const override = guild.roleOverrides[roleId];
    if (!override) continue;
    if (override.refillGpuSeconds !== undefined) limits.refillGpuSeconds = Math.max(limits.refillGpuSeconds, within('refillGpuSeconds', override.refillGpuSeconds));
    if (override.maxActiveJobs !== undefined) limits.maxActiveJobs = Math.max(limits.maxActiveJobs, within('maxActiveJobs', override.maxActiveJobs));
  }
  return limits;
}

/** Creates the user on first sight, locks its row for this transaction and applies a due refill. */
export async function lockUser(tx: Transaction, userId: string, limits: BudgetLimits): Promise<LockedUser> {
  await tx.execute(sql`insert into users (id) values (${userId}) on conflict (id) do nothing`);
  const [row] = await queryRows<{ balance_ms: string | number; last_refill_ms: number | null; now_ms: number }>(
    tx,
    sql`select balance_ms,
               (extract(epoch from last_refill_at) * 1000)::float8 as last_refill_ms,
               (extract(epoch from now()) * 1000)::float8 as now_ms
        from users where id = ${userId} for update`,
  );
  const user: LockedUser = { id: userId, balanceMs: Number(row.balance_ms), lastRefillMs: row.last_refill_ms ?? -Infinity, nowMs: row.now_ms };
  if (user.nowMs >= user.lastRefillMs + limits.refillPeriodSeconds * 1000) {
    // Top up what the user has, held seconds included: seconds reserved by queued and running
    // jobs come back (settle, refund) later, so after a refill balance + held is the allowance
    // (or stays above it), never the allowance plus the held seconds.
    const allowanceMs = Math.round(limits.refillGpuSeconds * 1000);
    const { heldMs } = await countActiveJobs(tx, userId);
    const topUpMs = allowanceMs - (user.balanceMs + heldMs);
    if (topUpMs > 0) {
      user.balanceMs = await addLedgerEntry(tx, userId, 'refill', topUpMs, null, `top-up to ${limits.refillGpuSeconds} GPU-seconds (${heldMs / 1000} held by active jobs)`);
    }
    await tx.execute(sql`update users set last_refill_at = now() where id = ${userId}`);
    user.lastRefillMs = user.nowMs;
  }
  return user;
}

export function nextRefillAt(user: LockedUser, limits: BudgetLimits): Date {
  return new Date(user.lastRefillMs + limits.refillPeriodSeconds * 1000);
}

/** Applies a signed amount to the balance and records it; returns the balance after (ms). */
export async function addLedgerEntry(
  tx: Transaction,
  userId: string,
  kind: LedgerKind,
  amountMs: number,
  jobId: number | null,
  note: string | null = null,
): Promise<number> {
  const [updated] = await queryRows<{ balance_ms: string | number }>(
    tx,
    sql`update users set balance_ms = balance_ms + ${amountMs} where id = ${userId} returning balance_ms`,
  );
  if (!updated) throw new Error(`budget entry for unknown user ${userId}`);
  const balanceAfterMs = Number(updated.balance_ms);
  await tx.insert(budgetLedger).values({ userId, jobId, kind, amountMs, balanceAfterMs, note });
  return balanceAfterMs;
}

export async function countActiveJobs(q: Queryable, userId: string): Promise<{ count: number; heldMs: number }> {
  const [row] = await q
    .select({ count: sql<number>`count(*)::int`, heldMs: sql<number>`coalesce(sum(${jobs.reservedMs}), 0)::float8` })
    .from(jobs)
    .where(and(eq(jobs.userId, userId), inArray(jobs.status, [...ACTIVE_STATUSES])));
  return { count: row.count, heldMs: row.heldMs };
}

export async function getBudget(farm: BudgetFarm, userId: string, context: BudgetContext = {}, ledgerEntries = 20): Promise<BudgetStatus> {
  return farm.db.db.transaction(async (tx) => {
    const limits = await resolveLimits(tx, farm.config, context);
    const user = await lockUser(tx, userId, limits);
    const active = await countActiveJobs(tx, userId);
    const ledger = await tx
      .select()
      .from(budgetLedger)
      .where(eq(budgetLedger.userId, userId))
      .orderBy(desc(budgetLedger.id))
      .limit(ledgerEntries);
    return {
      userId,
      balanceGpuSeconds: user.balanceMs / 1000,
      heldGpuSeconds: active.heldMs / 1000,
      refillGpuSeconds: limits.refillGpuSeconds,
      refillPeriodSeconds: limits.refillPeriodSeconds,
      nextRefillAt: nextRefillAt(user, limits),
      activeJobs: active.count,
      maxActiveJobs: limits.maxActiveJobs,
      ledger: ledger.map((entry) => ({
        id: entry.id,
        kind: entry.kind,
        amountGpuSeconds: entry.amountMs / 1000,
        balanceAfterGpuSeconds: entry.balanceAfterMs / 1000,
        jobId: entry.jobId,
        note: entry.note,
        createdAt: entry.createdAt,
      })),
    };
  });
}

/** Operator grant (negative to take seconds away, never below zero). Returns the new balance. */
export async function grantBudget(farm: BudgetFarm, userId: string, gpuSeconds: number, note?: string): Promise<number> {
  checkId('user id', userId);
  if (!Number.isFinite(gpuSeconds) || gpuSeconds === 0) throw new FarmError('invalid_params', `A grant must be a non-zero number of GPU-seconds (got ${gpuSeconds}).`);
  const noteIssue = note === undefined ? undefined : unstorableTextIssue('The note', note);
  if (noteIssue) throw new FarmError('invalid_params', `${noteIssue}.`);
  return farm.db.db.transaction(async (tx) => {
    const user = await lockUser(tx, userId, await resolveLimits(tx, farm.config));
    const amountMs = Math.round(gpuSeconds * 1000);
    if (user.balanceMs + amountMs < 0) {
      throw new FarmError('invalid_params', `Cannot take ${-gpuSeconds} GPU-seconds from ${userId}: the balance is only ${user.balanceMs / 1000}.`);
    }
    return (await addLedgerEntry(tx, userId, 'grant', amountMs, null, note ?? 'operator grant')) / 1000;
  });
}

/** Sum of a user's ledger and the cached balance, for audits and tests. */
export async function auditBalance(q: Queryable, userId: string): Promise<{ balanceMs: number; ledgerSumMs: number }> {
  const [row] = await queryRows<{ balance_ms: string | number; ledger_sum_ms: string | number }>(
    q,
    sql`select u.balance_ms, (select coalesce(sum(amount_ms), 0) from budget_ledger l where l.user_id = u.id) as ledger_sum_ms
        from users u where u.id = ${userId}`,
  );
  if (!row) return { balanceMs: 0, ledgerSumMs: 0 };
  return { balanceMs: Number(row.balance_ms), ledgerSumMs: Number(row.ledger_sum_ms) };
}
